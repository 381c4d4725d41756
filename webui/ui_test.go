package webui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

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

func TestSetupFlow(t *testing.T) {
	d, h := testDeps(t)
	dir := t.TempDir()
	h.config.cur.DataDir = dir
	h.router = NewRouter(d)
	tok, err := PrepareSetup(context.Background(), d, dir, io.Discard)
	if err != nil || tok == "" {
		t.Fatalf("PrepareSetup() = %q, %v", tok, err)
	}
	st, err := os.Stat(filepath.Join(dir, SetupTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("setup token file: %v, %v, want mode 0600", st, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, SetupTokenFile)); strings.TrimSpace(string(data)) != tok {
		t.Errorf("setup token file = %q, want %q", data, tok)
	}
	b := h.browser(t)
	// Without an administrator every page leads to setup, and login too.
	for _, p := range []string{"/", "/hosts", "/login"} {
		if w := b.do("GET", p, nil, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/setup" {
			t.Errorf("GET %s = %d %s, want 303 to /setup", p, w.Code, w.Header().Get("Location"))
		}
	}
	if w := b.do("GET", "/setup", nil, nil); w.Code != 200 || !strings.Contains(w.Body.String(), SetupTokenFile) {
		t.Errorf("GET /setup = %d, want 200 naming the token file", w.Code)
	}
	form := func(token, user, pw, pw2 string) url.Values {
		return url.Values{"token": {token}, "username": {user}, "password": {pw}, "password2": {pw2}}
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"wrong token", form("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF", "admin", adminPass, adminPass), "Wrong or already used setup token."},
		{"short password", form(tok, "admin", "short", "short"), "Too short: use at least 12 characters."},
		{"common password", form(tok, "admin", "password1234", "password1234"), "Too easy to guess"},
		{"repetitive", form(tok, "admin", "aaaaaaaaaaaaaa", "aaaaaaaaaaaaaa"), "Too repetitive"},
		{"sequence", form(tok, "admin", "123456789012", "123456789012"), "Too easy to guess"},
		{"contains user", form(tok, "hiroshi", "hiroshi-at-the-office", "hiroshi-at-the-office"), "Must not contain the username."},
		{"mismatch", form(tok, "admin", adminPass, adminPass+"x"), "The two passwords differ."},
		{"bad username", form(tok, "ad min", adminPass, adminPass), "1 to 64 letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := b.do("POST", "/setup", tc.form, nil)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("POST /setup = %d, want 400 with %q:\n%s", w.Code, tc.want, w.Body)
			}
			if n, _ := h.store.UserCount(context.Background()); n != 0 {
				t.Errorf("%d users after a failed setup, want 0", n)
			}
		})
	}
	// Lower case, spaces for dashes and 0 for O work too.
	typed := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(tok, "-", " "), "O", "0"))
	w := b.do("POST", "/setup", form(typed, "admin", adminPass, adminPass), nil)
	if w.Code != http.StatusSeeOther || b.cookie == "" {
		t.Fatalf("POST /setup = %d %s, want 303 with a session", w.Code, w.Body)
	}
	if _, err := os.Stat(filepath.Join(dir, SetupTokenFile)); !os.IsNotExist(err) {
		t.Errorf("setup token file after setup: %v, want deleted", err)
	}
	if got := h.auditLast(t); got.Action != "setup" || got.Actor != "admin" || got.Remote != "192.0.2.1" {
		t.Errorf("audit = %+v, want setup by admin from 192.0.2.1", got)
	}
	// One-time: the token does not work again, setup is closed.
	b2 := h.browser(t)
	if w := b2.do("POST", "/setup", form(tok, "evil", adminPass, adminPass), nil); w.Code != http.StatusConflict {
		t.Errorf("second POST /setup = %d, want 409", w.Code)
	}
	if w := b2.do("GET", "/setup", nil, nil); w.Code != http.StatusSeeOther {
		t.Errorf("GET /setup after setup = %d, want 303 to login", w.Code)
	}
	if _, err := h.store.User(context.Background(), "evil"); !errors.Is(err, store.ErrNotFound) {
		t.Error("second setup created a user")
	}
	// The new session works.
	if w := b.do("GET", "/", nil, nil); w.Code != 200 {
		t.Errorf("GET / after setup = %d, want 200", w.Code)
	}
	// A restart with an administrator removes a stale file and makes no token.
	os.WriteFile(filepath.Join(dir, SetupTokenFile), []byte("stale\n"), 0o600)
	if tok, err := PrepareSetup(context.Background(), d, dir, io.Discard); tok != "" || err != nil {
		t.Errorf("PrepareSetup() with an admin = %q, %v, want none", tok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, SetupTokenFile)); !os.IsNotExist(err) {
		t.Errorf("stale setup token file: %v, want removed", err)
	}
}

func TestLogin(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	if w := b.do("GET", "/hosts", nil, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Fhosts" {
		t.Errorf("GET /hosts without session = %d %q, want 303 to login", w.Code, w.Header().Get("Location"))
	}
	w := b.login(adminUser, "wrong password here")
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Wrong username or password.") || b.cookie != "" {
		t.Fatalf("login with a wrong password = %d, cookie %q", w.Code, b.cookie)
	}
	if w := b.login("nobody", adminPass); w.Code != http.StatusUnauthorized {
		t.Errorf("login as unknown user = %d, want 401", w.Code)
	}
	w = b.do("POST", "/login", url.Values{"username": {adminUser}, "password": {adminPass}, "next": {"/events"}}, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/events" {
		t.Fatalf("login = %d to %q, want 303 to /events", w.Code, w.Header().Get("Location"))
	}
	ck := w.Result().Cookies()[0]
	if ck.Name != SessionCookie || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Errorf("session cookie %+v, want HttpOnly, Secure, SameSite=Strict, Path=/", ck)
	}
	// Only the hash of the cookie is stored.
	for _, f := range []string{h.store.Path(), h.store.Path() + "-wal"} {
		if db, err := os.ReadFile(f); err != nil || bytes.Contains(db, []byte(ck.Value)) {
			t.Errorf("session id stored in clear in %s (read: %v)", f, err)
		}
	}
	if _, err := h.store.Session(context.Background(), sha256Sum(ck.Value)); err != nil {
		t.Errorf("session by the hash of the cookie: %v", err)
	}
	if got := h.auditActions(t); strings.Join(got, ",") != "login.failed,login.failed,login" {
		t.Errorf("audit actions = %v", got)
	}
	// No open redirect.
	b2 := h.browser(t)
	w = b2.do("POST", "/login", url.Values{"username": {adminUser}, "password": {adminPass}, "next": {"//evil.example/"}}, nil)
	if w.Header().Get("Location") != "/" {
		t.Errorf("login with next=//evil.example/ redirects to %q, want /", w.Header().Get("Location"))
	}
	// Logout ends the session server-side.
	b.refreshCSRF()
	if w := b.post("/logout", nil); w.Code != http.StatusSeeOther {
		t.Errorf("logout = %d", w.Code)
	}
	old := b.cookie
	if w := b.do("GET", "/", nil, nil); w.Code != http.StatusSeeOther {
		t.Errorf("GET / after logout = %d, want 303", w.Code)
	}
	b.cookie = old
	if w := b.do("GET", "/api/v1/status", nil, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("API with the logged-out cookie = %d, want 401", w.Code)
	}
}

func TestLoginThrottle(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	for i := range userMaxFails {
		if w := b.login(adminUser, "wrong password "+strconv.Itoa(i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i, w.Code)
		}
	}
	// Locked out: even the right password gets 429, from any address.
	b.remote = "198.51.100.7:5555"
	w := b.login(adminUser, adminPass)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("login while locked = %d, want 429", w.Code)
	}
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra < 1 || ra > int(lockoutFor/time.Second) {
		t.Errorf("Retry-After = %q, want 1..%d seconds", w.Header().Get("Retry-After"), int(lockoutFor/time.Second))
	}
	if b.cookie != "" {
		t.Error("a locked-out login got a session")
	}
	// The lockout expires.
	h.clock.Advance(lockoutFor + time.Second)
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Errorf("login after the lockout = %d, want 303", w.Code)
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	for i := range ipMaxFails {
		// A different username each time: the per-address limit catches it.
		b.login("user"+strconv.Itoa(i), "wrong password")
	}
	w := b.login(adminUser, adminPass)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("login from a locked address = %d, Retry-After %q, want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	// Another address is not affected.
	b.remote = "203.0.113.9:1234"
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Errorf("login from another address = %d, want 303", w.Code)
	}
}

func TestSessionTimeouts(t *testing.T) {
	h, b := loggedIn(t)
	cookie := b.cookie
	h.clock.Advance(SessionIdleTimeout - time.Minute)
	if w := b.do("GET", "/", nil, nil); w.Code != 200 {
		t.Fatalf("GET / before the idle timeout = %d, want 200", w.Code)
	}
	// Activity renewed it; idle for longer than the timeout ends it.
	h.clock.Advance(SessionIdleTimeout + time.Second)
	if w := b.do("GET", "/", nil, nil); w.Code != http.StatusSeeOther {
		t.Errorf("GET / after the idle timeout = %d, want 303 to login", w.Code)
	}
	if _, err := h.store.Session(context.Background(), sha256Sum(cookie)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session after expiry: %v, want store.ErrNotFound", err)
	}
	// The absolute lifetime ends even an active session.
	b.login(adminUser, adminPass)
	for el := time.Duration(0); el <= SessionMaxLifetime; el += SessionIdleTimeout / 2 {
		h.clock.Advance(SessionIdleTimeout / 2)
		b.do("GET", "/api/v1/status", nil, nil)
	}
	if w := b.do("GET", "/api/v1/status", nil, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("API after the maximum lifetime = %d, want 401", w.Code)
	}
}

func TestCSRF(t *testing.T) {
	h, b := loggedIn(t)
	h.store.record(t, labEvents(time.Now())...)
	relays := len(h.config.cur.Relays)
	add := url.Values{"name": {"second-relay"}, "address": {"10.10.0.26/32"}, "tls": {"passthrough"}}
	for _, tc := range []struct {
		name string
		tok  string
		hdr  map[string]string
	}{
		{"missing", "", nil},
		{"wrong", "not-the-token", nil},
		{"right token, foreign origin", b.csrf, map[string]string{"Origin": "https://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range add {
				f[k] = v
			}
			if tc.tok != "" {
				f.Set(csrfField, tc.tok)
			}
			for _, target := range []string{"/policy/relays/add", "/tokens", "/policy/mode", "/logout"} {
				w := b.do("POST", target, f, tc.hdr)
				if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "CSRF") {
					t.Errorf("POST %s = %d, want 403 naming CSRF", target, w.Code)
				}
			}
			// The API with the session cookie needs it too.
			w := b.do("PUT", "/api/v1/config", nil, map[string]string{csrfHeader: tc.tok, "Origin": tc.hdr["Origin"]})
			if w.Code != http.StatusForbidden {
				t.Errorf("PUT /api/v1/config with cookie = %d, want 403", w.Code)
			}
			if n := len(h.config.calls()); n != 0 {
				t.Errorf("Apply called %d times, want 0", n)
			}
			if got := len(h.config.cur.Relays); got != relays {
				t.Errorf("%d relays, want %d", got, relays)
			}
			if toks, _ := h.store.Tokens(context.Background()); len(toks) != 1 { // the harness's goodToken
				t.Errorf("tokens created: %v", toks)
			}
		})
	}
	// With the token in the header the API accepts the cookie.
	w := b.do("PUT", "/api/v1/config", nil, map[string]string{csrfHeader: b.csrf})
	if w.Code == http.StatusForbidden {
		t.Errorf("PUT /api/v1/config with the CSRF header = 403")
	}
	// Bearer tokens need no CSRF token.
	hh := newHarness(t)
	if w := hh.do(t, "PUT", "/api/v1/config", bearer, testConfigYAML); w.Code != 200 {
		t.Errorf("PUT /api/v1/config with bearer = %d %s", w.Code, w.Body)
	}
}

func TestSessionAuthenticatesAPI(t *testing.T) {
	h, b := loggedIn(t)
	h.status.st = Status{Mode: config.Enforce}
	w := b.do("GET", "/api/v1/status", nil, nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"mode":"enforce"`) {
		t.Errorf("GET /api/v1/status with session = %d %s", w.Code, w.Body)
	}
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

func TestPagesRender(t *testing.T) {
	for _, lang := range []string{"en", "ja"} {
		t.Run(lang, func(t *testing.T) {
			h, b := loggedIn(t)
			b.lang = lang
			fillLab(t, h, time.Now())
			h.store.CreateToken(context.Background(), "prometheus")
			h.store.Audit(context.Background(), store.AuditEntry{Actor: "admin", Action: "config.update", Detail: "<script>x</script>"})
			for _, p := range []string{"/", "/hosts", "/hosts?sort=blocked&dir=asc", "/hosts/10.20.0.50", "/events",
				"/events?kind=blocked&client=10.20.0.50&q=spam&since=2026-01-01T00:00", "/policy", "/policy?welcome=1",
				"/policy/mode?to=enforce", "/policy/mode?to=monitor", "/system", "/audit", "/tokens", "/account"} {
				w := b.do("GET", p, nil, nil)
				body := w.Body.String()
				if w.Code != 200 {
					t.Errorf("GET %s = %d\n%s", p, w.Code, body)
					continue
				}
				if !strings.Contains(body, `<html lang="`+lang+`">`) {
					t.Errorf("GET %s: no html lang=%s", p, lang)
				}
				for _, bad := range []string{"!", "<no value>", "<script>x"} {
					if bad == "!" {
						if m := regexp.MustCompile(`>!([a-z_]+)`).FindString(body); m != "" {
							t.Errorf("GET %s: missing catalog key %s", p, m)
						}
						continue
					}
					if strings.Contains(body, bad) {
						t.Errorf("GET %s contains %q", p, bad)
					}
				}
			}
		})
	}
}

func TestCatalogComplete(t *testing.T) {
	keyRE := regexp.MustCompile(`t (?:\$?\.M|\$\.M|\.P\.M) "([a-z0-9_]+)"`)
	used := map[string]bool{}
	entries, _ := templatesFS.ReadDir("templates")
	for _, e := range entries {
		b, _ := templatesFS.ReadFile("templates/" + e.Name())
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	if len(used) < 50 {
		t.Errorf("found only %d catalog keys in templates; the pattern is stale", len(used))
	}
	// dashboard.js draws with the labels the page hands it.
	for _, k := range dashboardLabels {
		used[k] = true
	}
	cats, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for lang, cat := range cats {
		for k := range used {
			if _, ok := cat[k]; !ok {
				t.Errorf("catalog %s lacks %q", lang, k)
			}
		}
	}
	for k := range cats["en"] {
		if _, ok := cats["ja"][k]; !ok {
			t.Errorf("catalog ja lacks %q", k)
		}
	}
	for k := range cats["ja"] {
		if _, ok := cats["en"][k]; !ok {
			t.Errorf("catalog en lacks %q", k)
		}
	}
}

func TestLanguage(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"", "en"}, {"ja", "ja"}, {"ja-JP,ja;q=0.9,en;q=0.8", "ja"}, {"en-US,en;q=0.9,ja;q=0.8", "en"},
		{"fr,ja;q=0.5", "ja"}, {"de", "en"}, {"en;q=0.1,ja;q=0.2", "ja"},
	} {
		if got := fromAcceptLanguage(tc.header); got != tc.want {
			t.Errorf("fromAcceptLanguage(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	w := b.do("GET", "/login", nil, map[string]string{"Accept-Language": "ja-JP"})
	if !strings.Contains(w.Body.String(), `<html lang="ja">`) || !strings.Contains(w.Body.String(), "ログイン") {
		t.Errorf("GET /login with Accept-Language ja: not Japanese")
	}
	w = b.do("GET", "/login?lang=en", nil, map[string]string{"Accept-Language": "ja-JP"})
	if !strings.Contains(w.Body.String(), `<html lang="en">`) {
		t.Errorf("GET /login?lang=en: not English")
	}
	var ck *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == langCookie {
			ck = c
		}
	}
	if ck == nil || ck.Value != "en" {
		t.Errorf("?lang=en set no language cookie")
	}
}

func TestThrottleWindow(t *testing.T) {
	clock := &testClock{}
	th := newThrottle(clock.Now, 3, time.Minute, 5*time.Minute)
	th.fail("k")
	th.fail("k")
	clock.Advance(61 * time.Second) // the first two fall out of the window
	th.fail("k")
	th.fail("k")
	if d := th.retryAfter("k"); d != 0 {
		t.Fatalf("locked after failures spread over more than the window: %v", d)
	}
	th.fail("k")
	if d := th.retryAfter("k"); d <= 4*time.Minute || d > 5*time.Minute {
		t.Fatalf("retryAfter after 3 failures in the window = %v, want about 5m", d)
	}
	if d := th.retryAfter("other"); d != 0 {
		t.Errorf("another key is locked: %v", d)
	}
	clock.Advance(5 * time.Minute)
	if d := th.retryAfter("k"); d != 0 {
		t.Errorf("still locked after the lockout: %v", d)
	}
	th.fail("k")
	th.reset("k")
	th.fail("k")
	th.fail("k")
	if d := th.retryAfter("k"); d != 0 {
		t.Errorf("reset did not forget failures: %v", d)
	}
	// The table stays bounded under a spray of keys.
	for i := range maxThrottleKeys + 10 {
		th.fail("spray" + strconv.Itoa(i))
		clock.Advance(time.Millisecond)
	}
	clock.Advance(2 * time.Minute)
	th.fail("last")
	if n := len(th.m); n > maxThrottleKeys {
		t.Errorf("%d throttle entries, want at most %d", n, maxThrottleKeys)
	}
}

func TestPasswordProblem(t *testing.T) {
	for _, tc := range []struct{ user, pw, want string }{
		{"admin", "correct horse battery staple", ""},
		{"admin", "Tr0ub4dor&3xyz", ""},
		{"admin", "short", "pw_short"},
		{"admin", "ééééééééééééé", "pw_repetitive"},
		{"admin", "abababababababab", "pw_repetitive"},
		{"admin", "Password2026!!", "pw_common"},
		{"admin", "qwertyuiop[]", "pw_common"},
		{"admin", "890123456789", "pw_common"},
		{"admin", "zyxwvutsrqpo", "pw_common"},
		{"kenji", "kenji-the-admin-2026", "pw_username"},
		{"admin", "tab\tinside-password", "pw_control"},
	} {
		if got := passwordProblem(tc.user, tc.pw); got != tc.want {
			t.Errorf("passwordProblem(%q, %q) = %q, want %q", tc.user, tc.pw, got, tc.want)
		}
	}
}
