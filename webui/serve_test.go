package webui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
)

// running is a serve call in the background.
type running struct {
	addr   string
	cancel context.CancelFunc
	errc   chan error
}

// startServe runs serve until the test ends or stop is called.
func startServe(t *testing.T, d Deps, web config.Web, dataDir, dev string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	readyc := make(chan net.Addr, 1)
	r := &running{cancel: cancel, errc: make(chan error, 1)}
	go func() {
		r.errc <- serve(ctx, d, web, dataDir, dev, d.Logger, func(a net.Addr) { readyc <- a })
	}()
	select {
	case a := <-readyc:
		r.addr = a.String()
	case err := <-r.errc:
		cancel()
		t.Fatalf("serve(%s) = %v before listening", web.Listen, err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("serve(%s) did not listen within 20s", web.Listen)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels serve and checks that it returned nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.errc == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.errc:
		if err != nil {
			t.Errorf("serve after cancel = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("serve did not return within 20s of cancel")
	}
	r.errc = nil
}

// client trusts only the certificate in certPath.
func client(t *testing.T, certPath string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", certPath)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// loopbackDevice is "lo" when the test may use SO_BINDTODEVICE, else "".
func loopbackDevice(t *testing.T) string {
	if runtime.GOOS == "linux" && os.Geteuid() == 0 {
		return "lo"
	}
	t.Log("not root on Linux: serving without SO_BINDTODEVICE")
	return ""
}

func getStatus(t *testing.T, c *http.Client, addr, auth string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", "https://"+addr+"/api/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /api/v1/status: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestServe(t *testing.T) {
	d, h := testDeps(t)
	h.status.st = Status{Mode: config.Monitor, Version: "test", Started: time.Now().Add(-time.Minute), Serving: true}
	dataDir := filepath.Join(t.TempDir(), "data") // created by Serve
	web := config.Web{Listen: "127.0.0.1:0"}
	dev := loopbackDevice(t)
	certPath := filepath.Join(dataDir, GeneratedCertFile)
	keyPath := filepath.Join(dataDir, GeneratedKeyFile)

	srv := startServe(t, d, web, dataDir, dev)
	c := client(t, certPath)
	resp := getStatus(t, c, srv.addr, bearer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/status = %s, want 200", resp.Status)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != config.Monitor || st.UptimeSeconds < 60 {
		t.Errorf("status = %+v, want mode monitor and uptime of a minute", st)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("TLS state %+v, want TLS 1.2 or later", resp.TLS)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if resp := getStatus(t, c, srv.addr, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/status without token = %s, want 401", resp.Status)
	}

	for _, p := range []string{certPath, keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s mode %o, want 600", p, m)
		}
	}
	fp, err := CertFingerprint(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := fingerprint(resp.TLS.PeerCertificates[0].Raw); got != fp {
		t.Errorf("served certificate %s, want %s from %s", got, fp, certPath)
	}

	leaf := resp.TLS.PeerCertificates[0]
	host, _ := os.Hostname()
	if leaf.IsCA || !strings.Contains(strings.Join(leaf.DNSNames, " "), host) ||
		len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("certificate IsCA %v DNS %v IP %v, want no CA, %q, 127.0.0.1", leaf.IsCA, leaf.DNSNames, leaf.IPAddresses, host)
	}
	if v := leaf.NotAfter.Sub(leaf.NotBefore); v < certValidity {
		t.Errorf("certificate valid for %s, want at least %s", v, certValidity)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("certificate key %T, want ECDSA P-256", leaf.PublicKey)
	}

	// Old protocol versions are refused.
	conn, err := tls.Dial("tcp", srv.addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Errorf("TLS 1.1 handshake succeeded, want failure")
	}

	srv.stop(t)

	// A restart reuses the certificate.
	srv = startServe(t, d, web, dataDir, dev)
	resp = getStatus(t, client(t, certPath), srv.addr, bearer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/status after restart = %s, want 200", resp.Status)
	}
	if got := fingerprint(resp.TLS.PeerCertificates[0].Raw); got != fp {
		t.Errorf("after restart served certificate %s, want the first one %s", got, fp)
	}
	if fp2, err := CertFingerprint(certPath); err != nil || fp2 != fp {
		t.Errorf("CertFingerprint after restart = %s, %v, want %s", fp2, err, fp)
	}
}

func TestServeConfiguredCert(t *testing.T) {
	d, _ := testDeps(t)
	dir := t.TempDir()
	certPEM, keyPEM, err := generateCert("relaygate.example.net", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	web := config.Web{
		Listen:  "127.0.0.1:0",
		TLSCert: filepath.Join(dir, "cert.pem"),
		TLSKey:  filepath.Join(dir, "key.pem"),
	}
	os.WriteFile(web.TLSCert, certPEM, 0o644)
	os.WriteFile(web.TLSKey, keyPEM, 0o600)
	dataDir := filepath.Join(dir, "data")

	if got := CertPath(web, dataDir); got != web.TLSCert {
		t.Errorf("CertPath = %s, want %s", got, web.TLSCert)
	}
	srv := startServe(t, d, web, dataDir, "")
	resp := getStatus(t, client(t, web.TLSCert), srv.addr, bearer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/status = %s, want 200", resp.Status)
	}
	fp, err := CertFingerprint(web.TLSCert)
	if err != nil {
		t.Fatal(err)
	}
	if got := fingerprint(resp.TLS.PeerCertificates[0].Raw); got != fp {
		t.Errorf("served certificate %s, want the configured %s", got, fp)
	}
	// data_dir holds only the setup token (no administrator yet), no
	// generated certificate.
	for _, f := range []string{GeneratedCertFile, GeneratedKeyFile} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); !os.IsNotExist(err) {
			t.Errorf("%s was generated (%v), want nothing generated", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, SetupTokenFile)); err != nil {
		t.Errorf("setup token file: %v, want it written", err)
	}
}

func TestServeErrors(t *testing.T) {
	d, _ := testDeps(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt")
	os.Mkdir(corrupt, 0o700)
	os.WriteFile(filepath.Join(corrupt, GeneratedCertFile), []byte("not a certificate"), 0o600)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	noTokens := d
	noTokens.Tokens = nil

	type tc struct {
		name    string
		d       Deps
		web     config.Web
		dataDir string
		dev     string
		want    string
	}
	cases := []tc{
		{"missing deps", noTokens, config.Web{Listen: "127.0.0.1:0"}, dir, "", "Deps.Tokens is nil"},
		{"bad listen", d, config.Web{Listen: "127.0.0.1:99999"}, dir, "", "listen on 127.0.0.1:99999"},
		{"port in use", d, config.Web{Listen: busy.Addr().String()}, dir, "", "address already in use"},
		{"missing configured cert", d, config.Web{Listen: "127.0.0.1:0", TLSCert: filepath.Join(dir, "nope.pem"), TLSKey: filepath.Join(dir, "nope-key.pem")}, dir, "", "web.tls_cert"},
		{"corrupt generated cert", d, config.Web{Listen: "127.0.0.1:0"}, corrupt, "", "delete it"},
		{"no data dir", d, config.Web{Listen: "127.0.0.1:0"}, "", "", "no data_dir"},
	}
	if runtime.GOOS == "linux" && os.Geteuid() == 0 {
		cases = append(cases, tc{"no such device", d, config.Web{Listen: "127.0.0.1:0"}, dir, "rgnodev0", "SO_BINDTODEVICE(rgnodev0)"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Serve(ctx, tc.d, tc.web, tc.dataDir, tc.dev, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Serve = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCertFingerprint(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := generateCert("relaygate", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	sum := sha256.Sum256(b.Bytes)
	var parts []string
	for _, b := range sum {
		parts = append(parts, fmt.Sprintf("%02X", b))
	}
	want := strings.Join(parts, ":")

	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want, wantErr string
	}{
		{"cert", write("cert.pem", certPEM), want, ""},
		{"key before cert", write("both.pem", append(append([]byte{}, keyPEM...), certPEM...)), want, ""},
		{"missing", filepath.Join(dir, "nope.pem"), "", "no such file"},
		{"not pem", write("junk.pem", []byte("hello")), "", "no PEM CERTIFICATE block"},
		{"key only", write("key.pem", keyPEM), "", "no PEM CERTIFICATE block"},
		{"bad der", write("bad.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), "", "bad.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CertFingerprint(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("CertFingerprint(%s) = %q, %v, want an error containing %q", tc.path, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("CertFingerprint(%s) = %q, %v, want %q", tc.path, got, err, tc.want)
			}
			if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(got) {
				t.Errorf("CertFingerprint(%s) = %q, want 32 colon-separated upper-case hex octets", tc.path, got)
			}
		})
	}
}
