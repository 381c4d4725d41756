package boot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKernel is kernel without the kernel: links from a map, and every
// dial goes to dialTo (recording what was asked).
type fakeKernel struct {
	mu     sync.Mutex
	links  map[string]link
	dialTo string
	dials  []string // "device addr"
	// linkHook, when set, may change the links before each Link call.
	linkHook func(k *fakeKernel)
}

func (k *fakeKernel) Link(name string) (link, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.linkHook != nil {
		k.linkHook(k)
	}
	l, ok := k.links[name]
	return l, ok, nil
}

func (k *fakeKernel) DialTCP(ctx context.Context, device, addr string) (net.Conn, error) {
	k.mu.Lock()
	k.dials = append(k.dials, device+" "+addr)
	to := k.dialTo
	k.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", to)
}

var _ kernel = (*fakeKernel)(nil)

// writeFile writes content to root/rel, making the directories.
func writeFile(t *testing.T, root, rel, content string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// selfSigned returns a new certificate and key, PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "relaygate-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestShellQuote evaluates the output in sh: whatever a value holds, the
// variable gets it back (control characters as spaces) and nothing runs.
func TestShellQuote(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"eth0", "eth0"},
		{"it's", "it's"},
		{`$(touch /tmp/x) ${HOME} "q" \ ; | &`, `$(touch /tmp/x) ${HOME} "q" \ ; | &`},
		{"'; echo pwned; '", "'; echo pwned; '"},
		{"line1\nline2\r", "line1 line2 "},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var b strings.Builder
			if err := writeShellVars(&b, []keyValue{{"V", tc.in}, {"W", "after"}}); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sh, "-c", `eval "$1"; printf '%s|%s' "$V" "$W"`, "sh", b.String()).CombinedOutput()
			if err != nil {
				t.Fatalf("sh: %v: %s", err, out)
			}
			if got, want := string(out), tc.want+"|after"; got != want {
				t.Errorf("eval of %q = %q, want %q", b.String(), got, want)
			}
		})
	}
}
