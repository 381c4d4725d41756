package webui

import (
	"encoding/csv"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

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
		{"huge limit is a full page", "?limit=10001", store.Query{Limit: MaxLimit}, want},
		{"limit beyond int is a full page", "?limit=99999999999999999999", store.Query{Limit: MaxLimit}, want},
		{"before", "?before=" + store.CursorOf(want[1]).String(), store.Query{Limit: DefaultLimit, Before: store.Cursor{Time: want[1].Time, ID: 2}}, want[2:]},
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
		{"?limit=ten", `invalid limit "ten" (want a number of at least 1; above 10000 it is 10000)`},
		{"?limit=0", `invalid limit "0" (want a number of at least 1; above 10000 it is 10000)`},
		{"?limit=-1", `invalid limit "-1" (want a number of at least 1; above 10000 it is 10000)`},
		{"?limit=1.5", `invalid limit "1.5" (want a number of at least 1; above 10000 it is 10000)`},
		{"?before=42", `invalid before "42" (want the cursor of a next link, e.g. 1735732800000000000.42)`},
		{"?before=x.42", `invalid before "x.42" (want the cursor of a next link, e.g. 1735732800000000000.42)`},
		{"?before=1735732800000000000.0", `invalid before "1735732800000000000.0" (want the cursor of a next link, e.g. 1735732800000000000.42)`},
		{"?since=yesterday", `invalid since "yesterday" (want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z)`},
		{"?since=2025-03-01", `invalid since "2025-03-01" (want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z)`},
		{"?until=2025-03-01T12:00:00", `invalid until "2025-03-01T12:00:00" (want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z)`},
		{"?since=2025-03-02T00:00:00Z&until=2025-03-01T00:00:00Z", "since is after until"},
		{"?q=" + strings.Repeat("x", maxTextQuery+1), "invalid q (want UTF-8 text of at most 256 bytes)"},
		{"?q=%ff", "invalid q (want UTF-8 text of at most 256 bytes)"},
		{"?clinet=10.0.0.7", `unknown parameter "clinet" (want kind, client, since, until, q, limit, before)`},
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
	for _, path := range []string{"/api/v1/events", "/api/v1/events.csv", "/api/v1/hosts", "/api/v1/hosts/10.0.0.7"} {
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

func TestEventsCSV(t *testing.T) {
	h, _ := labHarness(t)
	w := h.do(t, "GET", "/api/v1/events.csv?kind=blocked", bearer, "")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") || !strings.Contains(w.Header().Get("Content-Disposition"), "attachment") {
		t.Fatalf("GET /api/v1/events.csv = %d %v", w.Code, w.Header())
	}
	recs, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0][0] != "time" || recs[1][2] != "10.20.0.50" {
		t.Fatalf("CSV = %v", recs)
	}
	// Formulas from untrusted envelopes are defused.
	if got := recs[2][7]; !strings.HasPrefix(got, "'=") {
		t.Errorf("mail_from cell %q, want it prefixed with '", got)
	}
	if w := h.do(t, "GET", "/api/v1/events.csv?kind=spam", bearer, ""); w.Code != 400 {
		t.Errorf("bad kind = %d, want 400", w.Code)
	}
}
