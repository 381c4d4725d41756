package update

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// snapshot is everything an update may write: both root partitions and the
// ESP's entry directory (every file, temporary ones too).
type snapshot struct {
	rootA, rootB []byte
	esp          map[string]string
}

func takeSnapshot(t *testing.T, u *Updater) snapshot {
	t.Helper()
	var s snapshot
	var err error
	s.rootA, err = os.ReadFile(filepath.Join(u.PartitionDir, "root-a"))
	must(t, err)
	s.rootB, err = os.ReadFile(filepath.Join(u.PartitionDir, "root-b"))
	must(t, err)
	s.esp = map[string]string{}
	des, err := os.ReadDir(u.entryDir())
	must(t, err)
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(u.entryDir(), de.Name()))
		must(t, err)
		s.esp[de.Name()] = string(b)
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	return bytes.Equal(s.rootA, o.rootA) && bytes.Equal(s.rootB, o.rootB) && len(s.esp) == len(o.esp) &&
		func() bool {
			for k, v := range s.esp {
				if o.esp[k] != v {
					return false
				}
			}
			return true
		}()
}

// forgedSig is a signature by other that claims to be by as (its keynum).
func forgedSig(other, as *SecretKey, m file) file {
	k := *other
	k.Num = as.Num
	return sig(&k, m)
}

// TestInstallRefusesBeforeWriting: a bundle without a valid signature by a
// trusted key, or not newer than the running image, is refused before a
// single byte reaches a partition or the ESP.
func TestInstallRefusesBeforeWriting(t *testing.T) {
	m := manifest("1.1", "amd64")
	rest := []file{{RootName, rootFS}, {UKIName(SlotA), ukiA}, {UKIName(SlotB), ukiB}}
	with := func(first ...file) []file { return append(first, rest...) }
	// The manifest as signed, then altered to name another root file
	// system: the signature no longer covers it.
	tampered := file{ManifestName, bytes.Replace(m.data, []byte(hexsum(rootFS)), []byte(hexsum([]byte("evil root"))), 1)}

	for _, tc := range []struct {
		name    string
		files   []file
		setup   func(u *Updater)
		wantErr error  // errors.Is, or
		want    string // substring
	}{
		{name: "missing signature", files: with(m), wantErr: ErrUnsigned},
		{name: "signature only", files: []file{m}, wantErr: ErrUnsigned},
		{name: "bad signature", files: with(m, file{SigName, trustedKey.Sign([]byte("another manifest"), "x")}), wantErr: ErrBadSignature},
		{name: "garbage signature", files: with(m, file{SigName, []byte("untrusted comment: x\nbm90IGEgc2lnbmF0dXJl\n")}), wantErr: ErrBadSignature},
		{name: "signed by another key", files: with(m, sig(otherKey, m)), wantErr: ErrBadSignature, want: "does not trust"},
		{name: "another key posing as ours", files: with(m, forgedSig(otherKey, trustedKey, m)), wantErr: ErrBadSignature, want: "does not verify"},
		{name: "manifest tampered after signing", files: with(tampered, sig(trustedKey, m)), wantErr: ErrBadSignature},
		{name: "older version", files: with(manifestEpoch("0.8", "amd64", runningEpoch-1), sig(trustedKey, manifestEpoch("0.8", "amd64", runningEpoch-1))), wantErr: ErrNotNewer},
		{name: "same version", files: with(manifestEpoch("1.0", "amd64", runningEpoch), sig(trustedKey, manifestEpoch("1.0", "amd64", runningEpoch))), wantErr: ErrNotNewer},
		{name: "no trusted key on the appliance", files: with(m, sig(trustedKey, m)),
			setup: func(u *Updater) { must(t, os.Remove(u.KeyFile)) }, want: "update signing key"},
		{name: "running epoch unknown", files: with(m, sig(trustedKey, m)),
			setup: func(u *Updater) { must(t, os.WriteFile(u.OSRelease, []byte("ID=relaygate\n"), 0o644)) }, want: "RELAYGATE_BUILD_EPOCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, oneshots := fixture(t, "relaygate.slot=a")
			if tc.setup != nil {
				tc.setup(u)
			}
			before := takeSnapshot(t, u)
			b, sum := bundle(t, tc.files...)
			_, err := u.Install(context.Background(), bytes.NewReader(b), Options{SHA256: sum})
			if err == nil {
				t.Fatal("Install accepted the bundle")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Install: %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Install: %v, want an error containing %q", err, tc.want)
			}
			if !before.equal(takeSnapshot(t, u)) {
				t.Fatal("a refused bundle changed a partition or the ESP")
			}
			if len(*oneshots) != 0 {
				t.Fatal("oneshot set for a refused bundle")
			}
		})
	}
}

// TestInstallRefusesTamperedFile: a file that does not match the signed
// manifest is refused. Its bytes stream through (the root file system is
// written to the inactive partition as it arrives), but nothing becomes
// bootable: the ESP is as before and the running slot untouched.
func TestInstallRefusesTamperedFile(t *testing.T) {
	m := manifest("1.1", "amd64")
	for name, files := range map[string][]file{
		"root file system": {m, sig(trustedKey, m), {RootName, append(slices.Clone(rootFS), '!')}, {UKIName(SlotA), ukiA}, {UKIName(SlotB), ukiB}},
		"kernel image":     {m, sig(trustedKey, m), {RootName, rootFS}, {UKIName(SlotA), ukiA}, {UKIName(SlotB), []byte("MZ evil init=/bin/sh")}},
	} {
		t.Run(name, func(t *testing.T) {
			u, oneshots := fixture(t, "relaygate.slot=a")
			before := takeSnapshot(t, u)
			b, sum := bundle(t, files...)
			_, err := u.Install(context.Background(), bytes.NewReader(b), Options{SHA256: sum})
			if err == nil || !strings.Contains(err.Error(), "does not match the manifest") {
				t.Fatalf("Install: %v, want a mismatch with the manifest", err)
			}
			after := takeSnapshot(t, u)
			if !bytes.Equal(before.rootA, after.rootA) {
				t.Fatal("the running slot's partition was written")
			}
			before.rootB, after.rootB = nil, nil
			if !before.equal(after) || len(*oneshots) != 0 {
				t.Fatal("a tampered bundle changed the ESP or the next boot")
			}
		})
	}
}

// TestInstallSignedNewer: a bundle signed by a trusted key, newer than the
// running image, installs without the optional digest; a second trusted
// key in the key file (rotation) is accepted as well.
func TestInstallSignedNewer(t *testing.T) {
	u, oneshots := fixture(t, "relaygate.slot=a")
	rotated := append(otherKey.Public().Marshal("new key"), trustedKey.Public().Marshal("old key")...)
	must(t, os.WriteFile(u.KeyFile, rotated, 0o644))
	for i, k := range []*SecretKey{trustedKey, otherKey} {
		m := manifestEpoch("1.1", "amd64", newerEpoch+int64(i))
		b, _ := signedBundle(t, m, k)
		res, err := u.Install(context.Background(), bytes.NewReader(b), Options{})
		if err != nil {
			t.Fatalf("Install (key %d): %v", i, err)
		}
		if res.Slot != SlotB || res.Version != "1.1" {
			t.Fatalf("result %+v", res)
		}
	}
	if len(*oneshots) != 2 {
		t.Fatalf("oneshots %v", *oneshots)
	}
}

// TestInstallForceDowngrade: an older (or the same) version installs only
// with Options.ForceDowngrade, which the HTTP handler never sets, whatever
// the request says; an unsigned bundle is refused even when forced.
func TestInstallForceDowngrade(t *testing.T) {
	older := manifestEpoch("0.8", "amd64", runningEpoch-1)
	b, sum := signedBundle(t, older, trustedKey)

	u, _ := fixture(t, "relaygate.slot=a")
	h := u.Handler(nil)
	before := takeSnapshot(t, u)
	req := httptest.NewRequest(http.MethodPost, "/?sha256="+sum+"&force_downgrade=1&force=1&reboot=0", bytes.NewReader(b))
	req.Header.Set("X-Force-Downgrade", "1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not newer") {
		t.Fatalf("older bundle through the API: %d %s", rec.Code, rec.Body)
	}
	if !before.equal(takeSnapshot(t, u)) {
		t.Fatal("the API's refusal changed a partition or the ESP")
	}

	res, err := u.Install(context.Background(), bytes.NewReader(b), Options{SHA256: sum, ForceDowngrade: true})
	if err != nil {
		t.Fatalf("forced downgrade: %v", err)
	}
	if res.Version != "0.8" || res.Entry != "relaygate-0.8-b+3.efi" {
		t.Fatalf("forced downgrade: %+v", res)
	}

	unsigned, _ := bundle(t, older, file{RootName, rootFS}, file{UKIName(SlotA), ukiA}, file{UKIName(SlotB), ukiB})
	u2, _ := fixture(t, "relaygate.slot=a")
	if _, err := u2.Install(context.Background(), bytes.NewReader(unsigned), Options{ForceDowngrade: true}); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("forced unsigned downgrade: %v, want ErrUnsigned", err)
	}
}

func TestSignifyKeys(t *testing.T) {
	k := mustKeyGen()
	back, err := ParseSecretKey(k.MarshalSecret("test secret key"))
	must(t, err)
	if back.Num != k.Num || !bytes.Equal(back.Key, k.Key) {
		t.Fatal("secret key round trip")
	}
	pubs, err := ParsePublicKeys(k.Public().Marshal("test public key"))
	must(t, err)
	msg := []byte("format=relaygate-update-1\n")
	s, err := ParseSignature(k.Sign(msg, "sig"))
	must(t, err)
	must(t, Verify(pubs, msg, s))

	// A damaged secret key (checksum) and a passphrase-protected one are refused.
	raw, _ := base64.StdEncoding.DecodeString(strings.Split(string(k.MarshalSecret("x")), "\n")[1])
	damaged := slices.Clone(raw)
	damaged[len(damaged)-40] ^= 1
	if _, err := ParseSecretKey([]byte(base64.StdEncoding.EncodeToString(damaged))); err == nil {
		t.Error("damaged secret key accepted")
	}
	withPass := slices.Clone(raw)
	withPass[7] = 42
	if _, err := ParseSecretKey([]byte(base64.StdEncoding.EncodeToString(withPass))); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("passphrase-protected key: %v", err)
	}
	if _, err := ParsePublicKeys([]byte("untrusted comment: nothing\n")); err == nil {
		t.Error("empty key file accepted")
	}
}

// TestSignifyCompatible: signify (Debian's signify-openbsd) verifies our
// signatures with our public key, and we verify signify's signature made
// with a key signify generated, so admins can check a bundle by hand and
// sign with their own tool.
func TestSignifyCompatible(t *testing.T) {
	signify, err := exec.LookPath("signify-openbsd")
	if err != nil {
		if signify, err = exec.LookPath("signify"); err != nil {
			t.Skip("signify not installed (apt-get install signify-openbsd)")
		}
	}
	dir := t.TempDir()
	msg := []byte(manifest("1.1", "amd64").data)
	path := func(n string) string { return filepath.Join(dir, n) }
	must(t, os.WriteFile(path("manifest"), msg, 0o644))

	k := mustKeyGen()
	must(t, os.WriteFile(path("ours.pub"), k.Public().Marshal("relaygate update key"), 0o644))
	must(t, os.WriteFile(path("manifest.sig"), k.Sign(msg, "verify with ours.pub"), 0o644))
	if out, err := exec.Command(signify, "-V", "-p", path("ours.pub"), "-x", path("manifest.sig"), "-m", path("manifest")).CombinedOutput(); err != nil {
		t.Fatalf("signify -V of our signature: %v: %s", err, out)
	}

	if out, err := exec.Command(signify, "-G", "-n", "-p", path("theirs.pub"), "-s", path("theirs.sec")).CombinedOutput(); err != nil {
		t.Fatalf("signify -G: %v: %s", err, out)
	}
	if out, err := exec.Command(signify, "-S", "-s", path("theirs.sec"), "-m", path("manifest"), "-x", path("theirs.sig")).CombinedOutput(); err != nil {
		t.Fatalf("signify -S: %v: %s", err, out)
	}
	pubB, _ := os.ReadFile(path("theirs.pub"))
	sigB, _ := os.ReadFile(path("theirs.sig"))
	secB, _ := os.ReadFile(path("theirs.sec"))
	pubs, err := ParsePublicKeys(pubB)
	must(t, err)
	s, err := ParseSignature(sigB)
	must(t, err)
	must(t, Verify(pubs, msg, s))
	sec, err := ParseSecretKey(secB)
	must(t, err)
	if !bytes.Equal(sec.Public().Key, pubs[0].Key) || sec.Num != pubs[0].Num {
		t.Fatal("signify's secret key does not match its public key")
	}
}
