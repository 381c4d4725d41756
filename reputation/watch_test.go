package reputation

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

func TestWatcher(t *testing.T) {
	ctx := context.Background()
	d := startDNS(t)
	listed := "25.100.51.198.zen.spamhaus.org"
	d.set(listed, "127.0.0.4")
	d.setTXT(listed, "Listed in XBL, see https://check.spamhaus.org/")
	d.setTXT("corp.example", "v=spf1 ip4:198.51.100.99 -all")
	open := startFakeRelay(t, func(string, string) bool { return true })
	host, port, _ := net.SplitHostPort(open.addr)
	relayPort, _ := strconv.Atoi(port)

	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	st, err := store.Open(ctx, t.TempDir(), store.Options{Now: func() time.Time { return now }, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The evidence: a PC that tried direct SMTP yesterday.
	for range 3 {
		st.Record(event.Event{Time: now.Add(-24 * time.Hour), Kind: event.Blocked, Client: netip.MustParseAddr("10.20.0.50")})
	}
	st.Record(event.Event{Time: now.Add(-100 * time.Hour), Kind: event.Blocked, Client: netip.MustParseAddr("10.20.0.99")})
	st.Flush(ctx)

	cfg := config.Default()
	cfg.Relays = []config.Relay{{Name: "mail-relay", Address: config.MustParsePrefix(host + "/32"), PublicAddress: netip.MustParseAddr("198.51.100.25"), Domain: "corp.example"}}
	cfg.Reputation.Addresses = []netip.Addr{netip.MustParseAddr("198.51.100.25"), netip.MustParseAddr("198.51.100.26")}
	cfg.Reputation.Zones = []string{"zen.spamhaus.org"}
	w := NewWatcher(Options{
		Logger: slog.New(slog.DiscardHandler), Recorder: st, Events: st, History: st,
		Resolver:    &DNSClient{Servers: []string{d.addr}, Timeout: time.Second},
		SPFResolver: NewNetResolver([]string{d.addr}, time.Second),
		RelayDialer: &net.Dialer{Timeout: time.Second}, RelayPort: relayPort,
		Now: func() time.Time { return now },
	}, cfg)

	snap := w.RunOnce(ctx)
	want := SnapshotStats{Listed: 1, Clean: 1, SPFFailing: 1, OpenRelays: 1}
	if snap.Summary != want {
		t.Errorf("summary = %+v; want %+v", snap.Summary, want)
	}
	st.Flush(ctx)
	alerts, _ := st.Events(ctx, store.Query{Kind: event.Alert})
	if len(alerts) != 2 {
		t.Fatalf("alerts = %d (%+v); want 2 (listing, open relay)", len(alerts), alerts)
	}
	var listing event.Event
	for _, a := range alerts {
		if strings.Contains(a.Detail, "zen.spamhaus.org") {
			listing = a
		}
	}
	for _, want := range []string{"198.51.100.25 listed on zen.spamhaus.org", "127.0.0.4", "XBL", "Listed in XBL", "removal: https://check.spamhaus.org/", "10.20.0.50 (3 attempts)"} {
		if !strings.Contains(listing.Detail, want) {
			t.Errorf("listing alert %q lacks %q", listing.Detail, want)
		}
	}
	if strings.Contains(listing.Detail, "10.20.0.99") {
		t.Errorf("evidence reaches beyond %s: %q", EvidenceWindow, listing.Detail)
	}

	// The same state again: no new alert. Delisted: none. Listed again: one.
	now = now.Add(time.Hour)
	w.RunOnce(ctx)
	d.del(listed)
	now = now.Add(time.Hour)
	w.RunOnce(ctx)
	st.Flush(ctx)
	if n := countAlerts(t, st); n != 2 {
		t.Errorf("alerts after unchanged and delisted runs = %d; want still 2", n)
	}
	d.set(listed, "127.0.0.2")
	now = now.Add(time.Hour)
	w.RunOnce(ctx)
	st.Flush(ctx)
	if n := countAlerts(t, st); n != 3 {
		t.Errorf("alerts after a new listing = %d; want 3", n)
	}
	hist, err := st.ReputationHistory(ctx, "198.51.100.25", "zen.spamhaus.org", 10)
	if err != nil || len(hist) != 4 || hist[0].Status != "listed" || hist[1].Status != "clean" {
		t.Errorf("history = %+v, %v", hist, err)
	}

	// A restart does not raise the standing listing again.
	w2 := NewWatcher(Options{Logger: slog.New(slog.DiscardHandler), Recorder: st, Events: st, History: st,
		Resolver: &DNSClient{Servers: []string{d.addr}, Timeout: time.Second}, Now: func() time.Time { return now }}, cfg)
	w2.RunOnce(ctx)
	st.Flush(ctx)
	if n := countAlerts(t, st); n != 3 {
		t.Errorf("alerts after a restart = %d; want still 3", n)
	}
}

func countAlerts(t *testing.T, st *store.Store) int {
	t.Helper()
	evs, err := st.Events(context.Background(), store.Query{Kind: event.Alert})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

func TestAPI(t *testing.T) {
	d := startDNS(t)
	d.set("25.100.51.198.zen.spamhaus.org", "127.0.0.2")
	cfg := config.Default()
	cfg.Reputation.Addresses = []netip.Addr{netip.MustParseAddr("198.51.100.25")}
	cfg.Reputation.Zones = []string{"zen.spamhaus.org"}
	w := NewWatcher(Options{Logger: slog.New(slog.DiscardHandler),
		Resolver: &DNSClient{Servers: []string{d.addr}, Timeout: time.Second}}, cfg)
	api := &API{Watcher: w, Alerter: NewAlerter(slog.New(slog.DiscardHandler), cfg.Alerts)}

	rec := httptest.NewRecorder()
	api.Check(rec, httptest.NewRequest("POST", "/api/v1/reputation/check", nil))
	var snap Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &snap); err != nil || rec.Code != 200 {
		t.Fatalf("check: %d %s", rec.Code, rec.Body)
	}
	if len(snap.DNSBL) != 1 || snap.DNSBL[0].Status != Listed || snap.DNSBL[0].Code != "127.0.0.2" || snap.DNSBL[0].CheckedAt.IsZero() {
		t.Errorf("snapshot = %+v", snap.DNSBL)
	}
	rec = httptest.NewRecorder()
	api.Snapshot(rec, httptest.NewRequest("GET", "/api/v1/reputation", nil))
	if !strings.Contains(rec.Body.String(), `"status":"listed"`) {
		t.Errorf("GET snapshot: %s", rec.Body)
	}
	for _, tc := range []struct {
		channel string
		code    int
	}{{"pager", 400}, {"", 400}, {"webhook", 502}} {
		rec = httptest.NewRecorder()
		api.TestAlert(rec, httptest.NewRequest("POST", "/api/v1/alerts/test?channel="+tc.channel, nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("test alert %q: %d %s; want %d with an error", tc.channel, rec.Code, rec.Body, tc.code)
		}
	}
}
