package store

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/event"
)

// TestOutcomeSeries: every recorded event and every held-back one (Tally)
// is counted once in the series of its kind and client; only recorded ones
// are stored.
func TestOutcomeSeries(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 10, 0, 30, 0, time.UTC)
	s, err := Open(ctx, t.TempDir(), Options{Now: func() time.Time { return now }, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pc := netip.MustParseAddr("10.20.0.50")
	pc6 := netip.MustParseAddr("::ffff:10.20.0.51") // stored unmapped
	relay := netip.MustParseAddr("10.10.0.25")
	s.Record(event.Event{Kind: event.Blocked, Client: pc})
	s.Record(event.Event{Kind: event.Refused, Client: pc})
	s.Tally(event.Event{Kind: event.Refused, Client: pc})
	s.Record(event.Event{Kind: event.WouldBlock, Client: pc6})
	s.Record(event.Event{Kind: event.Relayed, Client: relay, Relay: "mail-relay", MailFrom: "Boss@Example.org", Messages: 1, Bytes: 100})
	s.Record(event.Event{Kind: event.Relayed, Client: relay, Relay: "mail-relay", TLS: "passthrough", Bytes: 50})
	s.Record(event.Event{Kind: event.Deferred, Client: relay, Relay: "mail-relay"})
	s.Tally(event.Event{Kind: event.Deferred, Client: relay, Relay: "mail-relay"})
	s.Record(event.Event{Kind: event.Alert, Client: relay, Relay: "mail-relay"})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, m := range []string{AttemptsSeries(event.Blocked), AttemptsSeries(event.Refused), AttemptsSeries(event.WouldBlock),
		AttemptsSeries(event.Relayed), AttemptsSeries(event.Deferred), AttemptsSeries(event.Alert), SeriesBlocked, SeriesDeferred,
		SeriesRelayMessages, SeriesSenderMessages, SeriesRelaySenderMessages, SeriesRelayEncrypted, SeriesRelayBytes} {
		pts, err := s.Series(ctx, SeriesQuery{Metric: m})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pts {
			if !p.Minute.Equal(now.Truncate(time.Minute)) {
				t.Errorf("point %+v not in the minute of its event", p)
			}
			got[p.Metric+"/"+p.Key] += p.Value
		}
	}
	want := map[string]int64{
		"attempts_blocked/10.20.0.50":      1,
		"attempts_refused/10.20.0.50":      2,
		"attempts_would_block/10.20.0.51":  1,
		"attempts_relayed/10.10.0.25":      2,
		"attempts_deferred/10.10.0.25":     2,
		"blocked/10.20.0.50":               3,
		"blocked/10.20.0.51":               1,
		"deferred/mail-relay":              2,
		"relay_messages/mail-relay":        1,
		"sender_messages/boss@example.org": 1,
		"relay_sender_messages/" + RelaySenderKey("mail-relay", "boss@example.org"): 1,
		"relay_encrypted_sessions/mail-relay":                                       1,
		"relay_bytes/mail-relay":                                                    150,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	evs, err := s.Events(ctx, Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 {
		t.Errorf("stored events = %d, want 7 (held-back ones are counted, not stored)", len(evs))
	}
	if r, snd := SplitRelaySenderKey(RelaySenderKey("a b", "")); r != "a b" || snd != "<>" {
		t.Errorf("SplitRelaySenderKey = %q, %q", r, snd)
	}
}

// TestOutcomeSeriesMigration: a database from before the outcome series
// gets them from its stored events, so that hosts keep their counts.
func TestOutcomeSeriesMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	pc := netip.MustParseAddr("10.0.0.5")
	for _, e := range []event.Event{
		{Time: at(1), Kind: event.Blocked, Client: pc},
		{Time: at(2), Kind: event.Refused, Client: pc},
		{Time: at(70), Kind: event.Blocked, Client: pc},
		{Time: at(3), Kind: event.Alert, Client: pc},
	} {
		s.Record(e)
	}
	flush(t, s)
	// What an older version left: the events, no outcome series.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM series`); err != nil {
		t.Fatal(err)
	}
	// Undo the quota and locations migrations, which came after the
	// outcome series.
	if _, err := s.db.ExecContext(ctx, `ALTER TABLE events DROP COLUMN rcpt_dropped;
		ALTER TABLE events DROP COLUMN stored_bytes; DROP INDEX hosts_seen_last; DROP TABLE locations`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)-3)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir, Options{})
	hs, err := s.Hosts(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{Addr: pc, Attempts: 3, Blocked: 3, Refused: 1, FirstSeen: at(1), LastSeen: at(70)}}
	if diff := cmp.Diff(want, hs, addrComparer); diff != "" {
		t.Errorf("Hosts after migration (-want +got):\n%s", diff)
	}
	pts, err := s.Series(ctx, SeriesQuery{Metric: SeriesBlocked})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Value+pts[1].Value != 3 {
		t.Errorf("blocked series after migration = %+v, want 3 in two minutes", pts)
	}
}
