package smtpproxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/relaygate/relaygate/internal/atomicfile"
	"github.com/relaygate/relaygate/internal/selfsigned"
)

// File names of the inspect CA in the data directory. An admin may
// replace them with a CA of their own (PEM, any key type crypto/tls
// supports); the daemon reads them at start.
const (
	CACertFile = "inspect-ca.pem"
	CAKeyFile  = "inspect-ca-key.pem"
)

// CA signs the certificates the box shows to relays with the inspect policy.
type CA struct {
	Cert *x509.Certificate
	Key  any // crypto.Signer
	// PEM is the CA certificate, to install on the relays.
	PEM []byte
}

// LoadOrCreateCA reads the inspect CA from dir, or creates one there (an
// ECDSA P-256 key, valid ten years) if neither file exists.
func LoadOrCreateCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		return parseCA(certPEM, keyPEM)
	case errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist):
	case cerr != nil:
		return nil, fmt.Errorf("read inspect CA %s: %w", certPath, cerr)
	default:
		return nil, fmt.Errorf("read inspect CA key %s: %w", keyPath, kerr)
	}
	certPEM, keyPEM, err := newCA(time.Now())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create inspect CA: %w", err)
	}
	// Key first: a certificate without its key would block the next start.
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	return parseCA(certPEM, keyPEM)
}

func newCA(now time.Time) (certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM, err = selfsigned.Create(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "relaygate inspect CA", Organization: []string{"relaygate"}},
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, now)
	if err != nil {
		return nil, nil, fmt.Errorf("inspect CA: %w", err)
	}
	return certPEM, keyPEM, nil
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load inspect CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse inspect CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("load inspect CA: the certificate is not a CA")
	}
	return &CA{Cert: cert, Key: pair.PrivateKey, PEM: certPEM}, nil
}

// maxLeafCache bounds the leaf certificates kept in memory.
const maxLeafCache = 4096

// inspector mints and caches leaf certificates for the names and
// addresses relays connect to.
type inspector struct {
	ca  *CA
	key *ecdsa.PrivateKey // one key for all leaves

	mu    sync.Mutex
	cache map[string]*tls.Certificate
}

func newInspector(ca *CA) *inspector {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("generate leaf key: %v", err)) // crypto/rand never fails on Linux
	}
	return &inspector{ca: ca, key: key, cache: map[string]*tls.Certificate{}}
}

// serverConfig is the TLS server side toward a relay that connected to dst:
// a leaf for the name the relay asked for (SNI), or else for dst.
func (in *inspector) serverConfig(dst netip.Addr) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return in.leaf(hi.ServerName, dst)
		},
	}
}

func (in *inspector) leaf(name string, dst netip.Addr) (*tls.Certificate, error) {
	key := name + "|" + dst.String()
	now := time.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.cache[key]; ok && now.Before(c.Leaf.NotAfter.Add(-24*time.Hour)) {
		return c, nil
	}
	if len(in.cache) >= maxLeafCache {
		clear(in.cache)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("leaf serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(0, 0, 30),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{dst.AsSlice()},
	}
	tmpl.Subject.CommonName = dst.String()
	if name != "" {
		tmpl.Subject.CommonName = name
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, in.ca.Cert, &in.key.PublicKey, in.ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign leaf for %s: %w", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse leaf: %w", err)
	}
	c := &tls.Certificate{Certificate: [][]byte{der, in.ca.Cert.Raw}, PrivateKey: in.key, Leaf: leaf}
	in.cache[key] = c
	return c, nil
}
