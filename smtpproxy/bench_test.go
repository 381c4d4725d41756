package smtpproxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

// BenchmarkMessage sends one message (1000 octets or 1 MiB) per iteration
// over one session, directly to fakemx and through the proxy: the difference is
// the proxy's added latency per message (the lab's docs/benchmarks.md measures
// it against Postfix).
func BenchmarkMessage(b *testing.B) {
	for _, size := range []int{1000, 1 << 20} {
		for _, via := range []string{"direct", "proxy"} {
			b.Run(fmt.Sprintf("size=%d/%s", size, via), func(b *testing.B) { benchMessage(b, via, size) })
		}
	}
}

func benchMessage(b *testing.B, via string, size int) {
	mx := fakemx.Start(b, "127.0.0.1:0", fakemx.Options{Deliver: func(fakemx.Message) error { return nil }})
	target := mx.Addr()
	if via == "proxy" {
		target = relayProxy(b, mx.Addr(), Options{}).addr
	}
	c := dialFrom(b, "127.0.0.1", target)
	c.conn.SetDeadline(time.Time{})
	c.reply()
	c.cmd("EHLO bench.example")
	line := strings.Repeat("x", 78) + "\r\n"
	body := "Subject: bench\r\n\r\n" + strings.Repeat(line, max(1, size/len(line)))
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for range b.N {
		got := c.sendMail("a@example.org", []string{"b@example.net"}, body)
		if got[len(got)-1] != "250 2.0.0 OK: queued" {
			b.Fatalf("replies %q", got)
		}
	}
}
