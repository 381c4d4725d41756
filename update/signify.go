package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Update bundles are signed in OpenBSD signify's format, so that an
// administrator can check one by hand with signify (Debian: signify-openbsd)
// using the same public key the appliance carries. A signify file is an
// "untrusted comment: ..." line followed by one base64 line:
//
//	public key  "Ed" | keynum[8] | ed25519 public key[32]
//	signature   "Ed" | keynum[8] | ed25519 signature[64] over the message
//	secret key  "Ed" | "BK" | kdfrounds[4] | salt[16] | checksum[8] | keynum[8] | ed25519 private key[64]
//
// The keynum is random and names the key pair; checksum is the first 8 bytes
// of SHA-512 of the private key. Secret keys are read only without a
// passphrase (kdfrounds 0, as made by `signify -G -n` or KeyGen).

const (
	sigAlg     = "Ed"
	kdfAlg     = "BK"
	keyNumLen  = 8
	pubKeyLen  = 2 + keyNumLen + ed25519.PublicKeySize
	sigLen     = 2 + keyNumLen + ed25519.SignatureSize
	secKeyLen  = 2 + 2 + 4 + 16 + 8 + keyNumLen + ed25519.PrivateKeySize
	maxSigFile = 4 << 10
)

// KeyNum names a key pair; a signature carries the keynum of its key.
type KeyNum [keyNumLen]byte

func (k KeyNum) String() string { return strings.ToUpper(hex.EncodeToString(k[:])) }

// PublicKey is an update signing key that the appliance trusts.
type PublicKey struct {
	Num KeyNum
	Key ed25519.PublicKey
}

// SecretKey signs update bundles (image/build.sh, appliance update sign).
type SecretKey struct {
	Num KeyNum
	Key ed25519.PrivateKey
}

// Public is the key that verifies k's signatures.
func (k *SecretKey) Public() PublicKey {
	return PublicKey{Num: k.Num, Key: k.Key.Public().(ed25519.PublicKey)}
}

// Signature is a detached signature of a message (a bundle's manifest).
type Signature struct {
	Num KeyNum
	Sig []byte
}

// ErrUnsigned is returned for a bundle without a signature.
var ErrUnsigned = errors.New("bundle is not signed (no " + SigName + ")")

// ErrBadSignature is returned when a signature does not verify with a
// trusted key, or was made by a key the appliance does not trust.
var ErrBadSignature = errors.New("bad bundle signature")

// signifyPayloads returns the decoded base64 lines of a signify file,
// skipping comment lines; each must decode.
func signifyPayloads(b []byte) ([][]byte, error) {
	var out [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "untrusted comment:") {
			continue
		}
		p, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: not base64: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParsePublicKeys reads one or more signify public keys (a file may hold
// several, one after the other, to rotate keys: bundles signed by any of
// them are accepted).
func ParsePublicKeys(b []byte) ([]PublicKey, error) {
	ps, err := signifyPayloads(b)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	var keys []PublicKey
	for _, p := range ps {
		if len(p) != pubKeyLen || string(p[:2]) != sigAlg {
			return nil, fmt.Errorf("public key: not a signify ed25519 public key (%d bytes)", len(p))
		}
		var k PublicKey
		copy(k.Num[:], p[2:])
		k.Key = ed25519.PublicKey(bytes.Clone(p[2+keyNumLen:]))
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("public key: none found")
	}
	return keys, nil
}

// ReadPublicKeys reads the trusted keys from a file.
func ReadPublicKeys(path string) ([]PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read update signing key: %w", err)
	}
	keys, err := ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// ParseSignature reads a signify signature file.
func ParseSignature(b []byte) (*Signature, error) {
	ps, err := signifyPayloads(b)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if len(ps) != 1 || len(ps[0]) != sigLen || string(ps[0][:2]) != sigAlg {
		return nil, fmt.Errorf("signature: not a signify ed25519 signature")
	}
	s := &Signature{Sig: bytes.Clone(ps[0][2+keyNumLen:])}
	copy(s.Num[:], ps[0][2:])
	return s, nil
}

// Verify checks sig over msg against the trusted keys: the key named by the
// signature's keynum must be one of them, and the signature must verify.
func Verify(keys []PublicKey, msg []byte, sig *Signature) error {
	for _, k := range keys {
		if k.Num != sig.Num {
			continue
		}
		if !ed25519.Verify(k.Key, msg, sig.Sig) {
			return fmt.Errorf("%w: does not verify with key %s", ErrBadSignature, k.Num)
		}
		return nil
	}
	return fmt.Errorf("%w: made by key %s, which this appliance does not trust", ErrBadSignature, sig.Num)
}

// KeyGen makes a new signing key pair.
func KeyGen(rnd io.Reader) (*SecretKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	k := &SecretKey{Key: priv}
	if _, err := io.ReadFull(rnd, k.Num[:]); err != nil {
		return nil, fmt.Errorf("generate keynum: %w", err)
	}
	return k, nil
}

// ParseSecretKey reads a signify secret key without a passphrase.
func ParseSecretKey(b []byte) (*SecretKey, error) {
	ps, err := signifyPayloads(b)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if len(ps) != 1 || len(ps[0]) != secKeyLen || string(ps[0][:2]) != sigAlg || string(ps[0][2:4]) != kdfAlg {
		return nil, fmt.Errorf("secret key: not a signify ed25519 secret key")
	}
	p := ps[0]
	if rounds := binary.BigEndian.Uint32(p[4:8]); rounds != 0 {
		return nil, fmt.Errorf("secret key: protected by a passphrase (kdf rounds %d); sign with signify itself or use a key made with signify -G -n", rounds)
	}
	checksum := p[24:32]
	k := &SecretKey{Key: ed25519.PrivateKey(bytes.Clone(p[40:]))}
	copy(k.Num[:], p[32:40])
	if sum := sha512.Sum512(k.Key); subtle.ConstantTimeCompare(sum[:8], checksum) != 1 {
		return nil, fmt.Errorf("secret key: checksum mismatch (damaged file)")
	}
	return k, nil
}

// MarshalSecret renders k as a signify secret key file without a passphrase.
func (k *SecretKey) MarshalSecret(comment string) []byte {
	p := make([]byte, 0, secKeyLen)
	p = append(p, sigAlg...)
	p = append(p, kdfAlg...)
	p = append(p, 0, 0, 0, 0)          // kdf rounds: none
	p = append(p, make([]byte, 16)...) // salt, unused without a passphrase
	sum := sha512.Sum512(k.Key)
	p = append(p, sum[:8]...)
	p = append(p, k.Num[:]...)
	p = append(p, k.Key...)
	return signifyFile(comment, p)
}

// Marshal renders k as a signify public key file.
func (k PublicKey) Marshal(comment string) []byte {
	p := append([]byte(sigAlg), k.Num[:]...)
	return signifyFile(comment, append(p, k.Key...))
}

// Sign signs msg and renders the signature as a signify signature file.
func (k *SecretKey) Sign(msg []byte, comment string) []byte {
	p := append([]byte(sigAlg), k.Num[:]...)
	return signifyFile(comment, append(p, ed25519.Sign(k.Key, msg)...))
}

func signifyFile(comment string, payload []byte) []byte {
	return []byte("untrusted comment: " + comment + "\n" + base64.StdEncoding.EncodeToString(payload) + "\n")
}
