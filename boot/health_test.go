package boot

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/webui"
)

// procTCP is a /proc/net/tcp with a listening socket on port (and an
// established connection from it, which must not count).
func procTCP(port int) string {
	return "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		fmt.Sprintf("   0: 00000000:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n", port) +
		"   1: 0100007F:0019 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n"
}

func TestHealth(t *testing.T) {
	certPEM, keyPEM := selfSigned(t)
	otherCert, otherKey := selfSigned(t)
	// status is what the fake daemon answers GET /api/v1/status with.
	status := http.StatusUnauthorized
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != healthPath {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	})
	serve := func(t *testing.T, certPEM, keyPEM []byte) *httptest.Server {
		srv := httptest.NewUnstartedServer(handler)
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake of "another certificate"
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	mine := serve(t, certPEM, keyPEM)
	stranger := serve(t, otherCert, otherKey)
	port := mine.Listener.Addr().(*net.TCPAddr).Port

	up := map[string]link{
		"br0":  {Up: true},
		"ens3": {Up: true, Addrs: []netip.Prefix{pfx("fe80::5/64"), pfx("2001:db8::5/64"), pfx("192.168.77.50/24")}},
	}
	withLinks := func(changes map[string]link) map[string]link {
		m := map[string]link{}
		for k, v := range up {
			m[k] = v
		}
		for k, v := range changes {
			if v.Up || v.Addrs != nil {
				m[k] = v
			} else {
				delete(m, k)
			}
		}
		return m
	}
	const mgmt = "  management: ens3\n"

	for _, tc := range []struct {
		name      string
		mgmtLine  string // the interfaces.management line, if any
		listen    string // default 0.0.0.0:PORT
		links     map[string]link
		proc      string // /proc/net/tcp6; default: listening on PORT
		server    *httptest.Server
		status    int
		wantErr   string // substring
		wantOK    string // substring
		wantDials []string
	}{
		{name: "serving", mgmtLine: mgmt, links: up,
			wantOK:    fmt.Sprintf("ok: bridge br0 up, web UI answers at https://192.168.77.50:%d/ (certificate ", port),
			wantDials: []string{fmt.Sprintf("ens3 192.168.77.50:%d", port)}},
		{name: "ipv6 management address only", mgmtLine: mgmt,
			links:     withLinks(map[string]link{"ens3": {Up: true, Addrs: []netip.Prefix{pfx("fe80::5/64"), pfx("2001:db8::5/64")}}}),
			wantOK:    fmt.Sprintf("answers at https://[2001:db8::5]:%d/", port),
			wantDials: []string{fmt.Sprintf("ens3 [2001:db8::5]:%d", port)}},
		{name: "specific listen address", mgmtLine: mgmt, links: up, listen: fmt.Sprintf("192.168.77.50:%d", port),
			wantOK: "answers at https://192.168.77.50:", wantDials: []string{fmt.Sprintf("ens3 192.168.77.50:%d", port)}},
		{
			// Cable unplugged or DHCP slow: not a reason to roll back an update.
			name: "management port without address", mgmtLine: mgmt,
			links:  withLinks(map[string]link{"ens3": {Up: true, Addrs: []netip.Prefix{pfx("fe80::5/64")}}}),
			wantOK: fmt.Sprintf("ok: bridge br0 up, web UI listening on port %d (not connected: management port ens3 has no address yet)", port),
		},
		{name: "no bridge", mgmtLine: mgmt, links: withLinks(map[string]link{"br0": {}}), wantErr: "bridge br0 does not exist"},
		{name: "bridge down", mgmtLine: mgmt, links: withLinks(map[string]link{"br0": {Addrs: []netip.Prefix{}}}), wantErr: "bridge br0 is not up"},
		{name: "not listening", mgmtLine: mgmt, links: up, proc: procTCP(port + 1), wantErr: fmt.Sprintf("web UI not listening on port %d", port)},
		{name: "another certificate", mgmtLine: mgmt, links: up, server: stranger,
			wantErr: "the served certificate is not "},
		{name: "server error", mgmtLine: mgmt, links: up, status: http.StatusInternalServerError,
			wantErr: "GET /api/v1/status: 500 Internal Server Error, want 401 Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			data := t.TempDir()
			writeFile(t, data, webui.GeneratedCertFile, string(certPEM))
			listen := tc.listen
			if listen == "" {
				listen = "0.0.0.0:" + strconv.Itoa(port)
			}
			cfg := writeFile(t, t.TempDir(), "relaygate.yaml", "interfaces:\n"+tc.mgmtLine+"  inside: ens4\n  outside: ens5\n"+
				"web:\n  listen: \""+listen+"\"\ndata_dir: "+data+"\n")
			proc := tc.proc
			if proc == "" {
				proc = procTCP(port)
			}
			writeFile(t, root, "proc/net/tcp6", proc)
			srv := tc.server
			if srv == nil {
				srv = mine
			}
			status = tc.status
			if status == 0 {
				status = http.StatusUnauthorized
			}
			k := &fakeKernel{links: tc.links, dialTo: srv.Listener.Addr().String()}
			m := &machine{root: root, kernel: k}

			ok, err := m.health(t.Context(), cfg, 0)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("health = %q, %v; want error %q", ok, err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("health: %v", err)
			case !strings.Contains(ok, tc.wantOK):
				t.Errorf("health = %q, want %q", ok, tc.wantOK)
			}
			if tc.wantDials != nil && strings.Join(k.dials, ",") != strings.Join(tc.wantDials, ",") {
				t.Errorf("dialed %q, want %q", k.dials, tc.wantDials)
			}
		})
	}
}

// TestHealthWaits: the bridge comes up while health waits for it.
func TestHealthWaits(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "proc/net/tcp", procTCP(8443))
	cfg := writeFile(t, t.TempDir(), "relaygate.yaml", "interfaces: {management: ens3, inside: ens4, outside: ens5}\ndata_dir: "+t.TempDir()+"\n")
	calls := 0
	k := &fakeKernel{links: map[string]link{}, linkHook: func(k *fakeKernel) {
		if calls++; calls == 2 {
			k.links["br0"] = link{Up: true}
		}
	}}
	m := &machine{root: root, kernel: k}
	// The management port has no address: once the bridge is up, health
	// passes on the listening socket.
	start := time.Now()
	ok, err := m.health(t.Context(), cfg, 10*time.Second)
	if err != nil || !strings.Contains(ok, "not connected") {
		t.Errorf("health = %q, %v; want success once the bridge came up", ok, err)
	}
	if calls < 2 || time.Since(start) < healthInterval {
		t.Errorf("health tried %d times in %v; want it to wait and try again", calls, time.Since(start))
	}
	// Without a bridge it gives up after the timeout, with the reason.
	k.linkHook = nil
	delete(k.links, "br0")
	start = time.Now()
	if _, err := m.health(t.Context(), cfg, 3*time.Second); err == nil || !strings.Contains(err.Error(), "bridge br0 does not exist") ||
		time.Since(start) < 2*time.Second {
		t.Errorf("health without a bridge = %v after %v; want the reason after about 3s", err, time.Since(start))
	}
	if _, err := m.health(t.Context(), filepath.Join(t.TempDir(), "none.yaml"), 0); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("health without a configuration = %v; want the read error", err)
	}
}

// TestListeningIn reads the real socket table with a real listener.
func TestListeningIn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	m := &machine{root: "/"}
	if ok, err := m.tcpListening(port); !ok || err != nil {
		t.Errorf("tcpListening(%d) = %v, %v; want true", port, ok, err)
	}
	ln.Close()
	if ok, err := m.tcpListening(port); ok || err != nil {
		t.Errorf("tcpListening(%d) after close = %v, %v; want false", port, ok, err)
	}
}
