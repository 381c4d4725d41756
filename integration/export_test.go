package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// The collector's ports in the lab's admin namespace (10.255.0.2), which
// the box reaches over its management port.
const (
	rsyslogTCPPort = 10514
	rsyslogTLSPort = 6514
	collectorName  = "collector.lab.example"
)

// rsyslogConf receives RFC 5424 over plain TCP (imptcp, octet counting)
// and TLS (imtcp with gtls), and writes each line verbatim to a file per
// transport.
func rsyslogConf(dir string) string {
	return fmt.Sprintf(`global(workDirectory=%[1]q
  defaultNetstreamDriverCAFile=%[2]q
  defaultNetstreamDriverCertFile=%[3]q
  defaultNetstreamDriverKeyFile=%[4]q)
module(load="imptcp")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
ruleset(name="tcp") { action(type="omfile" file=%[5]q template="RSYSLOG_SyslogProtocol23Format") }
ruleset(name="tls") { action(type="omfile" file=%[6]q template="RSYSLOG_SyslogProtocol23Format") }
input(type="imptcp" address="10.255.0.2" port="%[7]d" ruleset="tcp")
input(type="imtcp" address="10.255.0.2" port="%[8]d" ruleset="tls")
`, filepath.Join(dir, "work"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"),
		filepath.Join(dir, "tcp.log"), filepath.Join(dir, "tls.log"), rsyslogTCPPort, rsyslogTLSPort)
}

// writeCollectorCerts writes a CA and the collector's certificate for
// collectorName, signed by it.
func writeCollectorCerts(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: collectorName},
		DNSNames: []string{collectorName}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":   {Type: "CERTIFICATE", Bytes: caDER},
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// startRsyslog runs rsyslogd in the admin namespace until the test ends
// or it is stopped.
func startRsyslog(t *testing.T, l *lab.Lab, dir string) *lab.Process {
	t.Helper()
	p, err := l.Start("admin", "rsyslog.log", "rsyslogd", "-n", "-f", filepath.Join(dir, "rsyslog.conf"), "-i", filepath.Join(dir, "rsyslog.pid"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Signal(syscall.SIGKILL, 5*time.Second) })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := l.Run(context.Background(), "admin", "ss", "-Htln")
		if strings.Contains(out, fmt.Sprintf(":%d ", rsyslogTCPPort)) && strings.Contains(out, fmt.Sprintf(":%d ", rsyslogTLSPort)) {
			return p
		}
		if err, done := p.Exited(); done {
			t.Fatalf("rsyslogd exited: %v\n%s", err, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("rsyslogd not listening after 10s:\n%s", p.Output())
	return nil
}

// rfc5424Line is one line of rsyslog's file: RFC 5424 header fields and
// relaygate's structured data.
type rfc5424Line struct {
	pri                    int
	host, app, msgID, sdID string
	params                 map[string]string
}

var rfc5424RE = regexp.MustCompile(`^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[(\S+)((?: [^=\s\]"]{1,32}="(?:[^"\\\]]|\\["\\\]])*")*)\]`)
var sdParamRE = regexp.MustCompile(` ([^=\s\]"]{1,32})="((?:[^"\\\]]|\\["\\\]])*)"`)

// parseLine parses one RFC 5424 line with one SD-ELEMENT (RFC 5424
// section 6: PARAM-VALUE with '"', '\' and ']' escaped).
func parseLine(s string) (rfc5424Line, error) {
	m := rfc5424RE.FindStringSubmatch(s)
	if m == nil {
		return rfc5424Line{}, fmt.Errorf("not RFC 5424 with structured data: %q", s)
	}
	pri, _ := strconv.Atoi(m[1])
	if _, err := time.Parse(time.RFC3339Nano, m[2]); err != nil {
		return rfc5424Line{}, fmt.Errorf("TIMESTAMP %q: %w", m[2], err)
	}
	l := rfc5424Line{pri: pri, host: m[3], app: m[4], msgID: m[6], sdID: m[7], params: map[string]string{}}
	for _, p := range sdParamRE.FindAllStringSubmatch(m[8], -1) {
		l.params[p[1]] = regexp.MustCompile(`\\(["\\\]])`).ReplaceAllString(p[2], "$1")
	}
	return l, nil
}

// collected parses every line of a transport's file.
func collected(t *testing.T, path string) []rfc5424Line {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []rfc5424Line
	for _, s := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if s == "" {
			continue
		}
		l, err := parseLine(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// waitSenders waits until each transport's file holds an event from each
// of senders, and returns the files' lines.
func waitSenders(t *testing.T, dir string, senders []string, within time.Duration) map[string][]rfc5424Line {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := map[string][]rfc5424Line{}
		missing := 0
		for _, tr := range []string{"tcp", "tls"} {
			got[tr] = collected(t, filepath.Join(dir, tr+".log"))
			have := map[string]bool{}
			for _, l := range got[tr] {
				have[l.params["mail_from"]] = true
			}
			for _, s := range senders {
				if !have[s] {
					missing++
				}
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d events are missing at the collector; tcp %d lines, tls %d lines",
				within, missing, 2*len(senders), len(got["tcp"]), len(got["tls"]))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestExportToRsyslog: every event of real traffic through the box (PC
// sessions refused, a relay's message relayed) reaches Debian's rsyslog
// over TCP and over TLS (certificate verified against a CA file for a
// server name), each line RFC 5424 with relaygate's structured data.
// rsyslog then stops; what the box records meanwhile waits in the spool
// (visible in /metrics) and arrives after rsyslog is back: every event
// exactly once on each transport.
func TestExportToRsyslog(t *testing.T) {
	l := needLab(t)
	if _, err := os.Stat("/usr/sbin/rsyslogd"); err != nil {
		t.Skip("rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls; CI installs it)")
	}
	dir := filepath.Join(l.Dir, "rsyslog-"+t.Name())
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeCollectorCerts(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "rsyslog.conf"), []byte(rsyslogConf(dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	rs := startRsyslog(t, l, dir)

	a := startAppliance(t, "enforce", fmt.Sprintf(`export:
  spool_mb: 8
  syslog:
    - {name: rsyslog-tcp, address: "10.255.0.2:%d", transport: tcp}
    - {name: rsyslog-tls, address: "10.255.0.2:%d", transport: tls, ca_file: %q, server_name: %s}
`, rsyslogTCPPort, rsyslogTLSPort, filepath.Join(dir, "ca.pem"), collectorName))

	traffic := func(round string) []string {
		var senders []string
		for i := range 3 {
			from := uniqueSender(t, fmt.Sprintf("bot%s%d", round, i))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := l.Swaks(ctx, "pc", lab.MX4, from, "victim@remote.example")
			cancel()
			if err == nil || !strings.Contains(out, "554") {
				t.Fatalf("PC's session was not refused: %v\n%s", err, out)
			}
			senders = append(senders, from)
		}
		from := uniqueSender(t, "relay"+round)
		sendOK(t, "relay", lab.MX4, from)
		return append(senders, from)
	}

	first := traffic("a")
	got := waitSenders(t, dir, first, 20*time.Second)
	for _, tr := range []string{"tcp", "tls"} {
		for _, ln := range got[tr] {
			if ln.app != "relaygate" || ln.sdID != "relaygate@32473" || ln.params["id"] == "" || ln.msgID != ln.params["kind"] {
				t.Errorf("%s: line %+v: want APP-NAME relaygate, SD-ID relaygate@32473, an id, MSGID = kind", tr, ln)
			}
			switch ln.params["mail_from"] {
			case first[0], first[1], first[2]:
				if ln.params["kind"] != "blocked" || ln.params["client"] != lab.PC4 || ln.params["server"] != lab.MX4 ||
					ln.params["rcpt"] != "victim@remote.example" || ln.pri != 16*8+4 {
					t.Errorf("%s: PC's session: %+v, want blocked from %s to %s for victim@remote.example, PRI 132", tr, ln, lab.PC4, lab.MX4)
				}
			case first[3]:
				if ln.params["kind"] != "relayed" || ln.params["client"] != lab.Relay4 || ln.params["relay"] == "" ||
					ln.params["messages"] != "1" || ln.params["code"] != "250" || ln.pri != 16*8+6 {
					t.Errorf("%s: relay's message: %+v, want relayed from %s, messages 1, code 250, PRI 134", tr, ln, lab.Relay4)
				}
			}
		}
	}

	// The collector goes away; the box keeps recording.
	if err := rs.Signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	second := traffic("b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spooled := regexp.MustCompile(`relaygate_export_spool_bytes\{collector="rsyslog-(tcp|tls)"\} ([1-9]\d*)`)
	for {
		_, body, err := a.APIRaw(ctx, "GET", "/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if m := spooled.FindAllStringSubmatch(string(body), -1); len(m) == 2 {
			t.Logf("while rsyslog is down: %s; %s", m[0][0], m[1][0])
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("/metrics never showed both spools holding the events recorded while rsyslog is down:\n%s", grepLines(string(body), "relaygate_export_"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Until(stopped.Add(10 * time.Second)))
	startRsyslog(t, l, dir)
	got = waitSenders(t, dir, append(first, second...), 30*time.Second)

	for _, tr := range []string{"tcp", "tls"} {
		ids := map[string]int{}
		for _, ln := range got[tr] {
			ids[ln.params["id"]]++
		}
		for id, n := range ids {
			if n != 1 {
				t.Errorf("%s: event %s arrived %d times, want exactly once", tr, id, n)
			}
		}
		perSender := map[string]int{}
		for _, ln := range got[tr] {
			perSender[ln.params["mail_from"]]++
		}
		for _, s := range append(first, second...) {
			if perSender[s] != 1 {
				t.Errorf("%s: %d events from sender %s, want exactly one", tr, perSender[s], s)
			}
		}
		t.Logf("%s: %d lines, %d distinct ids", tr, len(got[tr]), len(ids))
	}
	_, body, err := a.APIRaw(context.Background(), "GET", "/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`relaygate_export_dropped_total{collector="rsyslog-tcp",reason="spool_full"} 0`,
		`relaygate_export_dropped_total{collector="rsyslog-tls",reason="queue_full"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(string(body), "relaygate_export_"))
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
