package smtpproxy

import (
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

// BenchmarkMessage sends one small message per iteration over one
// session, directly to fakemx and through the proxy: the difference is
// the proxy's added latency per message (the lab's BENCHMARKS.md measures
// it against Postfix).
func BenchmarkMessage(b *testing.B) {
	for _, via := range []string{"direct", "proxy"} {
		b.Run(via, func(b *testing.B) {
			mx := fakemx.Start(b, "127.0.0.1:0", fakemx.Options{Deliver: func(fakemx.Message) error { return nil }})
			target := mx.Addr()
			if via == "proxy" {
				target = relayProxy(b, mx.Addr(), Options{}).addr
			}
			c := dialFrom(b, "127.0.0.1", target)
			c.conn.SetDeadline(time.Time{})
			c.reply()
			c.cmd("EHLO bench.example")
			body := "Subject: bench\r\n\r\n" + strings.Repeat("x", 1000) + "\r\n"
			b.ResetTimer()
			for range b.N {
				got := c.sendMail("a@example.org", []string{"b@example.net"}, body)
				if got[len(got)-1] != "250 2.0.0 OK: queued" {
					b.Fatalf("replies %q", got)
				}
			}
		})
	}
}
