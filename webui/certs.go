package webui

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
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
	if err := config.WriteFileAtomic(filepath.Join(cs.dataDir, GeneratedKeyFile), keyPEM, true); err != nil {
		return "", err
	}
	if err := config.WriteFileAtomic(filepath.Join(cs.dataDir, GeneratedCertFile), certPEM, true); err != nil {
		return "", err
	}
	cs.mu.Lock()
	cs.cert = &cert
	cs.mu.Unlock()
	return fingerprint(cert.Certificate[0]), nil
}

// readUpload reads one uploaded file of at most limit bytes.
func readUpload(fh *multipart.FileHeader, limit int64) ([]byte, error) {
	if fh.Size > limit {
		return nil, fmt.Errorf("%s larger than %d bytes", fh.Filename, limit)
	}
	f, err := fh.Open()
	if err != nil {
		return nil, fmt.Errorf("read upload: %w", err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// maxPEMBytes bounds an uploaded certificate chain or key.
const maxPEMBytes = 64 << 10

// postCertificate replaces the HTTPS certificate (multipart fields "cert"
// and "key", PEM).
func (s *server) postCertificate(c *gin.Context) {
	if s.certs == nil {
		s.renderMessage(c, http.StatusNotImplemented, "cert_none")
		return
	}
	var pems [2][]byte
	var err error
	for i, field := range []string{"cert", "key"} {
		var fh *multipart.FileHeader
		if fh, err = c.FormFile(field); err != nil {
			err = fmt.Errorf("no file uploaded (field %q)", field)
			break
		}
		if pems[i], err = readUpload(fh, maxPEMBytes); err != nil {
			break
		}
	}
	var fp string
	if err == nil {
		fp, err = s.certs.replace(pems[0], pems[1], s.now())
	}
	if err != nil {
		s.systemPage(c, http.StatusBadRequest, gin.H{"CertError": err.Error()})
		return
	}
	s.audit(c, "", "certificate.replace", "HTTPS certificate replaced, SHA-256 "+fp)
	s.log.Info("HTTPS certificate replaced", "cert_sha256", fp, "actor", c.GetString(actorKey))
	c.Redirect(http.StatusSeeOther, "/system?cert=1")
}

// apiCertificate answers POST /api/v1/system/certificate
// {"cert_pem": "...", "key_pem": "..."} with the new certificate's info.
func (s *server) apiCertificate(c *gin.Context) {
	if s.certs == nil {
		abortError(c, http.StatusNotImplemented, "the certificate cannot be replaced here")
		return
	}
	var req struct {
		CertPEM string `json:"cert_pem"`
		KeyPEM  string `json:"key_pem"`
	}
	if err := json.NewDecoder(io.LimitReader(c.Request.Body, 3*maxPEMBytes)).Decode(&req); err != nil {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid JSON body (want {\"cert_pem\": \"...\", \"key_pem\": \"...\"}): %v", err))
		return
	}
	fp, err := s.certs.replace([]byte(req.CertPEM), []byte(req.KeyPEM), s.now())
	if err != nil {
		abortError(c, http.StatusBadRequest, err.Error())
		return
	}
	s.audit(c, "", "certificate.replace", "HTTPS certificate replaced, SHA-256 "+fp)
	c.JSON(http.StatusOK, s.certs.info())
}
