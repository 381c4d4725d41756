package webui

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/relaygate/relaygate/internal/atomicfile"
)

// certStore holds the HTTPS certificate and lets an administrator replace
// the generated one by upload, live: new handshakes get the new one.
type certStore struct {
	mu   sync.RWMutex
	cert *tls.Certificate
	// dataDir is where an uploaded certificate is kept (as the generated
	// one); empty when web.tls_cert names the files, which the admin
	// manages outside the UI.
	dataDir string
}

func (cs *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	return cs.cert, nil
}

// certInfo describes the certificate in use, for the system page.
type certInfo struct {
	Subject     string    `json:"subject"`
	NotAfter    time.Time `json:"not_after"`
	SHA256      string    `json:"sha256"`
	Replaceable bool      `json:"replaceable"`
}

func (cs *certStore) info() certInfo {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	ci := certInfo{Replaceable: cs.dataDir != ""}
	if cs.cert == nil || len(cs.cert.Certificate) == 0 {
		return ci
	}
	ci.SHA256 = fingerprint(cs.cert.Certificate[0])
	if leaf, err := x509.ParseCertificate(cs.cert.Certificate[0]); err == nil {
		ci.Subject, ci.NotAfter = leaf.Subject.CommonName, leaf.NotAfter.UTC()
	}
	return ci
}

// replace validates a PEM certificate chain and key, saves them over the
// generated files (the previous ones kept as .prev) and serves them.
func (cs *certStore) replace(certPEM, keyPEM []byte, now time.Time) (string, error) {
	if cs.dataDir == "" {
		return "", errors.New("the certificate is configured with web.tls_cert and web.tls_key: replace those files and restart")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return "", fmt.Errorf("certificate and key do not form a pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("parse certificate: %w", err)
	}
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return "", fmt.Errorf("certificate is not valid now (valid %s to %s)", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := atomicfile.WriteKeepPrev(filepath.Join(cs.dataDir, GeneratedKeyFile), keyPEM, 0o600); err != nil {
		return "", err
	}
	if err := atomicfile.WriteKeepPrev(filepath.Join(cs.dataDir, GeneratedCertFile), certPEM, 0o600); err != nil {
		return "", err
	}
	cs.mu.Lock()
	cs.cert = &cert
	cs.mu.Unlock()
	return fingerprint(cert.Certificate[0]), nil
}
