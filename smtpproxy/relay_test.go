package smtpproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

// testMessage builds a message of about size octets with CRLF line ends
// and no line starting with a dot.
func testMessage(size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
	var b bytes.Buffer
	b.WriteString("From: relay@example.org\r\nTo: someone@example.net\r\nSubject: test\r\n\r\n")
	for b.Len() < size {
		line := make([]byte, 1+r.IntN(200))
		for i := range line {
			line[i] = letters[r.IntN(len(letters))]
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func TestRelay(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		opaque bool
	}{
		{"small message, spliced", 100, false},
		{"3 MB message, spliced", 3 << 20, false},
		{"3 MB message, copied in user space", 3 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0")
			mx.RejectRcpt("nobody@example.net", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"})
			d := &fakeDialer{target: mx.Addr(), opaque: tt.opaque}
			tp := startProxy(t, Options{Dialer: d, Policy: testPolicy(t, "mail-relay", "127.0.0.0/24")})

			c := dialFrom(t, "127.0.0.1", tp.addr)
			msg := testMessage(tt.size)
			steps := []struct{ send, want string }{
				{"", "220 fakemx.test ESMTP Service Ready"},
				{"EHLO relay.example.org", "250 Hello relay.example.org\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nCHUNKING\nSIZE 33554432"},
				{"MAIL FROM:<relay@example.org>", "250 2.0.0 Roger, accepting mail from <relay@example.org>"},
				{"RCPT TO:<nobody@example.net>", "550 5.1.1 No such user here"},
				{"RCPT TO:<someone@example.net>", "250 2.0.0 I'll make sure <someone@example.net> gets this"},
				{"DATA", "354 Go ahead. End your data with <CR><LF>.<CR><LF>"},
				{string(msg) + ".", "250 2.0.0 OK: queued"},
				{"QUIT", "221 2.0.0 Bye"},
			}
			for i, s := range steps {
				var got string
				if i == 0 {
					got = c.reply()
				} else {
					got = c.cmd(s.send)
				}
				if got != s.want {
					t.Fatalf("step %d: reply = %q, want %q", i, got, s.want)
				}
			}
			// The server's close reaches the client through the proxy.
			rest, err := io.ReadAll(c.conn)
			if err != nil || len(rest) != 0 {
				t.Errorf("after QUIT: read %q, %v; want EOF", rest, err)
			}
			c.conn.Close() // as an MTA does; the proxy waits for it (half-close)

			msgs, err := mx.WaitFor(1, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(msgs[0].Data, msg) {
				t.Errorf("message data differs: got %d bytes, want %d", len(msgs[0].Data), len(msg))
			}
			if diff := cmp.Diff([]string{"someone@example.net"}, msgs[0].To); diff != "" {
				t.Errorf("recipients (-want +got):\n%s", diff)
			}

			wantCalls := []dialCall{{Src: netip.MustParseAddr("127.0.0.1"), Dst: tp.addr}}
			if diff := cmp.Diff(wantCalls, d.dialed(), eventOpts); diff != "" {
				t.Errorf("dialer calls (-want +got):\n%s", diff)
			}

			evs := tp.rec.wait(t, 1)
			want := []event.Event{{
				Kind:       event.Relayed,
				Client:     netip.MustParseAddr("127.0.0.1"),
				Server:     tp.addr.Addr(),
				ServerPort: tp.addr.Port(),
				Relay:      "mail-relay",
				Helo:       "relay.example.org",
				MailFrom:   "relay@example.org",
				Rcpt:       []string{"someone@example.net"},
				Code:       250,
				Messages:   1,
				Size:       int64(len(msg)),
				Bytes:      int64(len(msg)),
				Reply:      "250 2.0.0 OK: queued",
				Detail:     "recipients: 1",
			}}
			if diff := cmp.Diff(want, evs, eventOpts); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if got := metricValue(t, tp.metrics.bytes.WithLabelValues(dirClientToServer)); got != float64(len(msg)) {
				t.Errorf("bytes_total{client_to_server} = %v, want %d", got, len(msg))
			}
			if got := metricValue(t, tp.metrics.conns.WithLabelValues(classRelay)); got != 1 {
				t.Errorf("connections_total{class=relay} = %v, want 1", got)
			}
		})
	}
}

func TestRelayDialFailure(t *testing.T) {
	tests := []struct {
		name       string
		dialer     *fakeDialer
		wantDetail string
	}{
		{
			name:       "refused",
			dialer:     &fakeDialer{err: errors.New("connect: connection refused")},
			wantDetail: "connect: connection refused",
		},
		{
			name:       "connect timeout",
			dialer:     &fakeDialer{block: true},
			wantDetail: "context deadline exceeded",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := testLimits()
			lim.ConnectTimeout = 200 * time.Millisecond
			tp := startProxy(t, Options{Dialer: tt.dialer, Limits: lim, Policy: testPolicy(t, "mail-relay", "127.0.0.1")})
			start := time.Now()
			c := dialFrom(t, "127.0.0.1", tp.addr)
			want := fmt.Sprintf("421 4.4.1 Cannot connect to %s, try again later", tp.addr)
			if got := c.reply(); got != want {
				t.Errorf("reply = %q, want %q", got, want)
			}
			if got := c.reply(); got != "EOF" {
				t.Errorf("after the 421: %q, want EOF", got)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered after %s, want within the connect timeout", d)
			}
			evs := tp.rec.wait(t, 1)
			wantEv := []event.Event{{
				Kind:       event.UpstreamError,
				Client:     netip.MustParseAddr("127.0.0.1"),
				Server:     tp.addr.Addr(),
				ServerPort: tp.addr.Port(),
				Relay:      "mail-relay",
				Rcpt:       []string{},
				Code:       421,
				Detail:     fmt.Sprintf("connect to %s from 127.0.0.1: %s", tp.addr, tt.wantDetail),
			}}
			if diff := cmp.Diff(wantEv, evs, eventOpts); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if got := metricValue(t, tp.metrics.upstreamErrors); got != 1 {
				t.Errorf("upstream_errors_total = %v, want 1", got)
			}
		})
	}
}

func TestRelayIdleTimeout(t *testing.T) {
	const idle = 500 * time.Millisecond
	tests := []struct {
		name     string
		opaque   bool
		trickle  time.Duration // send one line this often during DATA, for 3 idle periods
		wantIdle bool
	}{
		{name: "silent session is cut, spliced", wantIdle: true},
		{name: "silent session is cut, user space", opaque: true, wantIdle: true},
		{name: "slow transfer that keeps moving is not cut, spliced", trickle: idle / 5},
		{name: "slow transfer that keeps moving is not cut, user space", opaque: true, trickle: idle / 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0")
			lim := testLimits()
			lim.IdleTimeout = idle
			tp := startProxy(t, Options{
				Dialer: &fakeDialer{target: mx.Addr(), opaque: tt.opaque},
				Limits: lim,
				Policy: testPolicy(t, "mail-relay", "127.0.0.1"),
			})
			start := time.Now()
			c := dialFrom(t, "127.0.0.1", tp.addr)
			if got := c.reply(); !strings.HasPrefix(got, "220 ") {
				t.Fatalf("greeting = %q", got)
			}
			if tt.trickle == 0 {
				if got := c.reply(); got != "421 4.4.2 Timeout, closing connection" {
					t.Errorf("silent session: %q, want 421 4.4.2", got)
				}
				if got := c.reply(); got != "EOF" {
					t.Errorf("silent session after the 421: %q, want EOF", got)
				}
				if d := time.Since(start); d < idle || d > idle+2*time.Second {
					t.Errorf("silent session cut after %s, want about %s", d, idle)
				}
			} else {
				for _, s := range []struct{ send, want string }{
					{"EHLO relay.example.org", "250 "},
					{"MAIL FROM:<a@example.org>", "250 "},
					{"RCPT TO:<b@example.net>", "250 "},
					{"DATA", "354 "},
				} {
					if got := c.cmd(s.send); !strings.HasPrefix(got, s.want) {
						t.Fatalf("%s: %q, want %q...", s.send, got, s.want)
					}
				}
				for end := time.Now().Add(3 * idle); time.Now().Before(end); {
					time.Sleep(tt.trickle)
					c.send("a slow line\r\n")
				}
				if got := c.cmd("."); !strings.HasPrefix(got, "250 ") {
					t.Fatalf("end of DATA: %q, want 250", got)
				}
				if got := c.cmd("QUIT"); !strings.HasPrefix(got, "221 ") {
					t.Fatalf("QUIT: %q, want 221", got)
				}
				c.conn.Close()
			}
			evs := tp.rec.wait(t, 1)
			if got := strings.HasSuffix(evs[0].Detail, "idle"); evs[0].Kind != event.Relayed || got != tt.wantIdle {
				t.Errorf("event %s %q, want relayed, idle %v", evs[0].Kind, evs[0].Detail, tt.wantIdle)
			}
		})
	}
}

// TestUpstreamRefusalsBounded: a relay retrying its queue against a dead
// MX leaves one upstream_error event per minute and destination, the next
// one saying how many attempts failed in between; the metric counts all.
func TestUpstreamRefusalsBounded(t *testing.T) {
	clock := newFakeClock()
	tp := startProxy(t, Options{Dialer: &fakeDialer{err: errors.New("connect: connection refused")}, Now: clock.Now,
		Policy: testPolicy(t, "mail-relay", "127.0.0.1")})
	attempt := func() {
		t.Helper()
		c := dialFrom(t, "127.0.0.1", tp.addr)
		if got := c.reply(); !strings.HasPrefix(got, "421 4.4.1 Cannot connect") {
			t.Fatalf("reply = %q, want 421 4.4.1", got)
		}
		if got := c.reply(); got != "EOF" { // closed after the event is recorded
			t.Fatalf("after the 421: %q, want EOF", got)
		}
	}
	for range 4 {
		attempt()
	}
	if got := metricValue(t, tp.metrics.upstreamErrors); got != 4 {
		t.Errorf("upstream_errors_total = %v, want 4", got)
	}
	if evs := tp.rec.all(); len(evs) != 1 {
		t.Fatalf("events after 4 failed connections: %+v, want one upstream_error", evs)
	}
	clock.Add(2 * time.Minute)
	attempt()
	evs := tp.rec.wait(t, 2)
	if want := "; 3 more sessions to this destination failed the same way since "; !strings.Contains(evs[1].Detail, want) {
		t.Errorf("second event's detail %q lacks %q", evs[1].Detail, want)
	}
}
