package store

import (
	"context"
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
