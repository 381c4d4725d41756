package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

// memConfig is the box's running configuration, in memory.
type memConfig struct {
	mu  sync.Mutex
	cur *config.Config
}

func (m *memConfig) Current() *config.Config { m.mu.Lock(); defer m.mu.Unlock(); return m.cur }

func (m *memConfig) Apply(ctx context.Context, c *config.Config, actor, remote string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = c
	return nil
}

type upStatus struct{}

func (upStatus) Status(context.Context) webui.Status { return webui.Status{Serving: true} }

// box serves the real management router over TLS with a store in a
// temp dir; it returns the server, an admin token and the configuration.
func box(t *testing.T) (*httptest.Server, string, *memConfig) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir, store.Options{PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tok, err := st.CreateToken(context.Background(), "automation")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Interfaces.Inside, cfg.Interfaces.Outside, cfg.Interfaces.Management = "eth1", "eth2", "eth0"
	cfg.Relays = []config.Relay{{Name: "mail-relay", Address: config.MustParsePrefix("10.10.0.25/32"), TLS: config.TLSPassthrough}}
	mc := &memConfig{cur: cfg}
	srv := httptest.NewTLSServer(webui.NewRouter(webui.Deps{
		Admins: st, Audit: st, TokenAdmin: st, Series: st, Events: st, Tokens: st,
		Config: mc, Status: upStatus{}, Now: time.Now, Console: io.Discard,
		Logger: slog.New(slog.DiscardHandler),
	}))
	t.Cleanup(srv.Close)
	return srv, tok, mc
}

// TestConfigPullPush: pull writes the box's YAML and its version; a push
// of the edited file applies it; a push built on a version the box has
// left gets 412 and changes nothing; the certificate is pinned by its
// SHA-256 or refused.
func TestConfigPullPush(t *testing.T) {
	srv, tok, mc := box(t)
	sum := sha256.Sum256(srv.Certificate().Raw)
	pin := "sha256:" + strings.ReplaceAll(fmt.Sprintf("% X", sum[:]), " ", ":")
	file := filepath.Join(t.TempDir(), "relaygate.yaml")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := dispatch(context.Background(), append(args[:1:1], append([]string{args[1], "--url", srv.URL, "--token", tok}, args[2:]...)...), &out, io.Discard)
		return out.String(), err
	}

	if _, err := run("config", "pull", "--fingerprint", pin, "--out", file); err != nil {
		t.Fatalf("config pull: %v", err)
	}
	yaml, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(yaml), "mode: monitor") {
		t.Fatalf("pulled file = %q, %v; want the YAML configuration", yaml, err)
	}
	pulled, err := os.ReadFile(file + ".etag")
	if err != nil || !strings.HasPrefix(string(pulled), `"`) {
		t.Fatalf("pulled version = %q, %v", pulled, err)
	}

	os.WriteFile(file, bytes.Replace(yaml, []byte("mode: monitor"), []byte("mode: enforce"), 1), 0o600)
	if _, err := run("config", "push", "--fingerprint", pin, file); err != nil {
		t.Fatalf("config push: %v", err)
	}
	if mc.Current().Mode != config.Enforce {
		t.Fatalf("mode after push = %s, want enforce", mc.Current().Mode)
	}
	// Someone else's push was built on the version before ours.
	before := mc.Current()
	_, err = run("config", "push", "--fingerprint", pin, "--if-match", strings.TrimSpace(string(pulled)), file)
	if err == nil || !strings.Contains(err.Error(), "HTTP 412") {
		t.Errorf("push with a stale version = %v, want HTTP 412", err)
	}
	if mc.Current() != before {
		t.Error("the stale push changed the configuration")
	}
	// The file's own version is the one our push left: it goes through.
	if _, err := run("config", "push", "--fingerprint", pin, file); err != nil {
		t.Errorf("second push with the stored version: %v", err)
	}

	wrong := "sha256:" + strings.Repeat("00:", 31) + "00"
	if _, err := run("config", "pull", "--fingerprint", wrong); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("pull with a wrong fingerprint = %v, want a certificate mismatch", err)
	}
	if _, err := run("config", "pull"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("pull of a self-signed box without pin or CA = %v, want a certificate error", err)
	}
	if out, err := run("config", "pull", "--insecure"); err != nil || !strings.Contains(out, "mode: enforce") {
		t.Errorf("pull --insecure to stdout = %q, %v", out, err)
	}
}
