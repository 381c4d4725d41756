package smtpproxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

// startTLS upgrades the client after a 220 to STARTTLS.
func (c *smtpClient) startTLS(cfg *tls.Config) *tls.ConnectionState {
	c.t.Helper()
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = textproto.NewReader(bufio.NewReader(tc))
	cs := tc.ConnectionState()
	return &cs
}

func TestSTARTTLSPassthrough(t *testing.T) {
	srvCfg, pool := fakemx.SelfSigned(t, "mx.example.net")
	mx := fakemx.Start(t, "127.0.0.1:0", fakemx.Options{TLSConfig: srvCfg})
	tp := relayProxy(t, mx.Addr(), Options{DataDir: t.TempDir()}) // a CA exists, but the relay's policy is passthrough
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps(
		[2]string{"", "220 fakemx.test ESMTP Service Ready"},
		[2]string{"EHLO relay.example.org", "250 Hello relay.example.org\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nCHUNKING\nSTARTTLS\nSIZE 33554432"},
		[2]string{"STARTTLS", "220 2.0.0 Ready to start TLS"},
	)
	// The relay verifies the real MX's certificate through the box.
	c.startTLS(&tls.Config{RootCAs: pool, ServerName: "mx.example.net"})
	c.steps([2]string{"EHLO relay.example.org", mxEHLO})
	if got := c.sendMail("a@example.org", []string{"b@example.net"}, "Subject: tls\r\n\r\nsecret\r\n"); got[len(got)-1] != "250 2.0.0 OK: queued" {
		t.Fatalf("mail over TLS: %q", got)
	}
	c.cmd("QUIT")
	c.conn.Close()
	msgs, err := mx.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].TLS == nil || msgs[0].ClientAddr.String() != "127.0.0.1" {
		t.Errorf("message TLS %v from %s, want TLS from 127.0.0.1", msgs[0].TLS != nil, msgs[0].ClientAddr)
	}
	evs := tp.rec.wait(t, 1)
	if evs[0].Kind != event.Relayed || evs[0].TLS != config.TLSPassthrough || evs[0].MailFrom != "" || !strings.Contains(evs[0].Detail, "envelope not visible") {
		t.Errorf("event %+v, want relayed, TLS passthrough, no envelope", evs[0])
	}
}

func TestSTARTTLSRefusedByRemote(t *testing.T) {
	mx := startRawMX(t, &rawMX{ehlo: []string{"STARTTLS"}, replies: map[string]string{"STARTTLS": "454 4.7.0 TLS not available due to temporary reason"}})
	tp := relayProxy(t, mx.addr, Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps(
		[2]string{"", "220 rawmx.test ESMTP"},
		[2]string{"EHLO r", "250 rawmx.test\nSTARTTLS"},
		[2]string{"STARTTLS", "454 4.7.0 TLS not available due to temporary reason"},
		[2]string{"QUIT", "221 2.0.0 Bye"},
	)
}

func inspectProxy(t *testing.T, mx netip.AddrPort) (*testProxy, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	tp := relayProxy(t, mx, Options{DataDir: dir, TLSPolicies: map[string]string{"mail-relay": config.TLSInspect}})
	pem, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in", CACertFile)
	}
	return tp, pool
}

func TestSTARTTLSInspect(t *testing.T) {
	srvCfg, _ := fakemx.SelfSigned(t, "mx.example.net")
	mx := fakemx.Start(t, "127.0.0.1:0", fakemx.Options{TLSConfig: srvCfg})
	tp, boxCA := inspectProxy(t, mx.Addr())
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps(
		[2]string{"", "220 fakemx.test ESMTP Service Ready"},
		[2]string{"EHLO relay.example.org", "250 Hello relay.example.org\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nCHUNKING\nSTARTTLS\nSIZE 33554432"},
		[2]string{"STARTTLS", "220 2.0.0 Ready to start TLS"},
	)
	cs := c.startTLS(&tls.Config{RootCAs: boxCA, ServerName: "mx.example.net"})
	if got := cs.PeerCertificates[0].Issuer.CommonName; got != "relaygate inspect CA" {
		t.Errorf("client sees a certificate issued by %q, want the box CA", got)
	}
	c.steps([2]string{"EHLO relay.example.org", mxEHLO}, [2]string{"STARTTLS", "503 5.5.1 TLS already active"})
	if got := c.sendMail("a@example.org", []string{"b@example.net"}, "Subject: inspected\r\n\r\nx\r\n"); got[len(got)-1] != "250 2.0.0 OK: queued" {
		t.Fatalf("mail over TLS: %q", got)
	}
	msgs, err := mx.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].TLS == nil {
		t.Errorf("the remote got the message in clear, want TLS from the proxy")
	}
	evs := tp.rec.wait(t, 1)
	want := struct{ TLS, From string }{config.TLSInspect, "a@example.org"}
	if diff := cmp.Diff(want, struct{ TLS, From string }{evs[0].TLS, evs[0].MailFrom}); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

// TestInspectNeverDowngrades: a client that started TLS gets 421 inside
// TLS when TLS onward fails, never a session in clear.
func TestInspectNeverDowngrades(t *testing.T) {
	mx := startRawMX(t, &rawMX{ehlo: []string{"STARTTLS"}, replies: map[string]string{"STARTTLS": "220 2.0.0 Go ahead"}, tlsJunk: true})
	tp, boxCA := inspectProxy(t, mx.addr)
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps([2]string{"", "220 rawmx.test ESMTP"}, [2]string{"EHLO r", "250 rawmx.test\nSTARTTLS"}, [2]string{"STARTTLS", "220 2.0.0 Go ahead"})
	c.startTLS(&tls.Config{RootCAs: boxCA, ServerName: "mx.example.net"})
	c.steps([2]string{"", "421 4.7.0 TLS with the destination failed, try again later"}, [2]string{"", "EOF"})
	evs := tp.rec.wait(t, 1)
	if evs[0].Kind != event.UpstreamError {
		t.Errorf("event %+v, want upstream_error", evs[0])
	}
}

func TestLoadOrCreateCA(t *testing.T) {
	dir := t.TempDir()
	ca1, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca1.Cert.Equal(ca2.Cert) {
		t.Errorf("second start made a new CA, want the stored one")
	}
	// A replaced CA is used.
	other := t.TempDir()
	ca3, err := LoadOrCreateCA(other)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CACertFile, CAKeyFile} {
		b, _ := os.ReadFile(filepath.Join(other, f))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca4, err := LoadOrCreateCA(dir)
	if err != nil || !ca4.Cert.Equal(ca3.Cert) {
		t.Errorf("replaced CA: %v, equal %v; want the replacement", err, err == nil && ca4.Cert.Equal(ca3.Cert))
	}
	// Only one of the two files: an error, not a silent new CA.
	os.Remove(filepath.Join(dir, CAKeyFile))
	if _, err := LoadOrCreateCA(dir); err == nil {
		t.Errorf("LoadOrCreateCA with the key missing = nil error, want one")
	}
}
