package webui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/config"
)

// doIf sends one bearer request with a conditional header.
func (h *harness) doIf(t *testing.T, method, target, header, value, body string) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, target, strings.NewReader(body))
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	req.Header.Set("Authorization", bearer)
	if header != "" {
		req.Header.Set(header, value)
	}
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	return w
}

// getETag reads the configuration's ETag.
func (h *harness) getETag(t *testing.T) string {
	t.Helper()
	w := h.do(t, "GET", "/api/v1/config", bearer, "")
	etag := w.Header().Get("ETag")
	if w.Code != http.StatusOK || !strings.HasPrefix(etag, `"`) || len(etag) < 40 {
		t.Fatalf("GET /api/v1/config = %d, ETag %q; want 200 with a strong ETag", w.Code, etag)
	}
	return etag
}

// TestConfigETag: the ETag is stable while the configuration is, answers
// If-None-Match with 304, and is also on the YAML backup.
func TestConfigETag(t *testing.T) {
	h := newHarness(t)
	etag := h.getETag(t)
	if again := h.getETag(t); again != etag {
		t.Errorf("second GET ETag = %s, want %s (nothing changed)", again, etag)
	}
	if w := h.doIf(t, "GET", "/api/v1/config", "If-None-Match", etag, ""); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("GET If-None-Match current = %d %q, want 304 without a body", w.Code, w.Body)
	}
	if w := h.doIf(t, "GET", "/api/v1/config", "If-None-Match", `"old"`, ""); w.Code != http.StatusOK {
		t.Errorf("GET If-None-Match other = %d, want 200", w.Code)
	}
	if w := h.do(t, "GET", "/api/v1/config/backup", bearer, ""); w.Code != http.StatusOK || w.Header().Get("ETag") != etag {
		t.Errorf("GET /api/v1/config/backup = %d, ETag %q; want 200 with %s", w.Code, w.Header().Get("ETag"), etag)
	}
	// The key is kept in the store: a new router over the same store
	// (a restarted daemon) gives the same version.
	d, _ := testDeps(t)
	d.Admins, d.Audit, d.TokenAdmin, d.Series, d.Events, d.Tokens, d.Config = h.store, h.store, h.store, h.store, h.store, h.store, h.config
	h2 := &harness{router: NewRouter(d), store: h.store, config: h.config}
	if got := h2.getETag(t); got != etag {
		t.Errorf("ETag after restart = %s, want %s", got, etag)
	}
}

// TestPutConfigIfMatch: a PUT naming an older version gets 412 with a
// JSON error and changes nothing; one naming the running version applies
// and answers the new version; "*" and no If-Match replace any version.
func TestPutConfigIfMatch(t *testing.T) {
	monitor := strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1)
	h := newHarness(t)
	before := h.getETag(t)
	orig := h.config.Current()

	w := h.doIf(t, "PUT", "/api/v1/config", "If-Match", `"stale-version"`, monitor)
	if w.Code != http.StatusPreconditionFailed {
		t.Fatalf("PUT stale If-Match = %d %s, want 412", w.Code, w.Body)
	}
	if msg := decodeError(t, w); !strings.Contains(msg, "changed since it was read") {
		t.Errorf("412 error = %q", msg)
	}
	if got := w.Header().Get("ETag"); got != before {
		t.Errorf("412 ETag = %q, want the running version %s", got, before)
	}
	if n := len(h.config.calls()); n != 0 || h.config.Current() != orig {
		t.Errorf("after 412: Apply called %d times, config changed %v; want nothing", n, h.config.Current() != orig)
	}

	w = h.doIf(t, "PUT", "/api/v1/config", "If-Match", before, monitor)
	if w.Code != http.StatusOK {
		t.Fatalf("PUT matching If-Match = %d %s, want 200", w.Code, w.Body)
	}
	after := w.Header().Get("ETag")
	if after == "" || after == before {
		t.Errorf("PUT answer ETag = %q, want a new version (was %s)", after, before)
	}
	if h.config.Current().Mode != config.Monitor {
		t.Errorf("mode = %s after PUT, want monitor", h.config.Current().Mode)
	}
	if got := h.getETag(t); got != after {
		t.Errorf("GET ETag = %s, want the PUT's %s", got, after)
	}
	// The version the first writer used is now stale for a second one.
	if w := h.doIf(t, "PUT", "/api/v1/config", "If-Match", before, testConfigYAML); w.Code != http.StatusPreconditionFailed {
		t.Errorf("second PUT with the old version = %d %s, want 412", w.Code, w.Body)
	}
	if w := h.doIf(t, "PUT", "/api/v1/config", "If-Match", "*", testConfigYAML); w.Code != http.StatusOK {
		t.Errorf("PUT If-Match * = %d %s, want 200", w.Code, w.Body)
	}
	if w := h.doIf(t, "PUT", "/api/v1/config", "", "", monitor); w.Code != http.StatusOK {
		t.Errorf("PUT without If-Match = %d %s, want 200", w.Code, w.Body)
	}
}

// TestRestoreIfMatch: POST /api/v1/config/restore honours If-Match like
// PUT /api/v1/config: a stale version gets 412 and restores nothing; the
// running version restores and answers the new ETag.
func TestRestoreIfMatch(t *testing.T) {
	monitor := strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1)
	h := newHarness(t)
	before := h.getETag(t)
	orig := h.config.Current()
	w := h.doIf(t, "POST", "/api/v1/config/restore", "If-Match", `"stale-version"`, monitor)
	if w.Code != http.StatusPreconditionFailed {
		t.Fatalf("restore with a stale If-Match = %d %s, want 412", w.Code, w.Body)
	}
	if n := len(h.config.calls()); n != 0 || h.config.Current() != orig {
		t.Errorf("after 412: Apply called %d times, config changed %v; want nothing", n, h.config.Current() != orig)
	}
	w = h.doIf(t, "POST", "/api/v1/config/restore", "If-Match", before, monitor)
	if w.Code != http.StatusOK {
		t.Fatalf("restore with the running version = %d %s, want 200", w.Code, w.Body)
	}
	if after := w.Header().Get("ETag"); after == "" || after == before || after != h.getETag(t) {
		t.Errorf("restore answer ETag = %q, want the new running version (was %s)", after, before)
	}
	if h.config.Current().Mode != config.Monitor {
		t.Errorf("mode = %s after restore, want monitor", h.config.Current().Mode)
	}
}

// TestPolicyFormStalesETag: a change made on the policy page is a new
// version, so a PUT prepared before it gets 412.
func TestPolicyFormStalesETag(t *testing.T) {
	h, b := loggedIn(t)
	before := h.getETag(t)
	if w := b.post("/policy/relays/add", url.Values{"name": {"crm"}, "address": {"10.10.0.26"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("POST /policy/relays/add = %d %s", w.Code, w.Body)
	}
	if got := h.getETag(t); got == before {
		t.Errorf("ETag after the form = %s, unchanged", got)
	}
	n := len(h.config.calls())
	w := h.doIf(t, "PUT", "/api/v1/config", "If-Match", before, testConfigYAML)
	if w.Code != http.StatusPreconditionFailed {
		t.Fatalf("PUT with the version from before the form = %d %s, want 412", w.Code, w.Body)
	}
	if got := len(h.config.calls()); got != n || len(h.config.Current().Relays) != 2 {
		t.Errorf("after 412: Apply calls %d (want %d), relays %d (want 2)", got, n, len(h.config.Current().Relays))
	}
}

func TestETagMatches(t *testing.T) {
	for _, tc := range []struct {
		header, etag string
		want         bool
	}{
		{`"a"`, `"a"`, true},
		{`"b", "a"`, `"a"`, true},
		{`*`, `"a"`, true},
		{`W/"a"`, `"a"`, false},
		{`"b"`, `"a"`, false},
		{`a`, `"a"`, false},
	} {
		if got := etagMatches(tc.header, tc.etag); got != tc.want {
			t.Errorf("etagMatches(%q, %q) = %v, want %v", tc.header, tc.etag, got, tc.want)
		}
	}
}
