package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/store"
)

// scopedToken creates a token in the harness's store.
func (h *harness) scopedToken(t *testing.T, name string, scope store.Scope, life time.Duration) string {
	t.Helper()
	tok, err := h.store.CreateScopedToken(context.Background(), store.NewToken{Name: name, Scope: scope, Lifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenCount is how many tokens the store holds.
func (h *harness) tokenCount(t *testing.T) int {
	t.Helper()
	toks, err := h.store.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(toks)
}

// routeTarget makes a request path from a route pattern: parameters get
// values that name something that exists in the lab harness.
func routeTarget(pattern string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		switch {
		case p == ":addr":
			parts[i] = "10.20.0.50"
		case strings.HasPrefix(p, ":"):
			parts[i] = "1"
		case strings.HasPrefix(p, "*"):
			parts[i] = "x"
		}
	}
	return strings.Join(parts, "/")
}

// protectedRoute is a route of the router that needs credentials.
type protectedRoute struct{ method, pattern, target string }

// publicRoutes need no credentials: logging in, first-start setup and
// the static assets. Every other route must need them.
var publicRoutes = map[string]bool{
	"GET /login": true, "POST /login": true, "GET /setup": true, "POST /setup": true,
	"GET /static/*file": true, "GET /vendor/*file": true,
}

// protectedRoutes walks the router's routes and returns every one but
// publicRoutes, so that routes added later are covered without a list to
// update. Each must refuse a request without credentials: 401, or a
// redirect to the login page.
func protectedRoutes(t *testing.T, h *harness) []protectedRoute {
	t.Helper()
	eng, ok := h.router.(*gin.Engine)
	if !ok {
		t.Fatalf("router %T does not list its routes", h.router)
	}
	var out []protectedRoute
	for _, r := range eng.Routes() {
		if publicRoutes[r.Method+" "+r.Path] {
			continue
		}
		target := routeTarget(r.Path)
		w := h.do(t, r.Method, target, "", "")
		if loc := w.Header().Get("Location"); w.Code != http.StatusUnauthorized &&
			!(w.Code == http.StatusSeeOther && strings.HasPrefix(loc, "/login")) {
			t.Errorf("%s %s without credentials = %d to %q, want 401 or the login page", r.Method, target, w.Code, loc)
		}
		out = append(out, protectedRoute{r.Method, r.Path, target})
	}
	if len(out) < 40 {
		t.Fatalf("found %d protected routes, want the whole API and the pages", len(out))
	}
	return out
}

// scopeHarness is a lab harness whose updater counts its calls.
func scopeHarness(t *testing.T) (*harness, *fakeSystem, *countingUpdater) {
	t.Helper()
	d, h := testDeps(t)
	fillLab(t, h, time.Now())
	sys := &fakeSystem{}
	d.System = sys
	up := &countingUpdater{}
	d.Update = up
	h.router = NewRouter(d)
	return h, sys, up
}

// countingUpdater stands in for the firmware updater: it counts the
// installs that reach it and refuses every bundle, as the real one does
// a bundle that is not one.
type countingUpdater struct {
	mu       sync.Mutex
	installs int
}

func (u *countingUpdater) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		u.mu.Lock()
		u.installs++
		u.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"bundle: not a gzip file"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"version":"test"}`)
}

func (u *countingUpdater) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.installs
}

// TestTokenScopes walks every route that needs credentials with a metrics
// and a read token: the metrics token reads /metrics and nothing else,
// the read token reads everything and changes nothing; every refusal is
// 403 naming the scope needed, and nothing happened behind it.
func TestTokenScopes(t *testing.T) {
	h, sys, up := scopeHarness(t)
	h.addAdmin(t)
	metrics := "Bearer " + h.scopedToken(t, "prometheus", store.ScopeMetrics, 0)
	read := "Bearer " + h.scopedToken(t, "grafana", store.ScopeRead, 0)
	routes := protectedRoutes(t, h)
	tokensBefore := h.tokenCount(t)
	cfgBefore := h.config.Current()

	var sawMetrics, sawWrite bool
	for _, r := range routes {
		api := isAPI(r.target)
		reads := r.method == http.MethodGet || r.method == http.MethodHead
		// metrics: /metrics only.
		w := h.do(t, r.method, r.target, metrics, "")
		switch {
		case r.pattern == "/metrics":
			sawMetrics = true
			if w.Code != http.StatusOK || w.Body.String() != metricText {
				t.Errorf("metrics token: GET /metrics = %d %q, want 200 with the metrics", w.Code, w.Body)
			}
		case w.Code != http.StatusForbidden:
			t.Errorf("metrics token: %s %s = %d %s, want 403", r.method, r.target, w.Code, w.Body)
		case api:
			want := store.ScopeRead
			if !reads {
				want = store.ScopeAdmin
			}
			if got := scopeRequired(t, w); got != want {
				t.Errorf("metrics token: %s %s: scope_required %q, want %q", r.method, r.target, got, want)
			}
		}

		// read: every GET of the API and /metrics; no change anywhere.
		w = h.do(t, r.method, r.target, read, "")
		switch {
		case !api:
			if w.Code != http.StatusForbidden {
				t.Errorf("read token: page %s %s = %d, want 403", r.method, r.target, w.Code)
			}
		case reads:
			// 501: a part this installation lacks (no updater, no
			// reputation watch in the harness).
			if w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden || (w.Code >= 500 && w.Code != http.StatusNotImplemented) {
				t.Errorf("read token: %s %s = %d %s, want it served", r.method, r.target, w.Code, w.Body)
			}
		default:
			sawWrite = true
			if w.Code != http.StatusForbidden {
				t.Errorf("read token: %s %s = %d %s, want 403", r.method, r.target, w.Code, w.Body)
			} else if got := scopeRequired(t, w); got != store.ScopeAdmin {
				t.Errorf("read token: %s %s: scope_required %q, want admin", r.method, r.target, got)
			}
		}
	}
	if !sawMetrics || !sawWrite {
		t.Fatalf("routes walked lack /metrics (%v) or a state change (%v)", sawMetrics, sawWrite)
	}
	// Reads that the walk's placeholders cannot vouch for: 200 each.
	for _, target := range []string{"/api/v1/status", "/api/v1/config", "/api/v1/tokens", "/api/v1/audit", "/api/v1/events", "/metrics"} {
		if w := h.do(t, "GET", target, read, ""); w.Code != http.StatusOK {
			t.Errorf("read token: GET %s = %d %s, want 200", target, w.Code, w.Body)
		}
	}

	// Nothing changed behind the refusals; the one audited read, the
	// configuration download, names the token.
	es, err := h.store.AuditLog(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Action != "config.backup" || e.Actor != "token:grafana" {
			t.Errorf("audit entry %+v after refused requests, want only config.backup by token:grafana", e)
		}
	}
	if calls := h.config.calls(); len(calls) != 0 || h.config.Current() != cfgBefore {
		t.Errorf("configuration applied %d times, want never", len(calls))
	}
	if n := h.tokenCount(t); n != tokensBefore {
		t.Errorf("%d tokens after the walk, want %d", n, tokensBefore)
	}
	if sys.rebooted() || up.count() != 0 {
		t.Errorf("rebooted %v, firmware installs %d; want neither", sys.rebooted(), up.count())
	}
}

// scopeRequired decodes a scope refusal.
func scopeRequired(t *testing.T, w *httptest.ResponseRecorder) store.Scope {
	t.Helper()
	var body scopeError
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Errorf("refusal body %q (%v), want {\"error\", \"scope_required\"}", w.Body, err)
	}
	return body.ScopeRequired
}

// TestAdminTokenActs: an admin token may change state (no scope refusal),
// and the audit log names it token:<name>, never a user.
func TestAdminTokenActs(t *testing.T) {
	h, sys, _ := scopeHarness(t)
	h.addAdmin(t)
	ansible := "Bearer " + h.scopedToken(t, "ansible", store.ScopeAdmin, 30*24*time.Hour)
	if w := h.do(t, "POST", "/api/v1/system/reboot", ansible, ""); w.Code/100 != 2 || !sys.rebooted() {
		t.Fatalf("admin token: POST /api/v1/system/reboot = %d %s, want it done", w.Code, w.Body)
	}
	if e := h.auditLast(t); e.Actor != "token:ansible" || e.Action != "system.reboot" {
		t.Errorf("audit entry %+v, want actor token:ansible", e)
	}
	cfg := strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1)
	if w := h.do(t, "PUT", "/api/v1/config", ansible, cfg); w.Code != http.StatusOK {
		t.Fatalf("admin token: PUT /api/v1/config = %d %s", w.Code, w.Body)
	}
	if calls := h.config.calls(); len(calls) != 1 || calls[0].Actor != "token:ansible" {
		t.Errorf("Apply calls %+v, want one by token:ansible", calls)
	}
}

// TestExpiredToken: a token works until its expiry and gets 401 from
// then on, everywhere.
func TestExpiredToken(t *testing.T) {
	h := newHarness(t)
	tok := "Bearer " + h.scopedToken(t, "short-lived", store.ScopeRead, time.Hour)
	if w := h.do(t, "GET", "/api/v1/status", tok, ""); w.Code != http.StatusOK {
		t.Fatalf("fresh token: %d %s", w.Code, w.Body)
	}
	h.clock.Advance(time.Hour)
	for _, target := range []string{"/api/v1/status", "/metrics"} {
		w := h.do(t, "GET", target, tok, "")
		if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != bearerRealm {
			t.Errorf("expired token: GET %s = %d %s, want 401 with the challenge", target, w.Code, w.Body)
			continue
		}
		if got := decodeError(t, w); !strings.HasPrefix(got, "token expired at ") {
			t.Errorf("expired token: error %q, want it to say so", got)
		}
	}
}

// TestTokensListScopes: GET /api/v1/tokens shows scope and expiry, never
// a secret.
func TestTokensListScopes(t *testing.T) {
	h := newHarness(t)
	tok := h.scopedToken(t, "prometheus", store.ScopeMetrics, 90*24*time.Hour)
	w := h.do(t, "GET", "/api/v1/tokens", bearer, "")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), tok[3:]) || strings.Contains(w.Body.String(), goodToken[3:]) {
		t.Fatalf("GET /api/v1/tokens = %d %s, want 200 without secrets", w.Code, w.Body)
	}
	got := decode[struct {
		Tokens []map[string]any `json:"tokens"`
	}](t, w).Tokens
	if len(got) != 2 || got[0]["scope"] != "admin" || got[0]["expires"] != nil ||
		got[1]["scope"] != "metrics" || got[1]["expires"] == nil {
		t.Errorf("tokens %v, want the admin token without expiry and the metrics token with one", got)
	}
	for _, ti := range got {
		for _, k := range []string{"id", "name", "scope", "created", "last_used", "expires"} {
			if _, ok := ti[k]; !ok {
				t.Errorf("token %v lacks %q", ti, k)
			}
		}
	}
}

// apiJSON sends a JSON API request with the session and its CSRF token.
func (b *browser) apiJSON(method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	b.t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = b.remote
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(csrfHeader, b.csrf)
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: b.cookie})
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	b.h.router.ServeHTTP(w, req)
	return w
}

// TestTokenCreateReauth: creating a token needs the administrator's
// password again, on the API and on the page; a token never creates one.
// Without it, or with a wrong one, nothing is created.
func TestTokenCreateReauth(t *testing.T) {
	h, b := loggedIn(t)
	count := h.tokenCount(t)
	refused := func(what string, w *httptest.ResponseRecorder, code int) {
		t.Helper()
		if w.Code != code {
			t.Errorf("%s = %d %s, want %d", what, w.Code, w.Body, code)
		}
		if n := h.tokenCount(t); n != count {
			t.Errorf("%s created a token", what)
			count = n
		}
	}
	// An admin token: refused, whatever it sends.
	for _, body := range []string{`{"name": "x"}`, `{"name": "x", "password": "` + adminPass + `"}`} {
		w := h.do(t, "POST", "/api/v1/tokens", bearer, body)
		refused("admin token creating a token", w, http.StatusForbidden)
		if !strings.Contains(w.Body.String(), `"reauth_required":true`) {
			t.Errorf("admin token creating a token: %s, want reauth_required", w.Body)
		}
	}
	// A session without, or with a wrong, password.
	refused("session without password", b.apiJSON("POST", "/api/v1/tokens", `{"name": "x"}`, nil), http.StatusForbidden)
	refused("session with a wrong password", b.apiJSON("POST", "/api/v1/tokens", `{"name": "x", "password": "wrong"}`, nil), http.StatusForbidden)
	refused("session with a wrong password header", b.apiJSON("POST", "/api/v1/tokens", `{"name": "x"}`, map[string]string{reauthHeader: "wrong"}), http.StatusForbidden)
	if e := h.auditLast(t); e.Action != "reauth.failed" || e.Actor != adminUser || e.Detail != "token.create" {
		t.Errorf("audit after a wrong password: %+v", e)
	}
	// Bad fields: 400 naming them, before any password is checked.
	for body, want := range map[string]string{
		`{"name": "x", "scope": "root", "password": "` + adminPass + `"}`: "invalid scope",
		`{"name": "x", "expires": "90", "password": "` + adminPass + `"}`: "invalid expires",
		`{"name": "", "password": "` + adminPass + `"}`:                   "invalid name",
	} {
		w := b.apiJSON("POST", "/api/v1/tokens", body, nil)
		refused("bad field "+body, w, http.StatusBadRequest)
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("bad field %s: %s, want %q", body, w.Body, want)
		}
	}
	// With the password (body field or header): created.
	w := b.apiJSON("POST", "/api/v1/tokens", `{"name": "prometheus", "scope": "metrics", "expires": "90d", "password": "`+adminPass+`"}`, nil)
	if w.Code != http.StatusCreated {
		t.Fatalf("session with the password = %d %s, want 201", w.Code, w.Body)
	}
	created := decode[map[string]any](t, w)
	exp, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(created["expires"]))
	if created["scope"] != "metrics" || created["name"] != "prometheus" || time.Until(exp) < 89*24*time.Hour {
		t.Errorf("created %v, want a metrics token expiring in 90 days", created)
	}
	tok := "Bearer " + fmt.Sprint(created["token"])
	if w := h.do(t, "GET", "/metrics", tok, ""); w.Code != http.StatusOK {
		t.Errorf("new metrics token on /metrics = %d", w.Code)
	}
	if w := h.do(t, "GET", "/api/v1/status", tok, ""); w.Code != http.StatusForbidden {
		t.Errorf("new metrics token on /api/v1/status = %d, want 403", w.Code)
	}
	if e := h.auditLast(t); e.Action != "token.create" || e.Actor != adminUser || !strings.Contains(e.Detail, "scope metrics") {
		t.Errorf("audit %+v", e)
	}
	if w := b.apiJSON("POST", "/api/v1/tokens", `{"name": "ci"}`, map[string]string{reauthHeader: adminPass}); w.Code != http.StatusCreated ||
		!strings.Contains(w.Body.String(), `"scope":"admin"`) || !strings.Contains(w.Body.String(), `"expires":null`) {
		t.Errorf("password in the header = %d %s, want 201, an admin token without expiry", w.Code, w.Body)
	}
	count = h.tokenCount(t)

	// The page: the password field is required.
	form := url.Values{"name": {"grafana"}, "scope": {"read"}, "expires": {"12h"}}
	refused("page without password", b.post("/tokens", form), http.StatusForbidden)
	form.Set("password", "wrong")
	refused("page with a wrong password", b.post("/tokens", form), http.StatusForbidden)
	form.Set("expires", "soon")
	form.Set("password", adminPass)
	refused("page with a bad expiry", b.post("/tokens", form), http.StatusBadRequest)
	form.Set("expires", "12h")
	w = b.post("/tokens", form)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `id="new-token"`) {
		t.Fatalf("page with the password = %d, want the new token shown", w.Code)
	}
	toks, _ := h.store.Tokens(context.Background())
	if last := toks[len(toks)-1]; last.Name != "grafana" || last.Scope != store.ScopeRead || last.Expires == nil {
		t.Errorf("created from the page: %+v, want grafana, read, with expiry", last)
	}

	// Wrong passwords count toward the lockout like logins do.
	for range pairMaxFails {
		b.apiJSON("POST", "/api/v1/tokens", `{"name": "x", "password": "wrong"}`, nil)
	}
	w = b.apiJSON("POST", "/api/v1/tokens", `{"name": "x", "password": "`+adminPass+`"}`, nil)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("after %d wrong passwords, the right one = %d %s, want 429 with Retry-After", pairMaxFails, w.Code, w.Body)
	}
}

// TestFirmwareReauth: installing firmware needs the password again with a
// session (API header or form field), an admin token with a token; the
// check comes before the bundle reaches the updater.
func TestFirmwareReauth(t *testing.T) {
	h, _, up := scopeHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Fatalf("login = %d", w.Code)
	}
	installs := 0
	reached := func(what string, want bool) {
		t.Helper()
		if got := up.count() > installs; got != want {
			t.Errorf("%s: bundle reached the updater %v, want %v", what, got, want)
		}
		installs = up.count()
	}
	const target = updatePath + "?sha256=0000000000000000000000000000000000000000000000000000000000000000"
	if w := b.apiJSON("POST", target, "not a bundle", nil); w.Code != http.StatusForbidden ||
		!strings.Contains(w.Body.String(), `"reauth_required":true`) {
		t.Errorf("API with a session, no password = %d %s, want 403 reauth_required", w.Code, w.Body)
	}
	reached("API with a session, no password", false)
	if w := b.apiJSON("POST", target, "not a bundle", map[string]string{reauthHeader: "wrong"}); w.Code != http.StatusForbidden {
		t.Errorf("API with a session, wrong password = %d %s, want 403", w.Code, w.Body)
	}
	reached("API with a session, wrong password", false)
	if w := b.apiJSON("POST", target, "not a bundle", map[string]string{reauthHeader: adminPass}); w.Code != http.StatusBadRequest ||
		!strings.Contains(w.Body.String(), "not a gzip file") {
		t.Errorf("API with a session and the password = %d %s, want the updater's 400", w.Code, w.Body)
	}
	reached("API with a session and the password", true)

	read := "Bearer " + h.scopedToken(t, "grafana", store.ScopeRead, 0)
	if w := h.do(t, "POST", target, read, "not a bundle"); w.Code != http.StatusForbidden {
		t.Errorf("API with a read token = %d, want 403", w.Code)
	}
	reached("API with a read token", false)
	if w := h.do(t, "POST", target, bearer, "not a bundle"); w.Code != http.StatusBadRequest {
		t.Errorf("API with an admin token = %d %s, want the updater's 400", w.Code, w.Body)
	}
	reached("API with an admin token", true)
	if e := h.auditLast(t); e.Action != "system.update" || e.Actor != tokenActor(actorName) {
		t.Errorf("audit %+v, want system.update by %s", e, tokenActor(actorName))
	}

	// The System page's form.
	sum := strings.Repeat("ab", 32)
	post := func(password string) *httptest.ResponseRecorder {
		var buf strings.Builder
		body := fmt.Sprintf("--B\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", csrfField, b.csrf) +
			fmt.Sprintf("--B\r\nContent-Disposition: form-data; name=\"sha256\"\r\n\r\n%s\r\n", sum)
		if password != "" {
			body += fmt.Sprintf("--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n%s\r\n", password)
		}
		body += "--B\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"b.tar.gz\"\r\n\r\nnot a bundle\r\n--B--\r\n"
		buf.WriteString(body)
		return postFirmware(b, strings.NewReader(buf.String()), "multipart/form-data; boundary=B")
	}
	if w := post(""); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "password again") {
		t.Errorf("form without password = %d, want 403 asking for it", w.Code)
	}
	reached("form without password", false)
	if w := post("wrong"); w.Code != http.StatusForbidden {
		t.Errorf("form with a wrong password = %d, want 403", w.Code)
	}
	reached("form with a wrong password", false)
	if w := post(adminPass); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "not a gzip file") {
		t.Errorf("form with the password = %d, want the updater's refusal on the page", w.Code)
	}
	reached("form with the password", true)
}

// TestSafeNext: the post-login target is a local path or "/".
func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/events?kind=blocked", "/events?kind=blocked"},
		{"/hosts/10.20.0.50", "/hosts/10.20.0.50"},
		{"/events?q=a%2Fb", "/events?q=a%2Fb"},
		{"/", "/"},
		{"", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\r\n/evil.example", "/"},
		{"/\x00/evil.example", "/"},
		{"/\u0085/evil.example", "/"},
		{"//evil", "/"},
		{"//evil.example/path", "/"},
		{"/\\evil", "/"},
		{"/\\/evil", "/"},
		{"\\\\evil", "/"},
		{"/x\\..\\..\\evil", "/"},
		{"https://evil", "/"},
		{"https:/evil", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{" /evil", "/"},
		{"/%09/evil.example", "/"},
		{"/%0a/evil.example", "/"},
		{"/%0D%0A/evil.example", "/"},
		{"/%2F/evil", "/"},
		{"/%2f%2fevil", "/"},
		{"/%5Cevil", "/"},
		{"/%5c%5cevil", "/"},
		{"/%zz", "/"},
		{"/" + strings.Repeat("a", 3000), "/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%.80q) = %.80q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestLoginNextRedirect: the login form sends a browser only to a local
// path, whatever next says.
func TestLoginNextRedirect(t *testing.T) {
	for next, want := range map[string]string{
		"/events?kind=blocked": "/events?kind=blocked",
		"/\t/evil.example":     "/",
		"/%09/evil.example":    "/",
	} {
		h := newHarness(t)
		h.addAdmin(t)
		b := h.browser(t)
		w := b.do("POST", "/login", url.Values{"username": {adminUser}, "password": {adminPass}, "next": {next}}, nil)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != want {
			t.Errorf("login with next=%q = %d to %q, want 303 to %q", next, w.Code, w.Header().Get("Location"), want)
		}
	}
}
