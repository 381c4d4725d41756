package boot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/webui"
)

// Health check timing: attempts every healthInterval until --timeout is
// used up; one HTTPS request waits at most healthRequestTimeout.
const (
	healthInterval       = 2 * time.Second
	healthRequestTimeout = 5 * time.Second
	// healthPath answers 401 without credentials once the daemon's router,
	// authentication included, serves: no API token is needed to tell.
	healthPath = "/api/v1/status"
)

// health checks that the daemon serves, as the image's boot health check
// did before it was Go: the bridge exists and is up, the web UI listens on
// its port, and, when the box can reach it (the management port has an
// address), the web UI answers over HTTPS
// with the certificate in data_dir (or web.tls_cert) and its API refuses
// an unauthenticated request. A management port without an address (no
// cable, no DHCP answer yet) is not a failure: a good update must not be
// rolled back because the management network is down.
//
// It tries again every healthInterval until timeout has passed (0: once)
// and returns nil with a one-line summary, or the last attempt's reason.
func (m *machine) health(ctx context.Context, cfgPath string, timeout time.Duration) (string, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(timeout)
	for {
		reqTimeout := min(healthRequestTimeout, max(time.Until(deadline), time.Second))
		ok, err := m.healthOnce(ctx, cfg, reqTimeout)
		if err == nil {
			return ok, nil
		}
		if time.Until(deadline) < healthInterval {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (interrupted)", err)
		case <-time.After(healthInterval):
		}
	}
}

// healthOnce is one attempt of health.
func (m *machine) healthOnce(ctx context.Context, cfg *config.Config, reqTimeout time.Duration) (string, error) {
	br := cfg.Interfaces.Bridge
	l, ok, err := m.kernel.Link(br)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", fmt.Errorf("bridge %s does not exist", br)
	case !l.Up:
		return "", fmt.Errorf("bridge %s is not up", br)
	}

	host, portStr, err := net.SplitHostPort(cfg.Web.Listen)
	if err != nil {
		return "", fmt.Errorf("web.listen %q: %w", cfg.Web.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", fmt.Errorf("web.listen %q: bad port", cfg.Web.Listen)
	}
	listening, err := m.tcpListening(port)
	if err != nil {
		return "", err
	}
	if !listening {
		return "", fmt.Errorf("web UI not listening on port %d", port)
	}

	dev := cfg.Interfaces.Management
	target, why := healthTarget(host, dev, m.managementAddrs(dev))
	if target == "" {
		return fmt.Sprintf("ok: bridge %s up, web UI listening on port %d (%s)", br, port, why), nil
	}
	addr := net.JoinHostPort(target, portStr)
	fp, err := m.checkHTTPS(ctx, cfg, dev, addr, reqTimeout)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("ok: bridge %s up, web UI answers at https://%s/ (certificate %s)", br, addr, fp), nil
}

// healthTarget picks the address to reach the web UI at from the box
// itself: the listen address when it is a specific one, else an address
// of the management port, IPv4 first (not the loopback: the socket is
// bound to the management port). "" with the reason when there is none.
func healthTarget(listenHost, dev string, mgmtAddrs []netip.Prefix) (string, string) {
	if a, err := netip.ParseAddr(listenHost); err == nil && !a.IsUnspecified() {
		return a.String(), ""
	}
	var v6 string
	for _, p := range mgmtAddrs {
		if p.Addr().Is4() {
			return p.Addr().String(), ""
		}
		if v6 == "" {
			v6 = p.Addr().String()
		}
	}
	if v6 != "" {
		return v6, ""
	}
	return "", fmt.Sprintf("not connected: management port %s has no address yet", dev)
}

// checkHTTPS connects to the web UI at addr (from a socket bound to dev),
// checks that it serves the certificate of the configuration and that its
// API answers, and returns the certificate's fingerprint.
func (m *machine) checkHTTPS(ctx context.Context, cfg *config.Config, dev, addr string, timeout time.Duration) (string, error) {
	certFile := webui.CertPath(cfg.Web, cfg.DataDir)
	want := firstCertDER(certFile)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return m.kernel.DialTCP(ctx, dev, addr)
		},
		TLSClientConfig: &tls.Config{
			// Self-signed: trust is the certificate file's, checked below.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if want == nil {
					return nil // no file to compare with (yet)
				}
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
					return fmt.Errorf("the served certificate is not %s", certFile)
				}
				return nil
			},
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+healthPath, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // not the URL again
		}
		return "", fmt.Errorf("web UI at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("web UI at %s: GET %s: %s, want 401 Unauthorized", addr, healthPath, resp.Status)
	}
	fp, err := webui.CertFingerprint(certFile)
	if err != nil {
		fp = "unknown"
	}
	return fp, nil
}

// firstCertDER is the first certificate in a PEM file, nil when there is none.
func firstCertDER(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			return b.Bytes
		}
	}
}

// tcpListening reports whether a TCP socket listens on port, IPv4 or
// IPv6 (the kernel's socket tables, as `ss -ltn` reads them).
func (m *machine) tcpListening(port int) (bool, error) {
	found := false
	var errs []error
	for _, f := range []string{"proc/net/tcp", "proc/net/tcp6"} {
		ok, err := listeningIn(m.path(f), port)
		if err != nil {
			errs = append(errs, err)
		}
		found = found || ok
	}
	if found {
		return true, nil
	}
	if len(errs) == 2 {
		return false, errors.Join(errs...)
	}
	return false, nil
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// listeningIn reads one of /proc/net/tcp{,6}: "sl local_address
// rem_address st ...", local_address as HEXADDR:HEXPORT.
func listeningIn(path string, port int) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("read socket table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != tcpListen {
			continue
		}
		i := strings.LastIndexByte(fields[1], ':')
		if i < 0 {
			continue
		}
		if p, err := strconv.ParseUint(fields[1][i+1:], 16, 16); err == nil && int(p) == port {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return false, nil
}
