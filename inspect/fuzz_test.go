package inspect

import (
	"testing"
)

// FuzzConversation feeds arbitrary client and server bytes, split at
// arbitrary points, and checks the parser's bounds.
func FuzzConversation(f *testing.F) {
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"), []byte("220 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 bye\r\n"), uint16(7))
	f.Add([]byte("EHLO x\r\nSTARTTLS\r\n\x16\x03\x01garbage"), []byte("220 x\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n"), uint16(3))
	f.Add([]byte("BDAT 5\r\nhelloBDAT 0 LAST\r\nAUTH PLAIN AGFAYg==\r\n"), []byte("220 x\r\n250 ok\r\n250 ok\r\n235 ok\r\n"), uint16(1))
	f.Add([]byte("DATA\r\n.\r\n"), []byte(""), uint16(0))
	f.Fuzz(func(t *testing.T, cli, srv []byte, split uint16) {
		c := newConversation(nil)
		k := int(split)
		if k > len(cli) {
			k = len(cli)
		}
		c.Client(cli[:k])
		c.Server(srv)
		if split%5 == 0 {
			c.gapClient()
		}
		c.Client(cli[k:])
		if split%7 == 0 {
			c.gapServer()
		}
		c.Server(srv)
		c.finish()
		if len(c.Rcpt) > maxRcpt || len(c.AuthMechs) > maxAuthMechs || len(c.pending) > maxPending ||
			len(c.early) > maxPending || len(c.hold) > maxHold || len(c.line) > maxLine || len(c.rline) > maxLine {
			t.Fatalf("bounds exceeded: rcpt %d auth %d pending %d early %d hold %d line %d rline %d",
				len(c.Rcpt), len(c.AuthMechs), len(c.pending), len(c.early), len(c.hold), len(c.line), len(c.rline))
		}
		if c.Messages < 0 || c.Accepted > c.Messages+len(srv) {
			t.Fatalf("counts: %d messages, %d accepted", c.Messages, c.Accepted)
		}
	})
}

// FuzzStream checks that reassembly never delivers more bytes than the
// sender sent, whatever the order and overlap of segments.
func FuzzStream(f *testing.F) {
	f.Add([]byte("hello world, this is a stream"), []byte{3, 1, 4, 1, 5, 9, 2, 6})
	f.Fuzz(func(t *testing.T, data, order []byte) {
		if len(data) == 0 || len(order) == 0 {
			return
		}
		var s stream
		s.syn(100)
		var got []byte
		for i, o := range order {
			off := int(o) % len(data)
			n := 1 + (i*7+int(o))%16
			end := min(off+n, len(data))
			s.segment(101+uint32(off), data[off:end], func(p []byte) { got = append(got, p...) }, func() {})
		}
		s.flush(func(p []byte) { got = append(got, p...) }, func() {})
		if len(got) > len(data) {
			t.Fatalf("delivered %d bytes of a %d-byte stream", len(got), len(data))
		}
	})
}
