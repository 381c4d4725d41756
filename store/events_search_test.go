package store

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
)

// TestEventsText: Query.Text finds its text, case-insensitive for ASCII,
// in exactly the fields the API documents for ?q=: helo, mail_from, any
// recipient, detail and reply; not in the relay's name or the TLS mode.
func TestEventsText(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), Options{PruneInterval: -1})
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cli := netip.MustParseAddr("10.20.0.50")
	evs := []event.Event{
		{Kind: event.Blocked, Helo: "HeloOnly-Desktop", Rcpt: []string{"a@x.example"}},
		{Kind: event.Blocked, MailFrom: "SenderOnly@spam.example"},
		{Kind: event.Blocked, Rcpt: []string{"first@x.example", "RcptOnly@victim.example"}},
		{Kind: event.UpstreamError, Detail: "dial tcp: DetailOnly refused"},
		{Kind: event.Relayed, Relay: "relayonly-name", TLS: "passthrough", Reply: "250 2.0.0 Ok: queued as ReplyOnly42"},
	}
	for i, e := range evs {
		e.Time, e.Client = base.Add(time.Duration(i)*time.Second), cli
		s.Record(e)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want []string // kinds and one field, to name the events found
	}{
		{"helоonly", nil}, // Cyrillic о: no match
		{"heloonly-desktop", []string{"helo HeloOnly-Desktop"}},
		{"senderonly@", []string{"mail_from SenderOnly@spam.example"}},
		{"rcptonly@victim", []string{"rcpt RcptOnly@victim.example"}},
		{"detailonly", []string{"detail dial tcp: DetailOnly refused"}},
		{"queued as replyonly42", []string{"reply 250 2.0.0 Ok: queued as ReplyOnly42"}},
		{"relayonly", nil},
		{"passthrough", nil},
		{"x.example", []string{"rcpt RcptOnly@victim.example", "helo HeloOnly-Desktop"}},
	} {
		got, err := s.Events(ctx, Query{Text: tc.text})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range got {
			switch {
			case e.Helo != "":
				names = append(names, "helo "+e.Helo)
			case e.MailFrom != "":
				names = append(names, "mail_from "+e.MailFrom)
			case e.Detail != "":
				names = append(names, "detail "+e.Detail)
			case e.Reply != "":
				names = append(names, "reply "+e.Reply)
			case len(e.Rcpt) > 0:
				names = append(names, "rcpt "+e.Rcpt[len(e.Rcpt)-1])
			}
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("Events(Text %q) = %q, want %q", tc.text, names, tc.want)
		}
	}
}
