package webui

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/store"
)

// protected lists every route that needs a token.
var protected = []struct{ method, path, body string }{
	{"GET", "/api/v1/status", ""},
	{"GET", "/api/v1/events", ""},
	{"GET", "/api/v1/hosts", ""},
	{"GET", "/api/v1/config", ""},
	{"PUT", "/api/v1/config", testConfigYAML},
	{"GET", "/metrics", ""},
	{"GET", "/api/v1/events.csv", ""},
	{"GET", "/api/v1/hosts/10.20.0.50", ""},
	{"GET", "/api/v1/hosts/10.20.0.50/pcap", ""},
	{"GET", "/api/v1/config/backup", ""},
	{"POST", "/api/v1/config/restore", testConfigYAML},
	{"GET", "/api/v1/series?metric=blocked", ""},
	{"GET", "/api/v1/dashboard", ""},
	{"GET", "/api/v1/mode-preview?mode=enforce", ""},
	{"GET", "/api/v1/audit", ""},
	{"GET", "/api/v1/tokens", ""},
	{"POST", "/api/v1/tokens", `{"name": "x"}`},
	{"DELETE", "/api/v1/tokens/1", ""},
	{"POST", "/api/v1/system/reboot", ""},
	{"POST", "/api/v1/system/certificate", "{}"},
}

func TestAuthRejected(t *testing.T) {
	const missing = "missing bearer token (want header \"Authorization: Bearer <token>\")"
	const malformed = "malformed Authorization header (want \"Bearer <token>\")"
	for _, tc := range []struct {
		name    string
		headers []string
		want    string
		lookups int // CheckToken calls expected
	}{
		{"missing", nil, missing, 0},
		{"empty", []string{""}, malformed, 0},
		{"scheme only", []string{"Bearer"}, malformed, 0},
		{"scheme and space", []string{"Bearer "}, malformed, 0},
		{"basic", []string{"Basic YWRtaW46YWRtaW4="}, malformed, 0},
		{"token without scheme", []string{goodToken}, malformed, 0},
		{"space in token", []string{"Bearer abc def"}, malformed, 0},
		{"bad character", []string{"Bearer abc\"def"}, malformed, 0},
		{"too long", []string{"Bearer " + strings.Repeat("a", maxTokenLen+1)}, malformed, 0},
		{"two headers", []string{bearer, bearer}, malformed, 0},
		{"unknown token", []string{"Bearer not-a-token"}, "invalid token", 1},
		{"token prefix", []string{"Bearer " + goodToken[:len(goodToken)-1]}, "invalid token", 1},
	} {
		for _, rt := range protected {
			t.Run(tc.name+"/"+rt.method+rt.path, func(t *testing.T) {
				h := newHarness(t)
				req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
				for _, v := range tc.headers {
					req.Header.Add("Authorization", v)
				}
				w := httptest.NewRecorder()
				h.router.ServeHTTP(w, req)
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("%s %s = %d %s, want 401", rt.method, rt.path, w.Code, w.Body)
				}
				if got, want := w.Header().Get("WWW-Authenticate"), `Bearer realm="relaygate"`; got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
				if got := decodeError(t, w); got != tc.want {
					t.Errorf("error = %q, want %q", got, tc.want)
				}
				if h.store.tokenChecks != tc.lookups {
					t.Errorf("CheckToken called %d times, want %d", h.store.tokenChecks, tc.lookups)
				}
				if n := h.store.calls(); n != 0 {
					t.Errorf("store called %d times, want 0", n)
				}
				if n := len(h.config.calls()); n != 0 {
					t.Errorf("Apply called %d times, want 0", n)
				}
			})
		}
	}
}

func TestAuthAccepted(t *testing.T) {
	for _, auth := range []string{
		bearer,
		"bearer " + goodToken, // the scheme is case-insensitive
		"BEARER  " + goodToken,
	} {
		t.Run(auth, func(t *testing.T) {
			h := newHarness(t)
			if w := h.do(t, "GET", "/api/v1/status", auth, ""); w.Code != http.StatusOK {
				t.Errorf("GET /api/v1/status with %q = %d %s, want 200", auth, w.Code, w.Body)
			}
		})
	}
}

func TestTokenStoreError(t *testing.T) {
	h := newHarness(t)
	h.store.tokensErr = errors.New("database is locked: /var/lib/relaygate/store.db")
	w := h.do(t, "GET", "/api/v1/status", bearer, "")
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("GET /api/v1/status = %d, want 500", w.Code)
	}
	if got, want := decodeError(t, w), "internal error"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if got := w.Header().Get("WWW-Authenticate"); got != "" {
		t.Errorf("WWW-Authenticate = %q, want none", got)
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
