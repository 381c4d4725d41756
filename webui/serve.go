package webui

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/internal/atomicfile"
	"github.com/relaygate/relaygate/internal/selfsigned"
)

// Files of the generated certificate in data_dir, used when web.tls_cert
// is not set. Delete both to get a new certificate (e.g. after changing
// web.listen, whose address is in it).
const (
	GeneratedCertFile = "web-cert.pem"
	GeneratedKeyFile  = "web-key.pem"
)

// HTTP server timeouts. The write timeout leaves room for a slow
// PUT /api/v1/config (Apply may rebuild the ruleset).
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = applyTimeout + 30*time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 10 * time.Second
	certValidity      = 10 * 365 * 24 * time.Hour
)

// CertPath returns the certificate file Serve uses: web.tls_cert when
// set, else the generated one in dataDir. For printing its fingerprint.
func CertPath(web config.Web, dataDir string) string {
	if web.TLSCert != "" {
		return web.TLSCert
	}
	return filepath.Join(dataDir, GeneratedCertFile)
}

// Serve serves NewRouter(d) over HTTPS (TLS 1.2 or later) on web.Listen
// until ctx is canceled, then shuts down gracefully and returns nil.
//
// The certificate is web.TLSCert/TLSKey when set; otherwise one generated
// on first start (ECDSA P-256, self-signed, valid for 10 years, for the
// host name and the listen address unless it is unspecified) and kept in
// dataDir as GeneratedCertFile and GeneratedKeyFile, so that its
// fingerprint stays the same across restarts.
//
// When bindDevice is set (the management interface), the socket is bound
// to it with SO_BINDTODEVICE, so that the UI is not reachable through the
// bridge even when web.Listen is 0.0.0.0 (Linux only). logger (nil: use
// d.Logger) receives the server's and the handlers' logs.
func Serve(ctx context.Context, d Deps, web config.Web, dataDir, bindDevice string, logger *slog.Logger) error {
	return serve(ctx, d, web, dataDir, bindDevice, logger, nil)
}

// serve is Serve; ready, when not nil, is called with the bound address
// once the socket listens.
func serve(ctx context.Context, d Deps, web config.Web, dataDir, bindDevice string, logger *slog.Logger, ready func(net.Addr)) error {
	if err := d.check(); err != nil {
		return err
	}
	if logger == nil {
		logger = d.Logger
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d.Logger = logger
	log := logger.With("component", "webui")

	// No default password: while there is no administrator, a one-time
	// setup token is printed and written to data_dir.
	if _, err := PrepareSetup(ctx, d, dataDir, d.Console); err != nil {
		return err
	}
	cert, certPath, err := serverCert(web, dataDir, time.Now())
	if err != nil {
		return err
	}
	cs := &certStore{cert: &cert}
	if web.TLSCert == "" {
		cs.dataDir = dataDir
	}
	d.certs = cs
	lc := net.ListenConfig{Control: bindToDevice(bindDevice)}
	ln, err := lc.Listen(ctx, "tcp", web.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (device %q): %w", web.Listen, bindDevice, err)
	}
	srv := &http.Server{
		Handler: NewRouter(d),
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Through certStore, so that an uploaded certificate is
			// served from the next handshake on.
			GetCertificate: cs.get,
			// TLS 1.2 only: forward-secret AEAD suites. TLS 1.3 suites
			// are not configurable and all good.
			CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
				tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
			},
		},
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Mostly "TLS handshake error" from browsers that do not trust
		// the self-signed certificate yet: noise at any higher level.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("web UI listening", "addr", ln.Addr().String(), "device", bindDevice,
		"cert", certPath, "cert_sha256", fingerprint(cert.Certificate[0]))
	if ready != nil {
		ready(ln.Addr())
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTPS on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("shut down web UI: %w", err), srv.Close())
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve HTTPS on %s: %w", ln.Addr(), serr))
	}
	log.Info("web UI stopped")
	return err
}

// serverCert loads the configured certificate, or the generated one,
// generating it on first use. It returns the certificate file's path.
func serverCert(web config.Web, dataDir string, now time.Time) (tls.Certificate, string, error) {
	if web.TLSCert != "" || web.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(web.TLSCert, web.TLSKey)
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("load web.tls_cert %s, web.tls_key %s: %w", web.TLSCert, web.TLSKey, err)
		}
		return cert, web.TLSCert, nil
	}
	if dataDir == "" {
		return tls.Certificate{}, "", errors.New("no web.tls_cert and no data_dir to keep a generated certificate in")
	}
	certPath := filepath.Join(dataDir, GeneratedCertFile)
	keyPath := filepath.Join(dataDir, GeneratedKeyFile)
	// The key is written first, so a certificate file implies its key.
	if _, err := os.Stat(certPath); err == nil {
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("load generated certificate %s (delete it and %s to make a new one): %w", certPath, keyPath, err)
		}
		return cert, certPath, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, "", fmt.Errorf("stat %s: %w", certPath, err)
	}

	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "relaygate"
	}
	var ips []netip.Addr
	if ap, err := netip.ParseAddrPort(web.Listen); err == nil && !ap.Addr().IsUnspecified() {
		ips = append(ips, ap.Addr().Unmap().WithZone(""))
	}
	certPEM, keyPEM, err := generateCert(host, ips, now)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("create data_dir: %w", err)
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, "", err
	}
	if err := atomicfile.Write(certPath, certPEM, 0o600); err != nil {
		return tls.Certificate{}, "", err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("X509KeyPair of generated certificate: %w", err)
	}
	return cert, certPath, nil
}

// generateCert makes a self-signed ECDSA P-256 server certificate for
// host and ips, valid from an hour before now (clock skew) for ten years.
func generateCert(host string, ips []netip.Addr, now time.Time) (certPEM, keyPEM []byte, err error) {
	tmpl := &x509.Certificate{
		Subject:  pkix.Name{CommonName: host, Organization: []string{"relaygate"}},
		NotAfter: now.Add(certValidity),
		// Not a CA: browsers refuse a CA certificate used as a server's.
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{host},
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	return selfsigned.Create(tmpl, now)
}

// CertFingerprint returns the SHA-256 fingerprint of the first certificate
// in a PEM file as upper-case colon-separated hex ("AB:CD:..."), the form
// browsers and `openssl x509 -fingerprint -sha256` show, so that an admin
// can check the certificate on first connection.
func CertFingerprint(certPEMPath string) (string, error) {
	data, err := os.ReadFile(certPEMPath)
	if err != nil {
		return "", fmt.Errorf("read certificate: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return "", fmt.Errorf("%s: no PEM CERTIFICATE block", certPEMPath)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return "", fmt.Errorf("%s: %w", certPEMPath, err)
		}
		return fingerprint(b.Bytes), nil
	}
}

// fingerprint is the colon-hex SHA-256 of a DER certificate.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var sb strings.Builder
	for i, b := range sum {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", b)
	}
	return sb.String()
}
