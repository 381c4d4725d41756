package webui

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// multipartFiles posts files (form field -> content, named field.pem) as
// multipart/form-data with the CSRF token.
func (b *browser) multipartFiles(target string, files map[string]string) *httptest.ResponseRecorder {
	b.t.Helper()
	named := map[string][2]string{}
	for field, content := range files {
		named[field] = [2]string{field + ".pem", content}
	}
	return b.postFiles(target, named)
}

func TestCertificateUpload(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	oldCert, oldKey, err := generateCert("relaygate", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, _ := tls.X509KeyPair(oldCert, oldKey)
	cs := &certStore{cert: &pair, dataDir: dir}
	os.WriteFile(filepath.Join(dir, GeneratedCertFile), oldCert, 0o600)
	os.WriteFile(filepath.Join(dir, GeneratedKeyFile), oldKey, 0o600)

	d, h := testDeps(t)
	d.certs = cs
	b := h.adminBrowser(t, d)
	oldFP := cs.info().SHA256
	if w := b.do("GET", "/system", nil, nil); !strings.Contains(w.Body.String(), oldFP) {
		t.Errorf("system page does not show the certificate's fingerprint")
	}

	newCert, newKey, _ := generateCert("mail-guard.example.net", []netip.Addr{netip.MustParseAddr("192.0.2.10")}, now)
	_, otherKey, _ := generateCert("other", nil, now)
	for name, files := range map[string]map[string]string{
		"mismatched key": {"cert": string(newCert), "key": string(otherKey)},
		"not PEM":        {"cert": "hello", "key": "world"},
		"key missing":    {"cert": string(newCert)},
	} {
		w := b.multipartFiles("/system/certificate", files)
		if w.Code != 400 || !strings.Contains(w.Body.String(), "cert-error") {
			t.Errorf("%s: upload = %d, want 400 with an error", name, w.Code)
		}
		if cs.info().SHA256 != oldFP {
			t.Errorf("%s: certificate changed", name)
		}
	}
	w := b.multipartFiles("/system/certificate", map[string]string{"cert": string(newCert), "key": string(newKey)})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("upload = %d %s", w.Code, w.Body)
	}
	got, _ := cs.get(nil)
	if fp := fingerprint(got.Certificate[0]); fp == oldFP || cs.info().Subject != "mail-guard.example.net" {
		t.Errorf("served certificate %s (%s), want the uploaded one", fp, cs.info().Subject)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, GeneratedCertFile)); !bytes.Equal(b, newCert) {
		t.Error("uploaded certificate not saved")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, GeneratedCertFile+".prev")); !bytes.Equal(b, oldCert) {
		t.Error("previous certificate not kept as .prev")
	}
	if e := h.auditLast(t); e.Action != "certificate.replace" || !strings.Contains(e.Detail, cs.info().SHA256) {
		t.Errorf("audit %+v", e)
	}

	// The API does the same.
	apiCert, apiKey, _ := generateCert("api.example.net", nil, now)
	body, _ := json.Marshal(map[string]string{"cert_pem": string(apiCert), "key_pem": string(apiKey)})
	if w := h.do(t, "POST", "/api/v1/system/certificate", bearer, string(body)); w.Code != 200 || cs.info().Subject != "api.example.net" {
		t.Errorf("POST /api/v1/system/certificate = %d %s", w.Code, w.Body)
	}
	if w := h.do(t, "POST", "/api/v1/system/certificate", bearer, `{"cert_pem": "x", "key_pem": "y"}`); w.Code != 400 || !strings.Contains(decodeError(t, w), "do not form a pair") {
		t.Errorf("POST /api/v1/system/certificate with junk = %d %s", w.Code, w.Body)
	}

	// Configured files are not replaced from the UI.
	cs.dataDir = ""
	if _, err := cs.replace(newCert, newKey, now); err == nil || !strings.Contains(err.Error(), "web.tls_cert") {
		t.Errorf("replace with configured files = %v, want an error naming web.tls_cert", err)
	}
	// Without Serve there is nothing to replace.
	_, b2 := loggedIn(t)
	if w := b2.multipartFiles("/system/certificate", map[string]string{"cert": string(newCert), "key": string(newKey)}); w.Code != http.StatusNotImplemented {
		t.Errorf("upload without a certStore = %d, want 501", w.Code)
	}
}
