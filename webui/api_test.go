package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
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

func TestStatus(t *testing.T) {
	d, h := testDeps(t)
	started := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	d.Now = func() time.Time { return started.Add(90*time.Minute + 500*time.Millisecond) }
	h.status.st = Status{
		Mode:    config.Enforce,
		Version: "v0.1.0",
		Started: started.In(time.FixedZone("CET", 3600)),
		Serving: true,
		Ports: []PortStatus{
			{Name: "eth1", Role: RoleInside, OperState: "up", MTU: 1500, RxBytes: 10, TxBytes: 20, RxPackets: 1, TxPackets: 2},
			{Name: "br0", Role: RoleBridge, OperState: "up", MTU: 1500},
		},
		Counters: map[string]uint64{"relaygate_diverted": 7},
	}
	h.router = NewRouter(d)
	w := h.do(t, "GET", "/api/v1/status", bearer, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/status = %d %s, want 200", w.Code, w.Body)
	}
	want := h.status.st
	want.Started = started
	want.Uptime = "1h30m0s"
	want.UptimeSeconds = 5400.5
	if diff := cmpDiff(want, decode[Status](t, w)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	// The JSON keys are a contract.
	var raw map[string]any
	json.Unmarshal(w.Body.Bytes(), &raw)
	for _, k := range []string{"mode", "version", "uptime", "uptime_seconds", "started", "serving", "ports", "counters"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status has no key %q: %s", k, w.Body)
		}
	}
	port := raw["ports"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "role", "oper_state", "mtu", "rx_bytes", "tx_bytes", "rx_packets", "tx_packets"} {
		if _, ok := port[k]; !ok {
			t.Errorf("port has no key %q: %v", k, port)
		}
	}
}

func TestStatusEmpty(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "GET", "/api/v1/status", bearer, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/status = %d, want 200", w.Code)
	}
	// Lists and maps are never null.
	for _, s := range []string{`"ports":[]`, `"counters":{}`} {
		if !strings.Contains(w.Body.String(), s) {
			t.Errorf("status %s does not contain %s", w.Body, s)
		}
	}
}

func TestEvents(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	// Recorded in this order, they get IDs 1, 2, 3.
	stored := []event.Event{
		{Time: t0, Kind: event.Blocked, Client: netip.MustParseAddr("::ffff:10.0.0.7"), Server: netip.MustParseAddr("198.51.100.25"), MailFrom: "a@example.com", Code: 554},
		{Time: t0.Add(2 * time.Second).In(time.FixedZone("X", 7200)), Kind: event.Blocked, Client: netip.MustParseAddr("10.0.0.8"), Server: netip.MustParseAddr("198.51.100.25")},
		{Time: t0.Add(2 * time.Second), Kind: event.Relayed, Client: netip.MustParseAddr("10.10.0.25"), Server: netip.MustParseAddr("2001:db8::25"), Rcpt: []string{"b@example.net"}, Code: 250},
	}
	want := []event.Event{
		{ID: 3, Time: t0.Add(2 * time.Second), Kind: event.Relayed, Client: netip.MustParseAddr("10.10.0.25"), Server: netip.MustParseAddr("2001:db8::25"), Rcpt: []string{"b@example.net"}, Code: 250},
		{ID: 2, Time: t0.Add(2 * time.Second), Kind: event.Blocked, Client: netip.MustParseAddr("10.0.0.8"), Server: netip.MustParseAddr("198.51.100.25"), Rcpt: []string{}},
		{ID: 1, Time: t0, Kind: event.Blocked, Client: netip.MustParseAddr("10.0.0.7"), Server: netip.MustParseAddr("198.51.100.25"), MailFrom: "a@example.com", Rcpt: []string{}, Code: 554},
	}
	for _, tc := range []struct {
		name   string
		query  string
		want   store.Query
		events []event.Event // what the store answers
	}{
		{"defaults", "", store.Query{Limit: DefaultLimit}, want},
		{"empty values", "?kind=&client=&limit=&since=&until=&q=", store.Query{Limit: DefaultLimit}, want},
		{"all filters", "?kind=would_block&client=::ffff:10.0.0.7&limit=10000&since=2025-03-01T13:00:00%2B01:00&until=2025-03-02T00:00:00.5Z&q=example.com",
			store.Query{
				Kind:   event.WouldBlock,
				Client: netip.MustParseAddr("10.0.0.7"),
				Since:  t0,
				Until:  time.Date(2025, 3, 2, 0, 0, 0, 500e6, time.UTC),
				Text:   "example.com",
				Limit:  10000,
			}, []event.Event{}},
		{"ipv6 client", "?client=2001:db8::7", store.Query{Client: netip.MustParseAddr("2001:db8::7"), Limit: DefaultLimit}, []event.Event{}},
		{"limit cuts", "?limit=2", store.Query{Limit: 2}, want[:2]},
		{"since equals until", "?since=2025-03-01T12:00:00Z&until=2025-03-01T12:00:00Z", store.Query{Since: t0, Until: t0, Limit: DefaultLimit}, []event.Event{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.store.record(t, stored...)
			w := h.do(t, "GET", "/api/v1/events"+tc.query, bearer, "")
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s = %d %s, want 200", tc.query, w.Code, w.Body)
			}
			if diff := cmpDiff([]store.Query{tc.want}, h.store.queries); diff != "" {
				t.Errorf("store query (-want +got):\n%s", diff)
			}
			got := decode[struct{ Events []event.Event }](t, w)
			if diff := cmpDiff(tc.events, got.Events); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if strings.Contains(w.Body.String(), "::ffff:") {
				t.Errorf("events contain a mapped address: %s", w.Body)
			}
		})
	}
}

func TestEventsNone(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "GET", "/api/v1/events", bearer, "")
	if got, want := strings.TrimSpace(w.Body.String()), `{"events":[]}`; w.Code != http.StatusOK || got != want {
		t.Errorf("GET /api/v1/events = %d %s, want 200 %s", w.Code, got, want)
	}
}

func TestEventsBadQuery(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"?kind=spam", `unknown kind "spam" (want one of blocked, would_block, relayed, deferred, upstream_error, refused, alert)`},
		{"?kind=BLOCKED", `unknown kind "BLOCKED" (want one of blocked, would_block, relayed, deferred, upstream_error, refused, alert)`},
		{"?client=10.0.0", `invalid client "10.0.0" (want an IP address, e.g. 192.0.2.7 or 2001:db8::7)`},
		{"?client=10.0.0.0/24", `invalid client "10.0.0.0/24" (want an IP address, e.g. 192.0.2.7 or 2001:db8::7)`},
		{"?client=10.0.0.7:25", `invalid client "10.0.0.7:25" (want an IP address, e.g. 192.0.2.7 or 2001:db8::7)`},
		{"?client=fe80::1%25eth0", `invalid client "fe80::1%eth0" (want an IP address, e.g. 192.0.2.7 or 2001:db8::7)`},
		{"?client=mail.example.com", `invalid client "mail.example.com" (want an IP address, e.g. 192.0.2.7 or 2001:db8::7)`},
		{"?limit=ten", `invalid limit "ten" (want a number from 1 to 10000)`},
		{"?limit=0", `invalid limit "0" (want a number from 1 to 10000)`},
		{"?limit=-1", `invalid limit "-1" (want a number from 1 to 10000)`},
		{"?limit=10001", `invalid limit "10001" (want a number from 1 to 10000)`},
		{"?limit=99999999999999999999", `invalid limit "99999999999999999999" (want a number from 1 to 10000)`},
		{"?since=yesterday", `invalid since "yesterday" (want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z)`},
		{"?since=2025-03-01", `invalid since "2025-03-01" (want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z)`},
		{"?until=2025-03-01T12:00:00", `invalid until "2025-03-01T12:00:00" (want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z)`},
		{"?since=2025-03-02T00:00:00Z&until=2025-03-01T00:00:00Z", "since is after until"},
		{"?q=" + strings.Repeat("x", maxTextQuery+1), "invalid q (want UTF-8 text of at most 256 bytes)"},
		{"?q=%ff", "invalid q (want UTF-8 text of at most 256 bytes)"},
		{"?clinet=10.0.0.7", `unknown parameter "clinet" (want kind, client, since, until, q, limit)`},
		{"?kind=blocked&kind=relayed", `parameter "kind" given 2 times`},
		{"?kind=%zz", "malformed query string"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(t, "GET", "/api/v1/events"+tc.query, bearer, "")
			if w.Code != http.StatusBadRequest {
				t.Fatalf("GET /api/v1/events%s = %d %s, want 400", tc.query, w.Code, w.Body)
			}
			if got := decodeError(t, w); got != tc.want {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
			if n := h.store.calls(); n != 0 {
				t.Errorf("store called %d times, want 0", n)
			}
		})
	}
}

func TestEventsStoreError(t *testing.T) {
	for _, path := range []string{"/api/v1/events", "/api/v1/hosts"} {
		t.Run(path, func(t *testing.T) {
			h := newHarness(t)
			h.store.eventsErr = errors.New("sqlite: disk I/O error at /var/lib/relaygate/store.db")
			w := h.do(t, "GET", path, bearer, "")
			if w.Code != http.StatusInternalServerError {
				t.Fatalf("GET %s = %d, want 500", path, w.Code)
			}
			if got, want := decodeError(t, w), "internal error"; got != want {
				t.Errorf("error = %q, want %q", got, want)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	// The store aggregates two hosts: 12 blocked attempts of
	// ::ffff:10.0.0.7 over an hour, 98 relayed and 2 deferred of
	// 10.10.0.25 at t0.
	blocked := func(at time.Time) event.Event {
		return event.Event{Time: at, Kind: event.Blocked, Client: netip.MustParseAddr("::ffff:10.0.0.7"), Code: 554}
	}
	stored := [][]event.Event{{blocked(t0), blocked(t0.Add(time.Hour).In(time.FixedZone("X", 3600)))}, nil}
	for range 10 {
		stored[0] = append(stored[0], blocked(t0.Add(30*time.Minute)))
	}
	for i := range 100 {
		e := event.Event{Time: t0, Kind: event.Relayed, Client: netip.MustParseAddr("10.10.0.25"), Relay: "mail-relay", Code: 250}
		if i >= 98 {
			e.Kind, e.Code = event.Deferred, 451
		}
		stored[1] = append(stored[1], e)
	}
	want := []store.Host{
		{Addr: netip.MustParseAddr("10.0.0.7"), Attempts: 12, Blocked: 12, FirstSeen: t0, LastSeen: t0.Add(time.Hour)},
		{Addr: netip.MustParseAddr("10.10.0.25"), Attempts: 100, Relayed: 98, Deferred: 2, FirstSeen: t0, LastSeen: t0},
	}
	for _, tc := range []struct {
		query string
		limit int
		want  []store.Host
	}{
		{"", DefaultLimit, want},
		{"?limit=", DefaultLimit, want},
		{"?limit=1", 1, want[:1]},
		{"?limit=10000", 10000, want},
	} {
		t.Run(tc.query, func(t *testing.T) {
			h := newHarness(t)
			h.store.record(t, slices.Concat(stored...)...)
			w := h.do(t, "GET", "/api/v1/hosts"+tc.query, bearer, "")
			if w.Code != http.StatusOK {
				t.Fatalf("GET /api/v1/hosts%s = %d %s, want 200", tc.query, w.Code, w.Body)
			}
			// Every host is read and merged with the inventory; the
			// answer is cut to the limit.
			if diff := cmpDiff([]int{MaxLimit}, h.store.hostLimits); diff != "" {
				t.Errorf("Hosts limit (-want +got):\n%s", diff)
			}
			if len(tc.want) > tc.limit {
				t.Fatalf("test case wants more hosts than its limit")
			}
			got := decode[struct{ Hosts []store.Host }](t, w)
			if diff := cmpDiff(tc.want, got.Hosts); diff != "" {
				t.Errorf("hosts (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("json keys", func(t *testing.T) {
		h := newHarness(t)
		h.store.record(t, stored[0]...)
		w := h.do(t, "GET", "/api/v1/hosts", bearer, "")
		var raw struct{ Hosts []map[string]any }
		json.Unmarshal(w.Body.Bytes(), &raw)
		var keys []string
		for k := range raw.Hosts[0] {
			keys = append(keys, k)
		}
		want := []string{"addr", "attempts", "blocked", "deferred", "encrypted_flows", "first_seen", "flows", "is_relay",
			"last_seen", "messages", "refused", "relayed", "would_block"}
		if diff := cmp.Diff(want, keys, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("host keys (-want +got):\n%s", diff)
		}
	})
}

func TestHostsBadQuery(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"?limit=x", `invalid limit "x" (want a number from 1 to 10000)`},
		{"?limit=0", `invalid limit "0" (want a number from 1 to 10000)`},
		{"?limit=10001", `invalid limit "10001" (want a number from 1 to 10000)`},
		{"?kind=blocked", `unknown parameter "kind" (want limit)`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(t, "GET", "/api/v1/hosts"+tc.query, bearer, "")
			if w.Code != http.StatusBadRequest {
				t.Fatalf("GET /api/v1/hosts%s = %d, want 400", tc.query, w.Code)
			}
			if got := decodeError(t, w); got != tc.want {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
			if n := h.store.calls(); n != 0 {
				t.Errorf("store called %d times, want 0", n)
			}
		})
	}
}

func TestGetConfig(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "GET", "/api/v1/config", bearer, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/config = %d %s, want 200", w.Code, w.Body)
	}
	if diff := cmpDiff(h.config.cur, decode[*config.Config](t, w)); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestPutConfig(t *testing.T) {
	orig := mustParse(t, testConfigYAML)
	asJSON, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body string
		want       *config.Config
	}{
		{"yaml", testConfigYAML, orig},
		{"json from GET", string(asJSON), orig},
		{"monitor", strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1),
			mustParse(t, strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.config.cur = config.Default()
			w := h.do(t, "PUT", "/api/v1/config", bearer, tc.body)
			if w.Code != http.StatusOK {
				t.Fatalf("PUT /api/v1/config = %d %s, want 200", w.Code, w.Body)
			}
			wantCalls := []applyCall{{Config: tc.want, Actor: actorName, Remote: remoteIP}}
			if diff := cmpDiff(wantCalls, h.config.calls()); diff != "" {
				t.Errorf("Apply calls (-want +got):\n%s", diff)
			}
			if diff := cmpDiff(tc.want, decode[*config.Config](t, w)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			// GET answers the new configuration.
			w = h.do(t, "GET", "/api/v1/config", bearer, "")
			if diff := cmpDiff(tc.want, decode[*config.Config](t, w)); diff != "" {
				t.Errorf("GET after PUT (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPutConfigRemoteUnmapped(t *testing.T) {
	h := newHarness(t)
	req := httptest.NewRequest("PUT", "/api/v1/config", strings.NewReader(testConfigYAML))
	req.RemoteAddr = "[::ffff:198.51.100.9]:50123"
	req.Header.Set("X-Forwarded-For", "203.0.113.5") // not trusted
	req.Header.Set("Authorization", bearer)
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("PUT /api/v1/config = %d %s, want 200", w.Code, w.Body)
	}
	if calls := h.config.calls(); len(calls) != 1 || calls[0].Remote != "198.51.100.9" {
		t.Errorf("Apply calls %+v, want one with remote 198.51.100.9", calls)
	}
}

func TestPutConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		status int
		want   string // substring of the error
	}{
		{"unknown key", testConfigYAML + "colour: blue\n", 400, "colour: unknown key"},
		{"unknown nested key", strings.Replace(testConfigYAML, "  bridge: br0\n", "  bridge: br0\n  bridg: br1\n", 1), 400, "interfaces.bridg: unknown key"},
		{"bad CIDR", strings.Replace(testConfigYAML, "10.10.0.25/32", "10.10.0.300/32", 1), 400, `relays[0].address: invalid CIDR "10.10.0.300/32"`},
		{"bad mode", strings.Replace(testConfigYAML, "mode: enforce", "mode: block", 1), 400, "mode: unknown mode"},
		{"broken yaml", "mode: enforce\n  interfaces: [\n", 400, "line"},
		{"broken json", `{"mode": "enforce",`, 400, "line"},
		{"empty", "", 400, "config is empty"},
		{"not a mapping", "- a\n- b\n", 400, "config must be a mapping"},
		{"too large", testConfigYAML + "#" + strings.Repeat("x", MaxConfigBytes) + "\n", 413, "config larger than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(t, "PUT", "/api/v1/config", bearer, tc.body)
			if w.Code != tc.status {
				t.Fatalf("PUT /api/v1/config = %d %s, want %d", w.Code, w.Body, tc.status)
			}
			if got := decodeError(t, w); !strings.Contains(got, tc.want) || strings.Contains(got, "\n") {
				t.Errorf("error = %q, want one line containing %q", got, tc.want)
			}
			if n := len(h.config.calls()); n != 0 {
				t.Errorf("Apply called %d times, want 0", n)
			}
		})
	}
}

// TestPutConfigTooLargeChunked sends a body without Content-Length, so
// that only the reader limit can stop it.
func TestPutConfigTooLargeChunked(t *testing.T) {
	h := newHarness(t)
	body := strings.Repeat("#"+strings.Repeat("x", 1023)+"\n", MaxConfigBytes/1024+1)
	req := httptest.NewRequest("PUT", "/api/v1/config", struct{ *strings.Reader }{strings.NewReader(body)})
	req.ContentLength = -1
	req.Header.Set("Authorization", bearer)
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT /api/v1/config = %d %s, want 413", w.Code, w.Body)
	}
	if n := len(h.config.calls()); n != 0 {
		t.Errorf("Apply called %d times, want 0", n)
	}
}

func TestPutConfigApplyFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"server failure", fmt.Errorf("save /etc/relaygate.yaml: %w", errors.New("read-only file system")), 500,
			"apply config: save /etc/relaygate.yaml: read-only file system (the previous configuration stays in force)"},
		{"rejected key", fmt.Errorf("apply: %w", &config.FieldError{Key: "interfaces.inside", Msg: `no such link "eth9"`}), 400,
			`apply: interfaces.inside: no such link "eth9"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			old := h.config.cur
			h.config.applyErr = tc.err
			w := h.do(t, "PUT", "/api/v1/config", bearer, strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1))
			if w.Code != tc.status {
				t.Fatalf("PUT /api/v1/config = %d %s, want %d", w.Code, w.Body, tc.status)
			}
			if got := decodeError(t, w); got != tc.want {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
			if n := len(h.config.calls()); n != 1 {
				t.Errorf("Apply called %d times, want 1", n)
			}
			w = h.do(t, "GET", "/api/v1/config", bearer, "")
			if diff := cmpDiff(old, decode[*config.Config](t, w)); diff != "" {
				t.Errorf("config after failed PUT (-want +got):\n%s", diff)
			}
		})
	}
}

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
