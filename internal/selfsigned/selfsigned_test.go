package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"
)

func TestCreate(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "box.example"}, NotAfter: now.AddDate(1, 0, 0),
		DNSNames: []string{"box.example"}, KeyUsage: x509.KeyUsageDigitalSignature}
	certPEM, keyPEM, err := Create(tmpl, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotBefore.Equal(now.Add(-time.Hour)) || c.Subject.CommonName != "box.example" || c.SerialNumber.Sign() <= 0 {
		t.Errorf("certificate: not before %v, subject %q, serial %v", c.NotBefore, c.Subject.CommonName, c.SerialNumber)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if tmpl.SerialNumber != nil {
		t.Errorf("Create changed the caller's template")
	}
	// Two certificates never share a serial number.
	second, _, err := Create(tmpl, now)
	if err != nil {
		t.Fatal(err)
	}
	if string(second) == string(certPEM) {
		t.Errorf("two certificates are identical")
	}
	if _, _, err := Create(&x509.Certificate{}, now); err == nil {
		t.Errorf("Create without NotAfter succeeded")
	}
}
