package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"modernc.org/sqlite"

	"github.com/relaygate/relaygate/event"
)

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is an injectable clock for retention and default times.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var addrComparer = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// openTest opens a store in dir (a fresh temporary one when empty) with
// background pruning off, and closes it at the end of the test.
func openTest(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = -1
	}
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func flush(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
}

func countEvents(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatalf("count events: %v", err)
	}
	return n
}

func details(evs []event.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Detail)
	}
	return out
}

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

// sampleEvents are recorded in this order, so their IDs are 1 to 7.
func sampleEvents() []event.Event {
	return []event.Event{
		{Time: at(1), Kind: event.Blocked, Client: netip.MustParseAddr("10.0.0.5"), Helo: "pc1.lan",
			MailFrom: "spam@evil.example", Rcpt: []string{"a@x.example", "b@y.example"}, Code: 554, Detail: "e1"},
		{Time: at(2), Kind: event.Relayed, Client: netip.MustParseAddr("10.0.0.25"), Server: netip.MustParseAddr("198.51.100.7"),
			ServerPort: 25, Relay: "mail-relay", Helo: "relay.corp.example", MailFrom: "Alice@Corp.example",
			Rcpt: []string{"bob@partner.example"}, Code: 250, Detail: "e2", Bytes: 1234,
			Messages: 3, Size: 999, Reply: "250 2.0.0 Ok: queued as 4XyZ", TLS: "passthrough", Encrypted: true},
		{Time: at(3), Kind: event.WouldBlock, Client: netip.MustParseAddr("::ffff:10.0.0.5"), Helo: "PC1.lan", Detail: "e3"},
		{Time: at(4), Kind: event.Deferred, Client: netip.MustParseAddr("2001:db8::9"), MailFrom: "news@corp.example",
			Rcpt: []string{"<list@x.example>"}, Code: 451, Detail: "e4"},
		{Time: at(5), Kind: event.Refused, Client: netip.MustParseAddr("10.0.0.5"), Detail: "e5"},
		{Time: at(3), Kind: event.Blocked, Client: netip.MustParseAddr("10.0.0.6"), MailFrom: "x%y@z.example", Detail: "e6"},
		{Kind: event.UpstreamError, Client: netip.MustParseAddr("10.0.0.25"), Detail: "e7"}, // time from the clock
	}
}

func recordSample(t *testing.T) *Store {
	t.Helper()
	clock := &fakeClock{t: base.Add(time.Hour)}
	s := openTest(t, "", Options{Now: clock.Now})
	for _, e := range sampleEvents() {
		s.Record(e)
	}
	flush(t, s)
	return s
}

func TestEventsQuery(t *testing.T) {
	s := recordSample(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		q    Query
		want []string
	}{
		{"all", Query{}, []string{"e7", "e5", "e4", "e6", "e3", "e2", "e1"}},
		{"kind", Query{Kind: event.Blocked}, []string{"e6", "e1"}},
		{"kind none", Query{Kind: event.Kind("nonesuch")}, []string{}},
		{"client v4", Query{Client: netip.MustParseAddr("10.0.0.5")}, []string{"e5", "e3", "e1"}},
		{"client v4-mapped", Query{Client: netip.MustParseAddr("::ffff:10.0.0.5")}, []string{"e5", "e3", "e1"}},
		{"client v6", Query{Client: netip.MustParseAddr("2001:db8::9")}, []string{"e4"}},
		{"kind and client", Query{Kind: event.Blocked, Client: netip.MustParseAddr("10.0.0.5")}, []string{"e1"}},
		{"no match", Query{Kind: event.Relayed, Client: netip.MustParseAddr("10.0.0.5")}, []string{}},
		{"since inclusive", Query{Since: at(3)}, []string{"e7", "e5", "e4", "e6", "e3"}},
		{"until exclusive", Query{Until: at(3)}, []string{"e2", "e1"}},
		{"since and until", Query{Since: at(2), Until: at(5)}, []string{"e4", "e6", "e3", "e2"}},
		{"text mail_from any case", Query{Text: "CORP.example"}, []string{"e4", "e2"}},
		{"text rcpt", Query{Text: "b@y"}, []string{"e1"}},
		{"text rcpt angle bracket", Query{Text: "<list@"}, []string{"e4"}},
		{"text helo", Query{Text: "pc1"}, []string{"e3", "e1"}},
		{"text percent is literal", Query{Text: "%"}, []string{"e6"}},
		{"text underscore is literal", Query{Text: "_"}, []string{}},
		{"text no match", Query{Text: "nobody"}, []string{}},
		{"limit", Query{Limit: 2}, []string{"e7", "e5"}},
		{"before id", Query{BeforeID: 6}, []string{"e3", "e2", "e1"}},
		{"before id with kind", Query{BeforeID: 6, Kind: event.Blocked}, []string{"e1"}},
		{"before unknown id", Query{BeforeID: 999}, []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Events(ctx, tt.q)
			if err != nil {
				t.Fatalf("Events(%+v) = %v", tt.q, err)
			}
			if diff := cmp.Diff(tt.want, details(got)); diff != "" {
				t.Errorf("Events(%+v) details (-want +got):\n%s", tt.q, diff)
			}
		})
	}
}

func TestEventsPaging(t *testing.T) {
	s := recordSample(t)
	var pages [][]string
	q := Query{Limit: 2}
	for range 10 {
		evs, err := s.Events(context.Background(), q)
		if err != nil {
			t.Fatalf("Events(%+v) = %v", q, err)
		}
		pages = append(pages, details(evs))
		if len(evs) == 0 {
			break
		}
		q.BeforeID = evs[len(evs)-1].ID
	}
	want := [][]string{{"e7", "e5"}, {"e4", "e6"}, {"e3", "e2"}, {"e1"}, {}}
	if diff := cmp.Diff(want, pages); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
}

func TestEventsRoundTrip(t *testing.T) {
	s := recordSample(t)
	got, err := s.Events(context.Background(), Query{})
	if err != nil {
		t.Fatalf("Events() = %v", err)
	}
	byDetail := map[string]event.Event{}
	for _, e := range got {
		byDetail[e.Detail] = e
	}
	want := map[string]event.Event{
		"e2": {ID: 2, Time: at(2), Kind: event.Relayed, Client: netip.MustParseAddr("10.0.0.25"),
			Server: netip.MustParseAddr("198.51.100.7"), ServerPort: 25, Relay: "mail-relay", Helo: "relay.corp.example",
			MailFrom: "Alice@Corp.example", Rcpt: []string{"bob@partner.example"}, Code: 250, Detail: "e2", Bytes: 1234,
			Messages: 3, Size: 999, Reply: "250 2.0.0 Ok: queued as 4XyZ", TLS: "passthrough", Encrypted: true},
		// mapped client unmapped, nil rcpt an empty list, zero server stays zero
		"e3": {ID: 3, Time: at(3), Kind: event.WouldBlock, Client: netip.MustParseAddr("10.0.0.5"), Helo: "PC1.lan",
			Rcpt: []string{}, Detail: "e3"},
		"e7": {ID: 7, Time: base.Add(time.Hour), Kind: event.UpstreamError, Client: netip.MustParseAddr("10.0.0.25"),
			Rcpt: []string{}, Detail: "e7"},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, byDetail[name], addrComparer); diff != "" {
			t.Errorf("event %s (-want +got):\n%s", name, diff)
		}
		if byDetail[name].Rcpt == nil {
			t.Errorf("event %s: Rcpt is nil, want a list", name)
		}
		if loc := byDetail[name].Time.Location(); loc != time.UTC {
			t.Errorf("event %s: Time.Location() = %v, want UTC", name, loc)
		}
	}
	// The raw columns hold plain addresses and a JSON list.
	var client, server, rcpt string
	if err := s.db.QueryRow(`SELECT client, server, rcpt FROM events WHERE id = 3`).Scan(&client, &server, &rcpt); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.0.0.5", "", "[]"}, []string{client, server, rcpt}); diff != "" {
		t.Errorf("stored columns of e3 (-want +got):\n%s", diff)
	}
}

func TestRecordCopiesRcpt(t *testing.T) {
	s := openTest(t, "", Options{})
	rcpt := []string{"a@example.com"}
	s.Record(event.Event{Kind: event.Blocked, Rcpt: rcpt})
	rcpt[0] = "changed@example.com"
	flush(t, s)
	got, err := s.Events(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a@example.com"}, got[0].Rcpt); diff != "" {
		t.Errorf("Rcpt (-want +got):\n%s", diff)
	}
}

func TestClampLimit(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{-1, 100}, {0, 100}, {1, 1}, {10000, 10000}, {10001, 10000}} {
		if got := clampLimit(tt.in); got != tt.want {
			t.Errorf("clampLimit(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestHosts(t *testing.T) {
	s := openTest(t, "", Options{})
	a, b, c := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.25"), netip.MustParseAddr("2001:db8::9")
	for _, e := range []event.Event{
		{Time: at(1), Kind: event.Blocked, Client: a},
		{Time: at(2), Kind: event.Relayed, Client: b},
		{Time: at(3), Kind: event.WouldBlock, Client: netip.MustParseAddr("::ffff:10.0.0.5")},
		{Time: at(4), Kind: event.Deferred, Client: b},
		{Time: at(5), Kind: event.Refused, Client: a},
		{Time: at(6), Kind: event.UpstreamError, Client: b},
		{Time: at(7), Kind: event.Relayed, Client: b},
		{Time: at(8), Kind: event.Deferred, Client: a},
		{Time: at(9), Kind: event.Blocked, Client: c},
		{Time: at(10), Kind: event.UpstreamError}, // no client: not a host
	} {
		s.Record(e)
	}
	// Held back by a throttle: counted, not stored.
	s.Tally(event.Event{Time: at(8), Kind: event.Refused, Client: a})
	flush(t, s)
	for _, tt := range []struct {
		limit int
		want  []Host
	}{
		{0, []Host{
			{Addr: c, Attempts: 1, Blocked: 1, FirstSeen: at(9), LastSeen: at(9)},
			{Addr: a, Attempts: 5, Blocked: 4, Deferred: 1, Refused: 2, WouldBlock: 1, FirstSeen: at(1), LastSeen: at(8)},
			{Addr: b, Attempts: 4, Relayed: 2, Deferred: 1, FirstSeen: at(2), LastSeen: at(7)},
		}},
		{1, []Host{{Addr: c, Attempts: 1, Blocked: 1, FirstSeen: at(9), LastSeen: at(9)}}},
	} {
		got, err := s.Hosts(context.Background(), tt.limit)
		if err != nil {
			t.Fatalf("Hosts(%d) = %v", tt.limit, err)
		}
		if diff := cmp.Diff(tt.want, got, addrComparer); diff != "" {
			t.Errorf("Hosts(%d) (-want +got):\n%s", tt.limit, diff)
		}
	}
	h, err := s.HostByAddr(context.Background(), netip.MustParseAddr("::ffff:10.0.0.5"))
	if err != nil || h.Addr != a || h.Blocked != 4 {
		t.Errorf("HostByAddr(10.0.0.5) = %+v, %v; want the host of Hosts", h, err)
	}
	if _, err := s.HostByAddr(context.Background(), netip.MustParseAddr("10.9.9.9")); !errors.Is(err, ErrNotFound) {
		t.Errorf("HostByAddr(unknown) = %v, want ErrNotFound", err)
	}
}

func TestHostsEmpty(t *testing.T) {
	s := openTest(t, "", Options{})
	got, err := s.Hosts(context.Background(), 10)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("Hosts() = %v, %v, want an empty list", got, err)
	}
}

func TestPruneByAge(t *testing.T) {
	clock := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clock.Now, Retention: 90 * 24 * time.Hour})
	day := 24 * time.Hour
	for i, age := range []time.Duration{100 * day, 91 * day, 89 * day, day, 0} {
		s.Record(event.Event{Time: base.Add(-age), Kind: event.Blocked, Detail: fmt.Sprint("age", i)})
	}
	flush(t, s)
	ctx := context.Background()
	steps := []struct {
		name        string
		do          func()
		wantDeleted int64
		want        []string
	}{
		{"retention 90 days", func() {}, 2, []string{"age4", "age3", "age2"}},
		{"again: nothing", func() {}, 0, []string{"age4", "age3", "age2"}},
		{"clock advanced 2 days", func() { clock.Set(base.Add(2 * day)) }, 1, []string{"age4", "age3"}},
		{"SetLimits 60h", func() { s.SetLimits(60*time.Hour, 0) }, 1, []string{"age4"}},
	}
	for _, st := range steps {
		st.do()
		n, err := s.Prune(ctx)
		if err != nil {
			t.Fatalf("%s: Prune() = %v", st.name, err)
		}
		if n != st.wantDeleted {
			t.Errorf("%s: Prune() = %d, want %d", st.name, n, st.wantDeleted)
		}
		got, err := s.Events(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.want, details(got)); diff != "" {
			t.Errorf("%s: remaining (-want +got):\n%s", st.name, diff)
		}
	}
}

func TestPruneByCount(t *testing.T) {
	for _, tt := range []struct {
		name      string
		events    int
		maxEvents int
	}{
		{"under cap", 5, 10},
		{"at cap", 10, 10},
		{"over cap", 10, 3},
		{"several chunks", 2*pruneChunk + 123, 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, "", Options{MaxEvents: tt.maxEvents, QueueSize: tt.events, Now: func() time.Time { return base }})
			for i := range tt.events {
				// pairs of events share a time: ties are broken by ID
				s.Record(event.Event{Time: at(i / 2), Kind: event.Blocked, Detail: fmt.Sprint(i)})
			}
			flush(t, s)
			n, err := s.Prune(context.Background())
			if err != nil {
				t.Fatalf("Prune() = %v", err)
			}
			wantDeleted := int64(max(0, tt.events-tt.maxEvents))
			if n != wantDeleted {
				t.Errorf("Prune() = %d, want %d", n, wantDeleted)
			}
			got, err := s.Events(context.Background(), Query{Limit: maxLimit})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{}
			for i := tt.events - 1; i >= int(wantDeleted); i-- {
				want = append(want, fmt.Sprint(i))
			}
			if diff := cmp.Diff(want, details(got)); diff != "" {
				t.Errorf("remaining (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackgroundPrune(t *testing.T) {
	clock := &fakeClock{t: base}
	dir := t.TempDir()
	s := openTest(t, dir, Options{Now: clock.Now, Retention: time.Hour})
	s.Record(event.Event{Time: base.Add(-2 * time.Hour), Kind: event.Blocked})
	s.Record(event.Event{Time: base, Kind: event.Blocked})
	flush(t, s)
	s2 := openTest(t, dir, Options{Now: clock.Now, Retention: time.Hour, PruneInterval: 10 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for countEvents(t, s2) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("background prune did not run: %d events", countEvents(t, s2))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentRecord(t *testing.T) {
	s := openTest(t, "", Options{EventsPerSourcePerMinute: -1})
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				s.Record(event.Event{Kind: event.Blocked, Client: netip.AddrFrom4([4]byte{10, 0, byte(g), 1}),
					Rcpt: []string{fmt.Sprintf("r%d@example.com", i)}})
				if i%100 == 0 {
					if err := s.Flush(context.Background()); err != nil {
						t.Errorf("Flush() = %v", err)
					}
				}
			}
		})
	}
	// readers at the same time
	wg.Go(func() {
		for range 20 {
			if _, err := s.Hosts(context.Background(), 0); err != nil {
				t.Errorf("Hosts() = %v", err)
			}
		}
	})
	wg.Wait()
	flush(t, s)
	// The queue holds more than all events, so none may be dropped.
	if got, want := s.Recorded(), uint64(goroutines*each); got != want || s.Dropped() != 0 {
		t.Errorf("Recorded(), Dropped() = %d, %d, want %d, 0", got, s.Dropped(), want)
	}
	if got, want := countEvents(t, s), int64(goroutines*each); got != want {
		t.Errorf("events in table = %d, want %d", got, want)
	}
	hosts, err := s.Hosts(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != goroutines {
		t.Errorf("len(Hosts()) = %d, want %d", len(hosts), goroutines)
	}
}

func TestRecordNeverBlocks(t *testing.T) {
	s := openTest(t, "", Options{QueueSize: 1})
	const n = 5000
	done := make(chan struct{})
	go func() {
		for range n {
			s.Record(event.Event{Kind: event.Blocked})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Record blocked")
	}
	flush(t, s)
	if got := s.Recorded() + s.Dropped(); got != n {
		t.Errorf("Recorded() + Dropped() = %d, want %d", got, n)
	}
	if got := countEvents(t, s); uint64(got) != s.Recorded() {
		t.Errorf("events in table = %d, Recorded() = %d", got, s.Recorded())
	}
}

func TestClose(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Record(event.Event{Kind: event.Blocked})
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if got := s.Recorded(); got != 1 {
		t.Errorf("Recorded() after Close = %d, want 1 (Close flushes)", got)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
	s.Record(event.Event{Kind: event.Blocked})
	if got := s.Dropped(); got != 1 {
		t.Errorf("Dropped() after Record on closed store = %d, want 1", got)
	}
	if err := s.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush() on closed store = %v, want ErrClosed", err)
	}
}

func TestFlushContext(t *testing.T) {
	s := openTest(t, "", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The writer may or may not take the request first; either way Flush
	// returns promptly.
	if err := s.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Flush(canceled) = %v, want nil or context.Canceled", err)
	}
}

func TestAudit(t *testing.T) {
	clock := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clock.Now})
	ctx := context.Background()
	entries := []AuditEntry{
		{Actor: "admin", Action: "config.update", Detail: "mode: monitor -> enforce", Remote: "192.0.2.7"},
		{Time: at(-10), Actor: "token:ci", Action: "token.create", Detail: "name=ci", Remote: "2001:db8::1"},
		{Time: at(5), Actor: "admin", Action: "token.revoke", Detail: "id=1", Remote: "192.0.2.7"},
	}
	for _, a := range entries {
		if err := s.Audit(ctx, a); err != nil {
			t.Fatalf("Audit(%+v) = %v", a, err)
		}
	}
	for _, tt := range []struct {
		limit int
		want  []AuditEntry
	}{
		{0, []AuditEntry{
			{ID: 3, Time: at(5), Actor: "admin", Action: "token.revoke", Detail: "id=1", Remote: "192.0.2.7"},
			{ID: 1, Time: base, Actor: "admin", Action: "config.update", Detail: "mode: monitor -> enforce", Remote: "192.0.2.7"},
			{ID: 2, Time: at(-10), Actor: "token:ci", Action: "token.create", Detail: "name=ci", Remote: "2001:db8::1"},
		}},
		{1, []AuditEntry{{ID: 3, Time: at(5), Actor: "admin", Action: "token.revoke", Detail: "id=1", Remote: "192.0.2.7"}}},
	} {
		got, err := s.AuditLog(ctx, tt.limit)
		if err != nil {
			t.Fatalf("AuditLog(%d) = %v", tt.limit, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("AuditLog(%d) (-want +got):\n%s", tt.limit, diff)
		}
	}
}

func TestCollectors(t *testing.T) {
	s := openTest(t, "", Options{})
	reg := prometheus.NewPedanticRegistry()
	for _, c := range s.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	// A second store registers in its own registry without conflicts.
	s2 := openTest(t, "", Options{})
	reg2 := prometheus.NewRegistry()
	for _, c := range s2.Collectors() {
		if err := reg2.Register(c); err != nil {
			t.Fatalf("Register second store: %v", err)
		}
	}
	s.Record(event.Event{Kind: event.Blocked})
	s.Record(event.Event{Kind: event.Blocked})
	flush(t, s)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			got[mf.GetName()] = c.GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"relaygate_store_events_recorded_total":    2,
		"relaygate_store_events_dropped_total":     0,
		"relaygate_store_events_pruned_total":      0,
		"relaygate_store_write_queue_length":       0,
		"relaygate_store_write_queue_capacity":     DefaultQueueSize,
		"relaygate_store_events_over_budget_total": 0,
		"relaygate_store_quota_bytes":              float64(s.MaxBytes()),
		"relaygate_store_event_bytes":              2 * event.FixedBytes,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	openTest(t, dir, Options{})
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, FileName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %v, want %v", path, got, want)
		}
	}
	s := openTest(t, dir, Options{})
	var mode string
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v, want wal", mode, err)
	}
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("user_version = %d, %v, want %d", v, err, len(migrations))
	}
}

func TestOpenBadInput(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(tmp, "garbage")
	if err := os.Mkdir(garbage, 0o700); err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("this is not an SQLite database\x00\xff", 200))
	if err := os.WriteFile(filepath.Join(garbage, FileName), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	dbIsDir := filepath.Join(tmp, "dbisdir")
	if err := os.MkdirAll(filepath.Join(dbIsDir, FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(tmp, "newer")
	s, err := Open(context.Background(), newer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	for _, tt := range []struct {
		name     string
		dir      string
		wantText []string
		check    func(error) bool
	}{
		{name: "empty", dir: "", wantText: []string{"empty data directory"}},
		{name: "file, not a directory", dir: file, wantText: []string{file, "is not a directory"}},
		{name: "under a file", dir: filepath.Join(file, "sub"), wantText: []string{"not a directory"}},
		{name: "garbage database", dir: garbage, wantText: []string{filepath.Join(garbage, FileName), "not a database"},
			check: func(err error) bool {
				var se *sqlite.Error
				return errors.As(err, &se) && se.Code() == 26 // SQLITE_NOTADB
			}},
		{name: "database file is a directory", dir: dbIsDir, wantText: []string{FileName}},
		{name: "schema newer than program", dir: newer, wantText: []string{"schema version 99 is newer"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.dir, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want error", tt.dir)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open(%q) = %q, want it to contain %q", tt.dir, err, w)
				}
			}
			if tt.check != nil && !tt.check(err) {
				t.Errorf("Open(%q) = %#v: does not wrap the expected cause", tt.dir, err)
			}
		})
	}
	// The garbage was left alone.
	got, err := os.ReadFile(filepath.Join(garbage, FileName))
	if err != nil || string(got) != string(junk) {
		t.Errorf("garbage database file was modified (err %v)", err)
	}
}

// TestTwoStores opens the same directory twice, as the daemon and
// "appliance token create" do, and writes from both at once.
func TestTwoStores(t *testing.T) {
	dir := t.TempDir()
	daemon := openTest(t, dir, Options{})
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			daemon.Record(event.Event{Kind: event.Blocked, Detail: fmt.Sprint(i)})
			if i%50 == 0 {
				if err := daemon.Flush(ctx); err != nil {
					t.Errorf("daemon Flush() = %v", err)
				}
				// SQLite's lock is not fair: a writer committing back to
				// back can starve the other process for the busy timeout.
				// The real writer commits at most every 256 events or
				// 200ms; pause like that.
				time.Sleep(5 * time.Millisecond)
			}
		}
	})
	var tokens []string
	for i := range 3 {
		cli, err := Open(ctx, dir, Options{PruneInterval: -1})
		if err != nil {
			t.Fatalf("second Open() = %v", err)
		}
		for j := range 5 {
			tok, err := cli.CreateToken(ctx, fmt.Sprintf("cli-%d-%d", i, j))
			if err != nil {
				t.Fatalf("CreateToken() from second store = %v", err)
			}
			tokens = append(tokens, tok)
		}
		if _, err := cli.Events(ctx, Query{Limit: 10}); err != nil {
			t.Errorf("Events() from second store = %v", err)
		}
		if err := cli.Close(); err != nil {
			t.Errorf("Close() second store = %v", err)
		}
	}
	close(stop)
	wg.Wait()
	flush(t, daemon)
	for i, tok := range tokens {
		ti, ok, err := daemon.CheckToken(ctx, tok)
		if want := fmt.Sprintf("cli-%d-%d", i/5, i%5); err != nil || !ok || ti.Name != want {
			t.Errorf("CheckToken(token %d) = %q, %v, %v, want %q, true, nil", i, ti.Name, ok, err, want)
		}
	}
	if daemon.Dropped() != 0 && countEvents(t, daemon) == 0 {
		t.Errorf("daemon wrote nothing")
	}
	if got := countEvents(t, daemon); uint64(got) != daemon.Recorded() {
		t.Errorf("events in table = %d, daemon Recorded() = %d", got, daemon.Recorded())
	}
}
