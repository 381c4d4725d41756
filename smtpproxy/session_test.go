package smtpproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

const mxEHLO = "250 Hello relay.example.org\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nCHUNKING\nSIZE 33554432"

func TestRemoteRepliesPassThrough(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*fakemx.Server)
		opts   fakemx.Options
		want   []string // replies to MAIL, RCPTs, DATA, end of DATA
		rcpts  []string
		evKind event.Kind
	}{
		{
			name: "RCPT 550 for one, the other passes",
			setup: func(m *fakemx.Server) {
				m.RejectRcpt("nobody@example.net", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"})
			},
			rcpts: []string{"nobody@example.net", "b@example.net"},
			want: []string{"250 2.0.0 Roger, accepting mail from <a@example.org>", "550 5.1.1 No such user",
				"250 2.0.0 I'll make sure <b@example.net> gets this", "354 Go ahead. End your data with <CR><LF>.<CR><LF>", "250 2.0.0 OK: queued"},
			evKind: event.Relayed,
		},
		{
			name: "DATA 451 is passed and nothing is recorded as relayed",
			setup: func(m *fakemx.Server) {
				m.FailData(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try later, disk full"})
			},
			rcpts: []string{"b@example.net"},
			want: []string{"250 2.0.0 Roger, accepting mail from <a@example.org>", "250 2.0.0 I'll make sure <b@example.net> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>", "451 4.3.0 Try later, disk full"},
		},
		{
			name: "MAIL 553",
			setup: func(m *fakemx.Server) {
				m.FailMail(&smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender refused"})
			},
			rcpts: []string{"b@example.net"},
			want:  []string{"553 5.7.1 Sender refused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0", tt.opts)
			tt.setup(mx)
			tp := relayProxy(t, mx.Addr(), Options{})
			c := dialFrom(t, "127.0.0.1", tp.addr)
			c.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"}, [2]string{"EHLO relay.example.org", mxEHLO})
			got := c.sendMail("a@example.org", tt.rcpts, "Subject: x\r\n\r\nhi\r\n")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("replies (-want +got):\n%s", diff)
			}
			c.cmd("QUIT")
			c.conn.Close()
			evs := tp.rec.wait(t, 1)
			if tt.evKind == event.Relayed && (evs[0].Messages != 1 || evs[0].Reply != "250 2.0.0 OK: queued") {
				t.Errorf("event = %+v, want relayed with 1 message", evs[0])
			}
			if tt.evKind == "" && evs[0].Messages != 0 {
				t.Errorf("event = %+v, want no accepted message", evs[0])
			}
		})
	}
}

func TestGreetingPassThrough(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0", fakemx.Options{Greeting: "554 5.3.2 No SMTP service here"})
	tp := relayProxy(t, mx.Addr(), Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps([2]string{"", "554 5.3.2 No SMTP service here"}, [2]string{"", "EOF"})
	evs := tp.rec.wait(t, 1)
	want := []event.Event{{Kind: event.UpstreamError, Client: netip.MustParseAddr("127.0.0.1"), Server: tp.addr.Addr(), ServerPort: tp.addr.Port(),
		Relay: "mail-relay", Rcpt: nil, Code: 554, Reply: "554 5.3.2 No SMTP service here",
		Detail: fmt.Sprintf("%s refused the session: 554 5.3.2 No SMTP service here", tp.addr)}}
	want[0].Normalize()
	if diff := cmp.Diff(want, evs, eventOpts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestEHLOFiltering(t *testing.T) {
	mx := startRawMX(t, &rawMX{ehlo: []string{"PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "AUTH PLAIN LOGIN", "XCLIENT NAME ADDR",
		"ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING", "BINARYMIME", "REQUIRETLS", "STARTTLS"}})
	tp := relayProxy(t, mx.addr, Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps(
		[2]string{"", "220 rawmx.test ESMTP"},
		[2]string{"EHLO relay.example.org", "250 rawmx.test\nPIPELINING\nSIZE 10240000\nENHANCEDSTATUSCODES\n8BITMIME\nDSN\nSMTPUTF8\nCHUNKING\nSTARTTLS"},
		[2]string{"AUTH PLAIN AGFAYg==", "502 5.5.1 Command not implemented"},
		[2]string{"XCLIENT ADDR=1.2.3.4", "502 5.5.1 Command not implemented"},
		[2]string{"HELO relay.example.org", "250 2.0.0 Ok"},
		[2]string{"QUIT", "221 2.0.0 Bye"},
	)
	for _, cmd := range mx.commands() {
		if strings.HasPrefix(cmd, "AUTH") || strings.HasPrefix(cmd, "XCLIENT") {
			t.Errorf("remote saw %q, want it answered by the proxy", cmd)
		}
	}
	// Without STARTTLS at the remote, the proxy does not offer it.
	mx2 := startRawMX(t, &rawMX{ehlo: []string{"PIPELINING", "8BITMIME"}})
	tp2 := relayProxy(t, mx2.addr, Options{})
	c2 := dialFrom(t, "127.0.0.1", tp2.addr)
	c2.steps([2]string{"", "220 rawmx.test ESMTP"}, [2]string{"EHLO r", "250 rawmx.test\nPIPELINING\n8BITMIME"})
}

func TestPipelining(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	mx.RejectRcpt("x@example.net", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No"})
	tp := relayProxy(t, mx.Addr(), Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"}, [2]string{"EHLO relay.example.org", mxEHLO})
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.net>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n")
	var got []string
	for range 5 {
		got = append(got, c.reply())
	}
	want := []string{
		"250 2.0.0 Roger, accepting mail from <a@example.org>", "550 5.1.1 No",
		"250 2.0.0 I'll make sure <b@example.net> gets this", "250 2.0.0 I'll make sure <c@example.net> gets this",
		"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pipelined replies (-want +got):\n%s", diff)
	}
	// The end of DATA pipelined with the next transaction.
	c.send("Subject: 1\r\n\r\none\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
	got = nil
	for range 4 {
		got = append(got, c.reply())
	}
	want = []string{"250 2.0.0 OK: queued", "250 2.0.0 Roger, accepting mail from <a@example.org>",
		"250 2.0.0 I'll make sure <b@example.net> gets this", "354 Go ahead. End your data with <CR><LF>.<CR><LF>"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("second group (-want +got):\n%s", diff)
	}
	c.steps([2]string{"Subject: 2\r\n\r\ntwo\r\n.", "250 2.0.0 OK: queued"}, [2]string{"QUIT", "221 2.0.0 Bye"})
	msgs, err := mx.WaitFor(2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b@example.net", "c@example.net"}, msgs[0].To); diff != "" {
		t.Errorf("first message recipients (-want +got):\n%s", diff)
	}
}

// TestBodyAlreadyBuffered: a client that sends its message in the same
// write as DATA (not waiting for the 354) has the body, the end mark and
// the next command buffered before the DATA stream starts; none of it may
// be lost when the stream switches to its larger buffer.
func TestBodyAlreadyBuffered(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	tp := relayProxy(t, mx.Addr(), Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"}, [2]string{"EHLO relay.example.org", mxEHLO})
	body := "Subject: eager\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 2000)
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" + body + ".\r\nQUIT\r\n")
	var got []string
	for range 5 {
		got = append(got, c.reply())
	}
	want := []string{"250 2.0.0 Roger, accepting mail from <a@example.org>", "250 2.0.0 I'll make sure <b@example.net> gets this",
		"354 Go ahead. End your data with <CR><LF>.<CR><LF>", "250 2.0.0 OK: queued", "221 2.0.0 Bye"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("replies (-want +got):\n%s", diff)
	}
	msgs, err := mx.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(msgs[0].Data) != body {
		t.Errorf("body changed: got %d octets, want %d", len(msgs[0].Data), len(body))
	}
}

// corpus are messages whose bytes must arrive unchanged. fakemx keeps the
// unstuffed message; the client sends it dot-stuffed.
var corpus = map[string]string{
	"dots":          "Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n...three\r\n. space\r\nend\r\n",
	"998 octets":    "Subject: long\r\n\r\n" + strings.Repeat("x", 998) + "\r\n" + strings.Repeat(".", 998) + "\r\n",
	"8-bit":         "Subject: caf\xe9 latin-1\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nna\xefve \xff\xfe\r\n",
	"UTF-8 headers": "From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nSubject: Grüße aus Köln ✉\r\nTo: Ünïcödé <ü@exämple.org>\r\n\r\nText ✓\r\n",
	"base64 attachment": "Subject: att\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n", 200) + "--b--\r\n",
	"empty body":                       "Subject: empty\r\n\r\n",
	"no final CRLF after headers only": "Subject: only\r\n",
}

func dotStuff(s string) string {
	lines := strings.SplitAfter(s, "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "")
}

func TestCorpusByteExact(t *testing.T) {
	for name, msg := range corpus {
		t.Run(name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0", fakemx.Options{SMTPUTF8: true})
			tp := relayProxy(t, mx.Addr(), Options{})
			c := dialFrom(t, "127.0.0.1", tp.addr)
			c.reply()
			c.cmd("EHLO relay.example.org")
			got := c.sendMail("a@example.org", []string{"b@example.net"}, dotStuff(msg))
			if got[len(got)-1] != "250 2.0.0 OK: queued" {
				t.Fatalf("replies %q", got)
			}
			msgs, err := mx.WaitFor(1, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(msgs[0].Data, []byte(msg)) {
				t.Errorf("data = %q, want %q", msgs[0].Data, msg)
			}
			// The raw, stuffed bytes reached the remote: Size counts them.
			evs := tp.rec.wait(t, 1)
			if want := int64(len(dotStuff(msg))); evs[0].Size != want {
				t.Errorf("event Size = %d, want %d (stuffed octets)", evs[0].Size, want)
			}
		})
	}
}

// TestRawBytesExact checks the stream at the remote, stuffing and bare
// LFs included, with a raw remote that counts octets.
func TestRawBytesExact(t *testing.T) {
	mx := startRawMX(t, &rawMX{})
	tp := relayProxy(t, mx.addr, Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	body := "Subject: x\r\n\r\nbare\nLF\n..stuffed\r\nCR\ronly\r\n"
	got := c.sendMail("a@example.org", []string{"b@example.net"}, body)
	if got[len(got)-1] != "250 2.0.0 Ok: queued as RAW" {
		t.Fatalf("replies %q", got)
	}
	mx.mu.Lock()
	n := mx.dataBytes
	mx.mu.Unlock()
	if want := int64(len(body) + len(".\r\n")); n != want {
		t.Errorf("remote got %d octets, want %d", n, want)
	}
}

func TestBDAT(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	tp := relayProxy(t, mx.Addr(), Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"}, [2]string{"EHLO r", "250 Hello r\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nCHUNKING\nSIZE 33554432"},
		[2]string{"MAIL FROM:<a@example.org>", "250 2.0.0 Roger, accepting mail from <a@example.org>"},
		[2]string{"RCPT TO:<b@example.net>", "250 2.0.0 I'll make sure <b@example.net> gets this"})
	part1, part2 := "Subject: chunked\r\n\r\n.not stuffed\r\n", "second chunk\r\n"
	c.send(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	if got := c.reply(); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("BDAT 1: %q", got)
	}
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	if got := c.reply(); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("BDAT LAST: %q", got)
	}
	msgs, err := mx.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(msgs[0].Data), part1+part2; got != want {
		t.Errorf("data = %q, want %q", got, want)
	}
	evs := tp.rec.wait(t, 1)
	if evs[0].Messages != 1 || evs[0].Size != int64(len(part1+part2)) {
		t.Errorf("event %+v, want 1 message of %d octets", evs[0], len(part1+part2))
	}
}

func TestSmugglingRefused(t *testing.T) {
	for _, end := range []string{"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r.\n", "\r\n\r.\r"} {
		t.Run(fmt.Sprintf("%q", end), func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0")
			tp := relayProxy(t, mx.Addr(), Options{})
			c := dialFrom(t, "127.0.0.1", tp.addr)
			c.reply()
			c.cmd("EHLO r")
			c.cmd("MAIL FROM:<a@example.org>")
			c.cmd("RCPT TO:<b@example.net>")
			c.cmd("DATA")
			c.send("Subject: x\r\n\r\nhi" + end + "MAIL FROM:<spoof@example.com>\r\nRCPT TO:<v@example.net>\r\nDATA\r\nevil\r\n.\r\n")
			if got, want := c.reply(), "554 5.5.2 Message refused: bare <CR> or <LF> in the end-of-data sequence"; got != want {
				t.Errorf("reply %q, want %q", got, want)
			}
			if got := c.reply(); got != "EOF" {
				t.Errorf("then %q, want EOF", got)
			}
			time.Sleep(100 * time.Millisecond)
			if n := len(mx.Messages()); n != 0 {
				t.Errorf("remote accepted %d messages, want 0", n)
			}
		})
	}
}

func TestGarbageAndLongLines(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	tp := relayProxy(t, mx.Addr(), Options{})
	// A good session runs beside the bad one.
	good := dialFrom(t, "127.0.0.1", tp.addr)
	good.reply()
	good.cmd("EHLO good")

	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.steps(
		[2]string{"EHLO " + strings.Repeat("a", 3000), "500 5.5.2 Line too long"},
		[2]string{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "500 5.5.2 Syntax error, command unrecognized"},
		[2]string{"MAIL\x00FROM:<a@b>", "500 5.5.2 Syntax error, command unrecognized"},
	)
	c.send(strings.Repeat("\xff\xfe binary\r\n", 7))
	for range 7 {
		c.reply()
	}
	if got := c.reply(); got != "421 4.7.0 Too many errors, closing connection" {
		t.Errorf("after 10 errors: %q", got)
	}
	if got := c.reply(); got != "EOF" {
		t.Errorf("then %q, want EOF", got)
	}
	got := good.sendMail("a@example.org", []string{"b@example.net"}, "Subject: ok\r\n\r\nok\r\n")
	if got[len(got)-1] != "250 2.0.0 OK: queued" {
		t.Errorf("the good session: %q", got)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	mx := startRawMX(t, &rawMX{hangData: true})
	lim := testLimits()
	lim.CommandTimeout = 300 * time.Millisecond
	lim.DataTimeout = 600 * time.Millisecond
	tp := relayProxy(t, mx.addr, Options{Limits: lim})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	start := time.Now()
	got := c.sendMail("a@example.org", []string{"b@example.net"}, "Subject: x\r\n\r\nx\r\n")
	want := fmt.Sprintf("421 4.4.2 Timeout talking to %s, try again later", tp.addr)
	if got[len(got)-1] != want {
		t.Errorf("end of DATA: %q, want %q", got[len(got)-1], want)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 3*time.Second {
		t.Errorf("answered after %s, want about the data timeout", d)
	}
	evs := tp.rec.wait(t, 1)
	if evs[0].Kind != event.UpstreamError || evs[0].Code != 421 || evs[0].MailFrom != "a@example.org" {
		t.Errorf("event %+v, want upstream_error with the envelope", evs[0])
	}
}

// sink is an endless message: lines of text, then the end mark.
type sink struct {
	left int64
	done bool
	line []byte
}

func (s *sink) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) {
		if s.left <= 0 {
			n += copy(p[n:], ".\r\n")
			if n < len(p) || true {
				s.done = true
			}
			return n, nil
		}
		c := copy(p[n:], s.line)
		if c < len(s.line) {
			break
		}
		n += c
		s.left -= int64(c)
	}
	return n, nil
}

func TestLargeMessageBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB through the proxy")
	}
	size := int64(50 << 20)
	if raceEnabled {
		size = 10 << 20
	}
	mx := startRawMX(t, &rawMX{})
	tp := relayProxy(t, mx.addr, Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c.reply()
	c.cmd("EHLO r")
	c.cmd("MAIL FROM:<a@example.org>")
	c.cmd("RCPT TO:<b@example.net>")
	if got := c.cmd("DATA"); !strings.HasPrefix(got, "354") {
		t.Fatal(got)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	line := []byte(strings.Repeat("0123456789", 10) + "\r\n")
	if _, err := io.CopyBuffer(c.conn, &sink{left: size, line: line}, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	got := c.reply()
	close(stop)
	if got != "250 2.0.0 Ok: queued as RAW" {
		t.Fatalf("end of DATA: %q", got)
	}
	if grew := int64(peak.Load()) - int64(base); grew > 16<<20 {
		t.Errorf("heap grew by %d MB while relaying %d MB, want bounded (< 16 MB)", grew>>20, size>>20)
	}
	evs := tp.rec.wait(t, 1)
	mx.mu.Lock()
	got2 := mx.dataBytes
	mx.mu.Unlock()
	if got2 != evs[0].Size+3 {
		t.Errorf("remote got %d octets, event Size %d + 3", got2, evs[0].Size)
	}
	t.Logf("relayed %d MB, heap grew by at most %d KB", got2>>20, (int64(peak.Load())-int64(base))>>10)
	if evs[0].Size < size {
		t.Errorf("event Size = %d, want >= %d", evs[0].Size, size)
	}
}

// TestRelayedEventFields checks a message's event in full.
func TestRelayedEventFields(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	lim := testLimits()
	lim.MaxRecipients = 2
	tp := relayProxy(t, mx.Addr(), Options{Limits: lim})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO relay.example.org")
	body := "Subject: x\r\n\r\nx\r\n"
	c.sendMail("a@example.org", []string{"b@example.net", "c@example.net", "d@example.com"}, body)
	evs := tp.rec.wait(t, 1)
	want := []event.Event{{
		Kind: event.Relayed, Client: netip.MustParseAddr("127.0.0.1"), Server: tp.addr.Addr(), ServerPort: tp.addr.Port(),
		Relay: "mail-relay", Helo: "relay.example.org", MailFrom: "a@example.org",
		Rcpt: []string{"b@example.net", "c@example.net"}, RcptDropped: 1, Code: 250, Messages: 1,
		Size: int64(len(body)), Bytes: int64(len(body)), Reply: "250 2.0.0 OK: queued", Detail: "recipients: 3",
	}}
	if diff := cmp.Diff(want, evs, eventOpts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestBDATPipelinedAndBad(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	tp := relayProxy(t, mx.Addr(), Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	msg := "Subject: one group\r\n\r\nbody\r\n"
	c.send(fmt.Sprintf("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT %d LAST\r\n%s", len(msg), msg))
	var got []string
	for range 3 {
		got = append(got, c.reply())
	}
	want := []string{"250 2.0.0 Roger, accepting mail from <a@example.org>", "250 2.0.0 I'll make sure <b@example.net> gets this", "250 2.0.0 OK: queued"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pipelined BDAT (-want +got):\n%s", diff)
	}
	msgs, err := mx.WaitFor(1, 5*time.Second)
	if err != nil || string(msgs[0].Data) != msg {
		t.Fatalf("messages %d, %v; want %q", len(msgs), err, msg)
	}
	c.steps([2]string{"BDAT lots", "501 5.5.4 Syntax: BDAT <size> [LAST]"}, [2]string{"", "EOF"})
}

func TestPipelinedDomainLimit(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	tp := relayProxy(t, mx.Addr(), Options{MailLimits: MailLimits{DomainMessagesPerMinute: map[string]int{"slow.example": 1}, RecipientsPerMessage: 3}})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	c.sendMail("a@example.org", []string{"x@slow.example"}, "x\r\n")
	c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<y@slow.example>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nRCPT TO:<d@example.net>\r\nRCPT TO:<e@example.net>\r\nDATA\r\n")
	var got []string
	for range 7 {
		got = append(got, c.reply())
	}
	want := []string{"250 2.0.0 Roger, accepting mail from <a@example.org>",
		"451 4.7.1 Too many messages to slow.example this minute, try again later",
		"250 2.0.0 I'll make sure <b@example.net> gets this", "250 2.0.0 I'll make sure <c@example.net> gets this",
		"250 2.0.0 I'll make sure <d@example.net> gets this", "452 4.5.3 Too many recipients",
		"354 Go ahead. End your data with <CR><LF>.<CR><LF>"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pipelined group (-want +got):\n%s", diff)
	}
	c.steps([2]string{"x\r\n.", "250 2.0.0 OK: queued"})
	msgs, err := mx.WaitFor(2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b@example.net", "c@example.net", "d@example.net"}, msgs[1].To); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
}

// panicDialer returns a connection whose reads panic.
type panicDialer struct{ fakeDialer }

type panicConn struct{ net.Conn }

func (panicConn) Read([]byte) (int, error) { panic("boom in the relay path") }

func (d *panicDialer) Dial(ctx context.Context, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	c, err := d.fakeDialer.Dial(ctx, src, dst)
	if err != nil {
		return nil, err
	}
	return panicConn{c}, nil
}

func TestRelayPanicIsRecovered(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	tp := startProxy(t, Options{Dialer: &panicDialer{fakeDialer{target: mx.Addr()}}, Policy: testPolicy(t, "mail-relay", "127.0.0.1/32")})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	if got := c.reply(); got != "EOF" {
		t.Errorf("after a panic: %q, want EOF", got)
	}
	// The relay path's deferred Close runs before the recovery counts it.
	for deadline := time.Now().Add(2 * time.Second); metricValue(t, tp.metrics.panics) != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := metricValue(t, tp.metrics.panics); got != 1 {
		t.Errorf("panics_total = %v, want 1", got)
	}
	c2 := dialFrom(t, "127.0.0.2", tp.addr) // a refusal session still works
	if got := c2.reply(); got != greeting {
		t.Errorf("next connection: %q, want %q", got, greeting)
	}
}

func TestClientTimeoutInDATA(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	lim := testLimits()
	lim.CommandTimeout = 300 * time.Millisecond
	tp := relayProxy(t, mx.Addr(), Options{Limits: lim})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	c.cmd("MAIL FROM:<a@example.org>")
	c.cmd("RCPT TO:<b@example.net>")
	c.cmd("DATA")
	c.send("Subject: half a message\r\n")
	c.steps([2]string{"", "421 4.4.2 Timeout during DATA, closing connection"}, [2]string{"", "EOF"})
	time.Sleep(100 * time.Millisecond)
	if n := len(mx.Messages()); n != 0 {
		t.Errorf("remote accepted %d messages, want 0", n)
	}
}

func TestSTARTTLSInjectionRefused(t *testing.T) {
	srvCfg, _ := fakemx.SelfSigned(t, "mx.example.net")
	mx := fakemx.Start(t, "127.0.0.1:0", fakemx.Options{TLSConfig: srvCfg})
	tp := relayProxy(t, mx.Addr(), Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	c.send("STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
	c.steps([2]string{"", "421 4.7.0 Data after STARTTLS, closing connection"}, [2]string{"", "EOF"})
}
