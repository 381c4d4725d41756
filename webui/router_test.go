package webui

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "GET", "/metrics", bearer, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", w.Code)
	}
	if got := w.Body.String(); got != metricText {
		t.Errorf("GET /metrics = %q, want %q", got, metricText)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}

	d, _ := testDeps(t)
	d.Metrics = nil
	h.router = NewRouter(d)
	if w := h.do(t, "GET", "/metrics", bearer, ""); w.Code != http.StatusNotFound {
		t.Errorf("GET /metrics without a handler = %d, want 404", w.Code)
	}
}

func TestNotFound(t *testing.T) {
	for _, tc := range []struct {
		method, path, auth string
		status             int
		json               bool
	}{
		{"GET", "/api/v1/nope", bearer, 404, true},
		{"GET", "/api/v1/nope", "", 404, true},
		{"GET", "/api/v2/status", bearer, 404, true},
		{"GET", "/api/v1/status/", bearer, 404, true},
		{"GET", "/api", "", 404, true},
		{"GET", "/nope", "", 404, false},
		{"DELETE", "/api/v1/config", bearer, 405, true},
		{"POST", "/api/v1/events", "", 405, true},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(t, tc.method, tc.path, tc.auth, "")
			if w.Code != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, w.Code, w.Body, tc.status)
			}
			if tc.json && decodeError(t, w) == "" {
				t.Errorf("%s %s: empty error", tc.method, tc.path)
			}
			if tc.status == 405 && w.Header().Get("Allow") == "" {
				t.Errorf("%s %s: no Allow header", tc.method, tc.path)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	for _, tc := range []struct {
		path, auth string
		noStore    bool
	}{
		{"/", "", true},
		{"/static/style.css", "", false},
		{"/api/v1/status", bearer, true},
		{"/api/v1/status", "", true},
		{"/api/v1/nope", "", true},
		{"/metrics", bearer, true},
		{"/nope", "", true},
	} {
		t.Run(tc.path+tc.auth, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(t, "GET", tc.path, tc.auth, "")
			want := map[string]string{
				"X-Content-Type-Options":    "nosniff",
				"X-Frame-Options":           "DENY",
				"Strict-Transport-Security": "max-age=31536000",
				"Content-Security-Policy":   "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
				"Referrer-Policy":           "same-origin",
				"Cache-Control":             "",
			}
			if tc.noStore {
				want["Cache-Control"] = "no-store"
			}
			got := map[string]string{}
			for k := range want {
				got[k] = w.Header().Get(k)
			}
			if diff := cmpDiff(want, got); diff != "" {
				t.Errorf("GET %s headers (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}

func TestIndexAndStatic(t *testing.T) {
	for _, tc := range []struct {
		path     string
		status   int
		ctype    string
		contains string
	}{
		{"/", 303, "", ""},
		{"/static/style.css", 200, "text/css; charset=utf-8", "font-family"},
		{"/static/", 404, "", ""},
		{"/static/nope.js", 404, "", ""},
		{"/static/../index.html", 404, "", ""},
		{"/static/%2e%2e/index.html", 404, "", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(t, "GET", tc.path, "", "")
			if w.Code != tc.status {
				t.Fatalf("GET %s = %d, want %d", tc.path, w.Code, tc.status)
			}
			if tc.ctype != "" {
				if got := w.Header().Get("Content-Type"); got != tc.ctype {
					t.Errorf("GET %s Content-Type = %q, want %q", tc.path, got, tc.ctype)
				}
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Errorf("GET %s = %q, want it to contain %q", tc.path, w.Body, tc.contains)
			}
		})
	}
}

func TestRecovery(t *testing.T) {
	h := newHarness(t)
	h.status.panic = true
	w := h.do(t, "GET", "/api/v1/status", bearer, "")
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("GET /api/v1/status with a panicking source = %d, want 500", w.Code)
	}
	if got, want := decodeError(t, w), "internal error"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestNewRouterMissingDeps(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "Deps.Tokens is nil") {
			t.Errorf("NewRouter without Tokens: panic %v, want one naming Deps.Tokens", r)
		}
	}()
	d, _ := testDeps(t)
	d.Tokens = nil
	NewRouter(d)
}
