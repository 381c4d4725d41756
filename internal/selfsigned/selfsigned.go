// Package selfsigned makes the appliance's own self-signed certificates:
// the web UI's HTTPS certificate and the CA of the inspect STARTTLS policy.
package selfsigned

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Create signs tmpl with itself and a new ECDSA P-256 key and returns the
// certificate and the key (PKCS #8) in PEM. It sets tmpl's serial number
// (128 random bits) and, when zero, NotBefore to an hour before now, so
// that a peer whose clock is a little behind accepts it. The caller sets
// the subject, NotAfter and the usages.
func Create(tmpl *x509.Certificate, now time.Time) (certPEM, keyPEM []byte, err error) {
	if tmpl.NotAfter.IsZero() {
		return nil, nil, errors.New("self-signed certificate: NotAfter not set")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ECDSA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial number: %w", err)
	}
	t := *tmpl
	t.SerialNumber = serial
	if t.NotBefore.IsZero() {
		t.NotBefore = now.Add(-time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, &t, &t, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate %q: %w", t.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal ECDSA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
