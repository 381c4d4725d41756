package webui

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

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

func TestInventoryPages(t *testing.T) {
	d, h := testDeps(t)
	fillLab(t, h, time.Now())
	h.store.addLabInventory(t, time.Now())
	d.Inventory = h.store
	b := h.adminBrowser(t, d)
	w := b.do("GET", "/hosts?sort=flows", nil, nil)
	if body := w.Body.String(); w.Code != 200 || !strings.Contains(body, "10.40.0.9") || !strings.Contains(body, "printer-3f.office.example") {
		t.Errorf("hosts page lacks the host seen only on the wire:\n%s", body)
	}
	w = b.do("GET", "/hosts/10.40.0.9", nil, nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Seen on the wire") {
		t.Errorf("host page of a host seen only on the wire = %d", w.Code)
	}
	if d := decode[hostDetail](t, h.do(t, "GET", "/api/v1/hosts/10.20.0.50", bearer, "")); d.Seen == nil || d.Seen.RDNS != "desktop-7qx.office.example" {
		t.Errorf("host detail seen = %+v", d.Seen)
	}
}

func TestHostAPI(t *testing.T) {
	h, _ := labHarness(t)
	w := h.do(t, "GET", "/api/v1/hosts/10.20.0.50", bearer, "")
	if w.Code != 200 {
		t.Fatalf("GET /api/v1/hosts/10.20.0.50 = %d %s", w.Code, w.Body)
	}
	d := decode[hostDetail](t, w)
	if d.Host.Blocked != 2 || len(d.Events) != 2 || !d.Evidence || d.IsRelay {
		t.Errorf("host detail %+v", d)
	}
	if d := decode[hostDetail](t, h.do(t, "GET", "/api/v1/hosts/::ffff:10.10.0.25", bearer, "")); !d.IsRelay || d.Relay != "mail-relay" || d.Host.Addr.String() != "10.10.0.25" {
		t.Errorf("relay host detail %+v", d)
	}
	if w := h.do(t, "GET", "/api/v1/hosts/10.99.0.1", bearer, ""); w.Code != 404 {
		t.Errorf("unknown host = %d, want 404", w.Code)
	}
	if w := h.do(t, "GET", "/api/v1/hosts/nonsense", bearer, ""); w.Code != 400 || !strings.Contains(decodeError(t, w), "invalid address") {
		t.Errorf("bad address = %d %s, want 400", w.Code, w.Body)
	}
	w = h.do(t, "GET", "/api/v1/hosts/10.20.0.50/pcap", bearer, "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/vnd.tcpdump.pcap" || !strings.HasPrefix(w.Body.String(), "\xd4\xc3\xb2\xa1") {
		t.Errorf("pcap = %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if w := h.do(t, "GET", "/api/v1/hosts/10.30.0.80/pcap", bearer, ""); w.Code != 404 {
		t.Errorf("pcap without evidence = %d, want 404", w.Code)
	}
	// Without an Evidence dependency: 404 and no link on the page.
	plain := newHarness(t)
	if w := plain.do(t, "GET", "/api/v1/hosts/10.20.0.50/pcap", bearer, ""); w.Code != 404 {
		t.Errorf("pcap without Evidence = %d, want 404", w.Code)
	}
}
