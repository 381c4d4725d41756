package store

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
)

// BenchmarkRecord measures what recording costs the data path (enqueueing)
// and, with Flush, what the writer sustains end to end.
func BenchmarkRecord(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir(), Options{PruneInterval: -1, QueueSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := event.Event{Kind: event.Blocked, Client: netip.MustParseAddr("10.20.0.50"), Server: netip.MustParseAddr("203.0.113.25"),
		ServerPort: 25, Helo: "infected-pc", MailFrom: "winner@lottery.example",
		Rcpt: []string{"victim1@remote.example", "victim2@remote.example"}, Code: 554, Detail: "Direct SMTP from this host is not permitted."}
	b.Run("enqueue+flush", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			e.Time = time.Now()
			s.Record(e)
			if i%4096 == 4095 {
				s.Flush(context.Background())
			}
		}
		s.Flush(context.Background())
		if d := s.Dropped(); d != 0 {
			b.Fatalf("%d events dropped", d)
		}
	})
}
