package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/inspect"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

type testConfig struct{ c *config.Config }

func (t *testConfig) Current() *config.Config { return t.c }
func (t *testConfig) Apply(ctx context.Context, c *config.Config, actor, remote string) error {
	t.c = c
	return nil
}

type testStatus struct{}

func (testStatus) Status(ctx context.Context) webui.Status { return webui.Status{Mode: config.Monitor} }

// TestWebStore runs the web UI on the real store wired as webDeps wires it:
// first-start setup, a session, a token made in the UI used as a bearer
// token, the audit log, series, logout.
func TestWebStore(t *testing.T) {
	ctx := context.Background()
	st, deps := webStoreDeps(t, testStatus{}, nil)
	dir := deps.Config.Current().DataDir

	var console bytes.Buffer
	tok, err := webui.PrepareSetup(ctx, deps, dir, &console)
	if err != nil || tok == "" || !strings.Contains(console.String(), tok) {
		t.Fatalf("PrepareSetup = %q, %v; console %q", tok, err, console.String())
	}
	srv := httptest.NewTLSServer(webui.NewRouter(deps))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) *http.Response {
		t.Helper()
		resp, err := c.PostForm(srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	pass := "a long and boring passphrase"
	resp := post("/setup", url.Values{"token": {tok}, "username": {"admin"}, "password": {pass}, "password2": {pass}})
	if resp.StatusCode != http.StatusSeeOther {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /setup = %s\n%s", resp.Status, body)
	}
	if _, err := os.Stat(filepath.Join(dir, webui.SetupTokenFile)); !os.IsNotExist(err) {
		t.Errorf("setup token file after setup: %v", err)
	}
	if u, err := st.User(ctx, "admin"); err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Errorf("stored user %+v, %v", u, err)
	}

	get := func(path, bearer string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, page := get("/tokens", "")
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindStringSubmatch(page)
	if code != 200 || m == nil {
		t.Fatalf("GET /tokens = %d, no CSRF token", code)
	}
	resp = post("/tokens", url.Values{"csrf_token": {m[1]}, "name": {"ci"}, "password": {pass}})
	body, _ := io.ReadAll(resp.Body)
	apiTok := regexp.MustCompile(`rg_[A-Za-z0-9_-]{43}`).FindString(string(body))
	if resp.StatusCode != 200 || apiTok == "" {
		t.Fatalf("POST /tokens = %s, no token shown", resp.Status)
	}
	st.AddSeries(store.SeriesBlocked, "10.20.0.50", time.Now(), 3)
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/api/v1/series?metric=blocked", apiTok); code != 200 || !strings.Contains(body, `"key":"10.20.0.50"`) {
		t.Errorf("GET /api/v1/series with the new token = %d %s", code, body)
	}
	code, body2 := get("/api/v1/audit", apiTok)
	var audit struct{ Entries []store.AuditEntry }
	json.Unmarshal([]byte(body2), &audit)
	var actions []string
	for _, e := range audit.Entries {
		actions = append(actions, e.Action)
	}
	if code != 200 || strings.Join(actions, ",") != "token.create,setup" {
		t.Errorf("audit = %d %v, want token.create, setup", code, actions)
	}
	resp = post("/logout", url.Values{"csrf_token": {m[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout = %s", resp.Status)
	}
	if code, _ := get("/api/v1/status", ""); code != http.StatusUnauthorized {
		t.Errorf("API after logout = %d, want 401", code)
	}
}

func TestWebEvidence(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	in, err := inspect.New(cfg, inspect.Options{EvidenceDir: filepath.Join(cfg.DataDir, "evidence")})
	if err != nil {
		t.Fatal(err)
	}
	ev := webEvidence(in)
	addr := netip.MustParseAddr("10.20.0.50")
	if ev.HasEvidence(context.Background(), addr) {
		t.Error("HasEvidence on an empty inspector = true")
	}
	if err := ev.WritePcap(context.Background(), io.Discard, addr); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("WritePcap without evidence = %v, want store.ErrNotFound", err)
	}
}

// webStoreDeps opens a store in a temporary data directory and wires the
// web UI to it as the daemon does, with status and a default
// configuration changed by edit (if not nil).
func webStoreDeps(t *testing.T, status webui.StatusSource, edit func(*config.Config)) (*store.Store, webui.Deps) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir, store.Options{PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Default()
	cfg.DataDir = dir
	if edit != nil {
		edit(cfg)
	}
	d := &daemon{store: st}
	deps := d.webDeps(nil)
	deps.Config, deps.Status = &testConfig{cfg}, status
	return st, deps
}
