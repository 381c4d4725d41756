package webui

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// decodeError returns the "error" of a JSON error answer.
func decodeError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	if len(body) != 1 {
		t.Errorf("error body %q, want only an \"error\" key", w.Body.String())
	}
	return body["error"]
}

// cmpDiff is cmp.Diff that compares netip.Addr by value.
func cmpDiff(want, got any) string {
	return cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}))
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
	return v
}

// labHarness is a harness with lab data, an evidence store and a system.
func labHarness(t *testing.T) (*harness, *fakeSystem) {
	t.Helper()
	d, h := testDeps(t)
	fillLab(t, h, time.Now())
	sys := &fakeSystem{}
	d.System = sys
	d.Evidence = &fakeEvidence{addrs: map[netip.Addr]bool{netip.MustParseAddr("10.20.0.50"): true}}
	h.store.addLabInventory(t, time.Now())
	d.Inventory = h.store
	h.router = NewRouter(d)
	return h, sys
}

const (
	actorName  = "admin-laptop"
	remoteIP   = "192.0.2.1" // httptest.NewRequest's RemoteAddr
	metricText = "# HELP relaygate_up Whether relaygate is up.\n# TYPE relaygate_up gauge\nrelaygate_up 1\n"
)

// tokenSeed seeds the store's token randomness, so that the first token
// of every harness, named actorName, is goodToken.
var tokenSeed = [32]byte{'r', 'e', 'l', 'a', 'y', 'g', 'a', 't', 'e'}

var (
	goodToken = func() string {
		var b [32]byte
		rand.NewChaCha8(tokenSeed).Read(b[:])
		return store.TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	}()
	bearer = "Bearer " + goodToken
)

const testConfigYAML = `mode: enforce
interfaces:
  bridge: br0
  inside: eth1
  outside: eth2
  management: eth0
relays:
  - name: mail-relay
    address: 10.10.0.25/32
data_dir: /var/lib/relaygate
`

// harness is a router with a store in a temporary directory and fakes
// for the rest of the daemon behind it.
type harness struct {
	router http.Handler
	store  *spyStore
	config *fakeConfig
	status *fakeStatus
	clock  *testClock
}

// testClock is an injectable clock: the real time plus what Advance added.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func mustParse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return c
}

// openStore opens a store in a temporary directory, closed by the test's
// cleanup, with goodToken named actorName in it.
func openStore(t *testing.T, now func() time.Time) *spyStore {
	t.Helper()
	ctx := context.Background()
	// Not t.TempDir: subtest names can hold '#', which the store refuses.
	dir, err := os.MkdirTemp("", "webui-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	st, err := store.Open(ctx, dir, store.Options{PruneInterval: -1, Retention: 365 * 24 * time.Hour, Now: now, EventsPerSourcePerMinute: -1,
		Rand: &lockedReader{r: rand.NewChaCha8(tokenSeed)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if tok, err := st.CreateToken(ctx, actorName); err != nil || tok != goodToken {
		t.Fatalf("CreateToken = %q, %v; want %q", tok, err, goodToken)
	}
	return &spyStore{Store: st}
}

func testDeps(t *testing.T) (Deps, *harness) {
	t.Helper()
	clock := &testClock{}
	h := &harness{
		store:  openStore(t, clock.Now),
		config: &fakeConfig{cur: mustParse(t, testConfigYAML)},
		status: &fakeStatus{},
		clock:  clock,
	}
	d := Deps{
		Admins:     h.store,
		Audit:      h.store,
		TokenAdmin: h.store,
		Series:     h.store,
		Now:        h.clock.Now,
		argon:      &testArgon,
		Console:    io.Discard,
		Logger:     testLogger(t),
		Events:     h.store,
		Tokens:     h.store,
		Config:     h.config,
		Status:     h.status,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			io.WriteString(w, metricText)
		}),
	}
	return d, h
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	d, h := testDeps(t)
	h.router = NewRouter(d)
	return h
}

// do sends one request; auth is the whole Authorization header, "" for none.
func (h *harness) do(t *testing.T, method, target, auth, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	return w
}

// auditActions lists the audit actions, oldest first.
func (h *harness) auditActions(t *testing.T) []string {
	t.Helper()
	es, err := h.store.AuditLog(context.Background(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range slices.Backward(es) {
		out = append(out, e.Action)
	}
	return out
}

// auditLast returns the newest audit entry.
func (h *harness) auditLast(t *testing.T) store.AuditEntry {
	t.Helper()
	es, err := h.store.AuditLog(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 {
		return store.AuditEntry{}
	}
	return es[0]
}

// testArgon is a cheap argon2id cost for tests.
var testArgon = argonParams{time: 1, memKiB: 64, threads: 1}

// addLabInventory stores what passive inspection saw in the lab,
// including a printer that spoke SMTP but has no event yet.
func (s *spyStore) addLabInventory(t *testing.T, now time.Time) {
	t.Helper()
	a := netip.MustParseAddr
	if err := s.UpsertHosts(context.Background(), []store.HostDelta{
		{Addr: a("10.20.0.50"), FirstSeen: now.Add(-41 * time.Minute), LastSeen: now.Add(-10 * time.Minute), Flows: 9, Messages: 7,
			RcptDomains: []string{"remote.example"}, RemoteMXs: []string{"198.51.100.25", "198.51.100.27"}, RDNS: "desktop-7qx.office.example"},
		{Addr: a("10.10.0.25"), FirstSeen: now.Add(-50 * time.Minute), LastSeen: now.Add(-20 * time.Minute), Flows: 120, Messages: 300,
			EncryptedFlows: 118, RDNS: "mail.example.com", AuthMechs: []string{}},
		{Addr: a("10.40.0.9"), FirstSeen: now.Add(-5 * time.Minute), LastSeen: now.Add(-5 * time.Minute), Flows: 1, RDNS: "printer-3f.office.example"},
	}); err != nil {
		t.Fatal(err)
	}
}

const (
	adminUser = "admin"
	adminPass = "correct horse battery staple"
)

// browser is a cookie-carrying client of the router.
type browser struct {
	t      *testing.T
	h      *harness
	cookie string // session cookie value
	csrf   string
	lang   string
	remote string
}

func (h *harness) browser(t *testing.T) *browser {
	return &browser{t: t, h: h, remote: "192.0.2.1:40000"}
}

// adminBrowser builds the router from d, creates the administrator and
// returns a browser logged in as it.
func (h *harness) adminBrowser(t *testing.T, d Deps) *browser {
	t.Helper()
	h.router = NewRouter(d)
	h.addAdmin(t)
	b := h.browser(t)
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Fatalf("login = %d", w.Code)
	}
	return b
}

// addAdmin creates the administrator directly in the fake store.
func (h *harness) addAdmin(t *testing.T) {
	t.Helper()
	hash, err := hashPassword(testArgon, adminPass)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.CreateFirstUser(context.Background(), adminUser, hash); err != nil {
		t.Fatal(err)
	}
}

// do sends a request; form (POST) is url-encoded; extra headers in hdr.
func (b *browser) do(method, target string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	req.RemoteAddr = b.remote
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: b.cookie})
	}
	if b.lang != "" {
		req.AddCookie(&http.Cookie{Name: langCookie, Value: b.lang})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	b.h.router.ServeHTTP(w, req)
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			b.cookie = c.Value
		}
	}
	return w
}

// multipart posts one file as multipart/form-data with the CSRF token.
func (b *browser) multipart(target, field, filename, content string) *httptest.ResponseRecorder {
	b.t.Helper()
	return b.postFiles(target, map[string][2]string{field: {filename, content}})
}

// postFiles posts files (form field -> file name and content) as
// multipart/form-data with the CSRF token.
func (b *browser) postFiles(target string, files map[string][2]string) *httptest.ResponseRecorder {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField(csrfField, b.csrf)
	for field, f := range files {
		fw, err := mw.CreateFormFile(field, f[0])
		if err != nil {
			b.t.Fatal(err)
		}
		io.WriteString(fw, f[1])
	}
	mw.Close()
	req := httptest.NewRequest("POST", target, &buf)
	req.RemoteAddr = b.remote
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: b.cookie})
	w := httptest.NewRecorder()
	b.h.router.ServeHTTP(w, req)
	return w
}

var csrfMetaRE = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// login posts the login form and picks up the CSRF token from a page.
func (b *browser) login(user, pass string) *httptest.ResponseRecorder {
	b.t.Helper()
	w := b.do("POST", "/login", url.Values{"username": {user}, "password": {pass}}, nil)
	if w.Code == http.StatusSeeOther {
		b.refreshCSRF()
	}
	return w
}

func (b *browser) refreshCSRF() {
	b.t.Helper()
	w := b.do("GET", "/account", nil, nil)
	m := csrfMetaRE.FindStringSubmatch(w.Body.String())
	if m == nil || m[1] == "" {
		b.t.Fatalf("GET /account = %d, no CSRF token in page", w.Code)
	}
	b.csrf = m[1]
}

// post sends a form with the CSRF token.
func (b *browser) post(target string, form url.Values) *httptest.ResponseRecorder {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set(csrfField, b.csrf)
	return b.do("POST", target, form, nil)
}

// loggedIn returns a harness with an administrator and a logged-in browser.
func loggedIn(t *testing.T) (*harness, *browser) {
	t.Helper()
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Fatalf("login = %d %s", w.Code, w.Body)
	}
	return h, b
}

// labEvents is what the lab records: a relay sending, an infected PC
// blocked, a web server would-blocked, a deferral.
func labEvents(now time.Time) []event.Event {
	a := netip.MustParseAddr
	return []event.Event{
		{ID: 1, Time: now.Add(-50 * time.Minute), Kind: event.Relayed, Client: a("10.10.0.25"), Server: a("203.0.113.25"), ServerPort: 25, Relay: "mail-relay", Helo: "mail.example.com", MailFrom: "alice@example.com", Rcpt: []string{"bob@remote.example"}, Code: 250},
		{ID: 2, Time: now.Add(-40 * time.Minute), Kind: event.Blocked, Client: a("10.20.0.50"), Server: a("198.51.100.25"), ServerPort: 25, Helo: "DESKTOP-7QX", MailFrom: "=cmd|' /C calc'!A0@spam.example", Rcpt: []string{"victim1@remote.example", "victim2@remote.example"}, Code: 554, Detail: "not a relay"},
		{ID: 3, Time: now.Add(-30 * time.Minute), Kind: event.WouldBlock, Client: a("10.30.0.80"), Server: a("198.51.100.26"), ServerPort: 25, Helo: "web01", MailFrom: "www-data@web01.example.com", Rcpt: []string{"someone@remote.example"}},
		{ID: 4, Time: now.Add(-20 * time.Minute), Kind: event.Deferred, Client: a("10.10.0.25"), Relay: "mail-relay", MailFrom: "bulk@example.com", Rcpt: []string{"x@docomo.ne.jp"}, Code: 451, Detail: "limit relay_messages_per_minute"},
		{ID: 5, Time: now.Add(-10 * time.Minute), Kind: event.Blocked, Client: a("10.20.0.50"), Server: a("198.51.100.27"), ServerPort: 25, Helo: "DESKTOP-7QX", MailFrom: "promo@spam.example", Rcpt: []string{"victim3@remote.example"}, Code: 554},
	}
}

// fillLab puts lab-like data behind the harness.
func fillLab(t *testing.T, h *harness, now time.Time) {
	t.Helper()
	h.store.record(t, labEvents(now)...)
	h.status.st = Status{Mode: config.Monitor, Version: "v0.9.0-test", Started: now.Add(-26 * time.Hour), Serving: true,
		Ports: []PortStatus{
			{Name: "eth1", Role: RoleInside, OperState: "up", MTU: 1500, RxBytes: 7 << 30, TxBytes: 3 << 30, RxPackets: 9_100_000, TxPackets: 5_200_000},
			{Name: "eth2", Role: RoleOutside, OperState: "up", MTU: 1500, RxBytes: 3 << 30, TxBytes: 7 << 30, RxPackets: 5_200_000, TxPackets: 9_100_000},
			{Name: "br0", Role: RoleBridge, OperState: "up", MTU: 1500},
			{Name: "eth0", Role: RoleManagement, OperState: "up", MTU: 1500, RxBytes: 12 << 20, TxBytes: 40 << 20},
		},
		Counters: map[string]uint64{"smtp_packets": 48211, "diverted": 0, "reset": 0},
	}
	start := now.Truncate(time.Minute).Add(-179 * time.Minute)
	for i := range 180 {
		m := start.Add(time.Duration(i) * time.Minute)
		h.store.AddSeries(MetricRelayMessages, "mail-relay", m, int64(20+(i*7)%15))
		if i%3 == 0 {
			h.store.AddSeries(MetricRelayMessages, "crm-relay", m, int64(5+i%4))
		}
		if i > 120 && i%2 == 0 {
			h.store.AddSeries(MetricBlocked, "10.20.0.50", m, int64(3+(i%5)))
		}
		if i%17 == 0 {
			h.store.AddSeries(MetricBlocked, "10.30.0.80", m, 1)
		}
		if i > 150 && i < 160 {
			h.store.AddSeries(MetricDeferred, "mail-relay", m, 4)
		}
	}
	h.store.flush(t)
}
