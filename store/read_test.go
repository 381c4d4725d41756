package store

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/event"
)

// recordNumbered records n blocked events, three to a second (so that
// order within a second is by ID), with Detail "0" (oldest) to n-1.
func recordNumbered(t *testing.T, n int) *Store {
	t.Helper()
	s := openTest(t, "", Options{EventsPerSourcePerMinute: -1})
	for i := range n {
		s.Record(event.Event{Time: at(i / 3), Kind: event.Blocked, Client: netip.MustParseAddr("10.0.0.5"), Detail: strconv.Itoa(i)})
	}
	flush(t, s)
	return s
}

func newestFirst(from, to int) []string {
	out := []string{}
	for i := from - 1; i >= to; i-- {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func TestEachEvent(t *testing.T) {
	const n = 3*eachChunk + 10
	s := recordNumbered(t, n)
	for _, tt := range []struct {
		name     string
		q        Query
		want     []string
		wantMore bool
	}{
		{"default limit", Query{}, newestFirst(n, n-defLimit), true},
		{"limit across chunks", Query{Limit: 2*eachChunk + 1}, newestFirst(n, n-2*eachChunk-1), true},
		{"limit is every event", Query{Limit: n}, newestFirst(n, 0), false},
		{"limit beyond", Query{Limit: maxLimit}, newestFirst(n, 0), false},
		{"limit one chunk exactly", Query{Limit: eachChunk}, newestFirst(n, n-eachChunk), true},
		{"cursor", Query{Limit: maxLimit, Before: Cursor{Time: at(10), ID: 32}}, newestFirst(31, 0), false},
		{"cursor within a second", Query{Limit: maxLimit, Before: Cursor{Time: at(10), ID: 31}}, newestFirst(30, 0), false},
		{"filter", Query{Limit: maxLimit, Kind: event.Relayed}, []string{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{}
			more, err := s.EachEvent(context.Background(), tt.q, func(e event.Event) error {
				got = append(got, e.Detail)
				return nil
			})
			if err != nil {
				t.Fatalf("EachEvent(%+v) = %v", tt.q, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || more != tt.wantMore {
				t.Errorf("EachEvent(%+v) more = %v, want %v; events (-want +got):\n%s", tt.q, more, tt.wantMore, diff)
			}
		})
	}

	t.Run("error stops", func(t *testing.T) {
		stop := errors.New("client went away")
		calls := 0
		_, err := s.EachEvent(context.Background(), Query{Limit: maxLimit}, func(event.Event) error {
			if calls++; calls == eachChunk+2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != eachChunk+2 {
			t.Errorf("EachEvent = %v after %d calls, want %v after %d", err, calls, stop, eachChunk+2)
		}
	})
}

// TestCursorOutlivesItsEvent: a page's cursor goes on after the event it
// names is deleted (eviction may delete any event), where BeforeID stops.
func TestCursorOutlivesItsEvent(t *testing.T) {
	s := recordNumbered(t, 30)
	ctx := context.Background()
	page, err := s.Events(ctx, Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	last := page[len(page)-1]
	if _, err := s.db.ExecContext(ctx, `DELETE FROM events WHERE id = ?`, last.ID); err != nil {
		t.Fatal(err)
	}
	next, err := s.Events(ctx, Query{Limit: 100, Before: CursorOf(last)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(newestFirst(20, 0), details(next)); diff != "" {
		t.Errorf("page after a deleted anchor (-want +got):\n%s", diff)
	}
	if byID, err := s.Events(ctx, Query{Limit: 100, BeforeID: last.ID}); err != nil || len(byID) != 0 {
		t.Errorf("BeforeID of a deleted event = %d events, %v; want none (why the cursor holds the time)", len(byID), err)
	}
}

func TestParseCursor(t *testing.T) {
	c := Cursor{Time: time.Date(2025, 1, 1, 12, 0, 0, 123, time.UTC), ID: 42}
	if got, err := ParseCursor(c.String()); err != nil || got != c {
		t.Errorf("ParseCursor(%q) = %v, %v; want %v", c.String(), got, err, c)
	}
	for _, bad := range []string{"", "42", "x.42", "1.x", "1.0", "1.-3", "1.2.3", "99999999999999999999.1"} {
		if got, err := ParseCursor(bad); err == nil {
			t.Errorf("ParseCursor(%q) = %v, want an error", bad, got)
		}
	}
}

func TestOffenders(t *testing.T) {
	clock := &fakeClock{t: base.Add(time.Hour)}
	s := openTest(t, "", Options{Now: clock.Now, EventsPerSourcePerMinute: -1})
	pc, other, relay := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("2001:db8::9"), netip.MustParseAddr("10.0.0.25")
	mx := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, i}) }
	for _, e := range []event.Event{
		{Time: at(0), Kind: event.Blocked, Client: pc, MailFrom: "old@x.example", Server: mx(1)}, // before since
		{Time: at(10), Kind: event.Blocked, Client: pc, MailFrom: "a@x.example", Server: mx(1)},
		{Time: at(11), Kind: event.WouldBlock, Client: pc, MailFrom: "b@x.example", Server: mx(2)},
		{Time: at(12), Kind: event.Refused, Client: pc, MailFrom: "c@x.example", Server: mx(1)},
		{Time: at(13), Kind: event.Blocked, Client: pc, MailFrom: "d@x.example", Server: mx(3)},
		{Time: at(14), Kind: event.Blocked, Client: pc, MailFrom: "b@x.example", Server: mx(4)},
		{Time: at(15), Kind: event.Blocked, Client: pc},
		{Time: at(20), Kind: event.WouldBlock, Client: other, MailFrom: "e@x.example"},
		{Time: at(30), Kind: event.Relayed, Client: relay, MailFrom: "f@x.example", Server: mx(9)}, // not a kind asked for
	} {
		s.Record(e)
	}
	flush(t, s)
	kinds := []event.Kind{event.WouldBlock, event.Blocked, event.Refused}
	got, err := s.Offenders(context.Background(), kinds, at(5), 0)
	if err != nil {
		t.Fatalf("Offenders = %v", err)
	}
	want := []Offender{
		{Addr: pc, Attempts: 6, LastSeen: at(15), Senders: []string{"b@x.example", "d@x.example", "c@x.example"},
			Servers: []string{"198.51.100.4", "198.51.100.3", "198.51.100.1"}},
		{Addr: other, Attempts: 1, LastSeen: at(20), Senders: []string{"e@x.example"}, Servers: []string{}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Offenders (-want +got):\n%s", diff)
	}
	if got, err := s.Offenders(context.Background(), kinds, at(5), 1); err != nil || len(got) != 1 || got[0].Addr != pc {
		t.Errorf("Offenders(limit 1) = %+v, %v; want %s only", got, err, pc)
	}
}
