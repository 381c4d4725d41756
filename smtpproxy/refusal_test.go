package smtpproxy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

// step is one exchange of a raw dialogue: send (a command line without
// CRLF; rawSend is sent as it is; neither: only read), then want the reply ("code text", lines
// joined with "\n"). wantPrefix compares only the start of the reply.
type step struct {
	send       string
	rawSend    string
	want       string
	wantPrefix bool
	hangUp     bool // close the connection instead
}

var (
	rcptRefused = "554 5.7.1 " + testReject
	greeting    = "220 " + testHostname + " ESMTP Service Ready"
)

func TestRefusalDialogue(t *testing.T) {
	long := strings.Repeat("x", 10*1024)
	tests := []struct {
		name      string
		maxRcpt   int
		steps     []step
		wantHelo  string
		wantFrom  string
		wantRcpt  []string
		wantDrop  int  // RcptDropped
		wantClose bool // the proxy closes after the last step
	}{
		{
			name: "full dialogue",
			steps: []step{
				{send: "EHLO bot.example", want: "250 Hello bot.example\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nCHUNKING\nSIZE"},
				{send: "MAIL FROM:<spam@bot.example>", want: "250 2.0.0 Roger, accepting mail from <spam@bot.example>"},
				{send: "RCPT TO:<a@example.com>", want: rcptRefused},
				{send: "RCPT TO:<b@example.org>", want: rcptRefused},
				{send: "DATA", want: rcptRefused},
				{send: "QUIT", want: "221 2.0.0 Bye"},
			},
			wantHelo: "bot.example", wantFrom: "spam@bot.example", wantRcpt: []string{"a@example.com", "b@example.org"},
			wantClose: true,
		},
		{
			name: "HELO, two transactions keep the first MAIL FROM and every RCPT",
			steps: []step{
				{send: "HELO pc1", want: "250 2.0.0 Hello pc1"},
				{send: "MAIL FROM:<first@pc1.example>", want: "250", wantPrefix: true},
				{send: "RCPT TO:<a@example.com>", want: rcptRefused},
				{send: "RSET", want: "250 2.0.0 Session reset"},
				{send: "MAIL FROM:<second@pc1.example>", want: "250", wantPrefix: true},
				{send: "RCPT TO:<c@example.com>", want: rcptRefused},
				{send: "BDAT 5 LAST", want: rcptRefused, rawSend: "BDAT 5 LAST\r\nhello"},
				{send: "QUIT", want: "221 2.0.0 Bye"},
			},
			wantHelo: "pc1", wantFrom: "first@pc1.example", wantRcpt: []string{"a@example.com", "c@example.com"},
			wantClose: true,
		},
		{
			name: "no MAIL at all",
			steps: []step{
				{send: "EHLO quiet.example", want: "250", wantPrefix: true},
				{send: "NOOP", want: "250", wantPrefix: true},
				{send: "QUIT", want: "221 2.0.0 Bye"},
			},
			wantHelo: "quiet.example", wantRcpt: []string{}, wantClose: true,
		},
		{
			name: "no AUTH, no STARTTLS",
			steps: []step{
				{send: "EHLO bot.example", want: "250", wantPrefix: true},
				{send: "STARTTLS", want: "502", wantPrefix: true},
				{send: "AUTH PLAIN AGJvdABzZWNyZXQ=", want: "5", wantPrefix: true},
				{send: "EHLO bot.example", want: "250", wantPrefix: true},
			},
			wantHelo: "bot.example", wantRcpt: []string{},
		},
		{
			name:    "recipients recorded up to the bound, all refused",
			maxRcpt: 2,
			steps: []step{
				{send: "EHLO bulk.example", want: "250", wantPrefix: true},
				{send: "MAIL FROM:<>", want: "250", wantPrefix: true},
				{send: "RCPT TO:<r1@example.com>", want: rcptRefused},
				{send: "RCPT TO:<r2@example.com>", want: rcptRefused},
				{send: "RCPT TO:<r3@example.com>", want: rcptRefused},
				{send: "RCPT TO:<r4@example.com>", want: rcptRefused},
				{send: "DATA", want: rcptRefused},
			},
			wantHelo: "bulk.example", wantFrom: "", wantRcpt: []string{"r1@example.com", "r2@example.com"}, wantDrop: 2,
		},
		{
			name: "envelope fields clipped as they arrive",
			steps: []step{
				{send: "EHLO " + strings.Repeat("h", 1900), want: "250", wantPrefix: true},
				{send: "MAIL FROM:<" + strings.Repeat("f", 1900) + "@x.example>", want: "250", wantPrefix: true},
				{send: "RCPT TO:<" + strings.Repeat("r", 1900) + "@x.example>", want: rcptRefused},
			},
			wantHelo: strings.Repeat("h", event.MaxHelo), wantFrom: strings.Repeat("f", event.MaxPath),
			wantRcpt: []string{strings.Repeat("r", event.MaxPath)},
		},
		{
			name: "early disconnect still records",
			steps: []step{
				{send: "EHLO early.example", want: "250", wantPrefix: true},
				{send: "MAIL FROM:<x@early.example>", want: "250", wantPrefix: true},
				{send: "RCPT TO:<victim@example.com>", want: rcptRefused},
				{hangUp: true},
			},
			wantHelo: "early.example", wantFrom: "x@early.example", wantRcpt: []string{"victim@example.com"},
		},
		{
			name:     "disconnect before HELO still records",
			steps:    []step{{hangUp: true}},
			wantRcpt: []string{},
		},
		{
			name: "garbage gets an error reply, the next command works",
			steps: []step{
				{rawSend: "\x00\x01\xfe\xff garbage\r\n", want: "5", wantPrefix: true},
				{rawSend: "GET / HTTP/1.1\r\n", want: "5", wantPrefix: true},
				{send: "EHLO after.garbage", want: "250", wantPrefix: true},
				{send: "MAIL FROM:<a@b>", want: "250", wantPrefix: true},
				{send: "RCPT TO:<not an address", want: "501", wantPrefix: true},
				{send: "RCPT TO:<c@d>", want: rcptRefused},
			},
			wantHelo: "after.garbage", wantFrom: "a@b", wantRcpt: []string{"c@d"},
		},
		{
			name: "a 10 KB line gets 500 and a clean close",
			steps: []step{
				{send: "EHLO long.example", want: "250", wantPrefix: true},
				{send: "MAIL FROM:<" + long + "@example.com>", want: "500 5.4.0 Too long line, closing connection"},
			},
			wantHelo: "long.example", wantRcpt: []string{}, wantClose: true,
		},
		{
			name: "too many errors close the connection",
			steps: []step{
				{send: "XXXX", want: "500", wantPrefix: true},
				{send: "XXXX", want: "500", wantPrefix: true},
				{send: "XXXX", want: "500", wantPrefix: true},
				{send: "XXXX", want: "500 5.5.2 Syntax errors, XXXX command unrecognized"},
				{want: "500 5.5.1 Too many errors. Quiting now"}, // a second reply to the same line
			},
			wantRcpt: []string{}, wantClose: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := testLimits()
			if tt.maxRcpt > 0 {
				lim.MaxRecipients = tt.maxRcpt
			}
			tp := startProxy(t, Options{Limits: lim})
			c := dialFrom(t, "", tp.addr)
			if got := c.reply(); got != greeting {
				t.Fatalf("greeting = %q, want %q", got, greeting)
			}
			for i, s := range tt.steps {
				if s.hangUp {
					c.conn.Close()
					break
				}
				switch {
				case s.rawSend != "":
					c.send(s.rawSend)
				case s.send != "":
					c.send(s.send + "\r\n")
				}
				got := c.reply()
				if s.wantPrefix && !strings.HasPrefix(got, s.want) || !s.wantPrefix && got != s.want {
					t.Fatalf("step %d %q: reply = %q, want %q (prefix %v)", i, s.send, got, s.want, s.wantPrefix)
				}
			}
			if tt.wantClose {
				if got := c.reply(); got != "EOF" {
					t.Errorf("after the last step: %q, want EOF", got)
				}
			}
			c.conn.Close()

			// Every MAIL FROM the bot got through counts as an attempted message.
			wantMsgs := 0
			for _, s := range tt.steps {
				if strings.HasPrefix(strings.ToUpper(s.send), "MAIL FROM") && strings.HasPrefix(s.want, "250") {
					wantMsgs++
				}
			}
			evs := tp.rec.wait(t, 1)
			want := []event.Event{{
				Messages:    wantMsgs,
				Kind:        event.Blocked,
				Client:      netip.MustParseAddr("127.0.0.1"),
				Server:      tp.addr.Addr(),
				ServerPort:  tp.addr.Port(),
				Helo:        tt.wantHelo,
				MailFrom:    tt.wantFrom,
				Rcpt:        tt.wantRcpt,
				RcptDropped: tt.wantDrop,
				Code:        554,
				Detail:      testReject,
			}}
			if diff := cmp.Diff(want, evs, eventOpts); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if time.Since(evs[0].Time) > time.Minute || evs[0].Time.Location() != time.UTC {
				t.Errorf("event time = %v, want recent, UTC", evs[0].Time)
			}
			// One event per session, no more.
			time.Sleep(20 * time.Millisecond)
			if n := len(tp.rec.all()); n != 1 {
				t.Errorf("%d events, want 1", n)
			}
			if got := metricValue(t, tp.metrics.conns.WithLabelValues(classBlocked)); got != 1 {
				t.Errorf("connections_total{class=blocked} = %v, want 1", got)
			}
			tp.stop(t)
			if got := metricValue(t, tp.metrics.active.WithLabelValues(classBlocked)); got != 0 {
				t.Errorf("active_connections{class=blocked} = %v after the session, want 0", got)
			}
		})
	}
}

func TestRefusalTimeouts(t *testing.T) {
	tests := []struct {
		name        string
		idle, total time.Duration
		keepBusy    bool // send NOOP every 50ms
		want        string
		maxDuration time.Duration
	}{
		{name: "silent client cut by the idle timeout", idle: 200 * time.Millisecond, total: 10 * time.Second, want: "421 4.4.2 Idle timeout, bye bye", maxDuration: 2 * time.Second},
		{name: "busy client cut by the refusal timeout", idle: 5 * time.Second, total: 500 * time.Millisecond, keepBusy: true, want: "421 4.4.2 Idle timeout, bye bye", maxDuration: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := testLimits()
			lim.IdleTimeout, lim.RefusalTimeout = tt.idle, tt.total
			tp := startProxy(t, Options{Limits: lim})
			start := time.Now()
			c := dialFrom(t, "", tp.addr)
			if got := c.reply(); got != greeting {
				t.Fatalf("greeting = %q", got)
			}
			if got := c.cmd("EHLO slow.example"); !strings.HasPrefix(got, "250") {
				t.Fatalf("EHLO: %q", got)
			}
			var got string
			for {
				if tt.keepBusy {
					time.Sleep(50 * time.Millisecond)
					c.conn.Write([]byte("NOOP\r\n")) // may fail once the proxy closed
				}
				got = c.reply()
				if !strings.HasPrefix(got, "250") {
					break
				}
			}
			if got != tt.want {
				t.Errorf("reply = %q, want %q", got, tt.want)
			}
			if got := c.reply(); got != "EOF" {
				t.Errorf("after the timeout: %q, want EOF", got)
			}
			if d := time.Since(start); d > tt.maxDuration {
				t.Errorf("cut after %s, want at most %s", d, tt.maxDuration)
			}
			evs := tp.rec.wait(t, 1)
			if evs[0].Kind != event.Blocked || evs[0].Helo != "slow.example" {
				t.Errorf("event = %+v, want blocked with helo slow.example", evs[0])
			}
		})
	}
}

// A dual-stack listener, as in production, sees IPv4 peers as
// ::ffff:a.b.c.d; events and the dialer must get plain IPv4.
func TestDualStackAddressesUnmapped(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	d := &fakeDialer{target: mx.Addr()}
	tp := startProxyOn(t, "[::]:0", Options{Dialer: d, Policy: testPolicy(t, "mail-relay", "127.0.0.2")})
	lo := netip.MustParseAddr("127.0.0.1")

	c := dialFrom(t, "127.0.0.1", tp.addr)
	if got := c.reply(); got != greeting {
		t.Fatalf("non-relay greeting %q", got)
	}
	c.cmd("QUIT")
	evs := tp.rec.wait(t, 1)
	if evs[0].Client != lo || evs[0].Server != lo {
		t.Errorf("blocked event client %s server %s, want %s %s", evs[0].Client, evs[0].Server, lo, lo)
	}

	r := dialFrom(t, "127.0.0.2", tp.addr)
	if got := r.reply(); !strings.HasPrefix(got, "220 fakemx.test") {
		t.Fatalf("relay greeting %q", got)
	}
	want := []dialCall{{Src: netip.MustParseAddr("127.0.0.2"), Dst: tp.addr}}
	if diff := cmp.Diff(want, d.dialed(), eventOpts); diff != "" {
		t.Errorf("dialer calls (-want +got):\n%s", diff)
	}
}
