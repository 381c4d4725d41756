package smtpproxy

import (
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/fakemx"
	"github.com/relaygate/relaygate/policy"
)

const mxGreeting = "220 fakemx.test ESMTP Service Ready"

func TestNew(t *testing.T) {
	ok := Options{Recorder: newFakeRecorder(), Dialer: &fakeDialer{}, Policy: testPolicy(t)}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"complete", func(*Options) {}, ""},
		{"no recorder", func(o *Options) { o.Recorder = nil }, "Options.Recorder is nil"},
		{"no dialer", func(o *Options) { o.Dialer = nil }, "Options.Dialer is nil"},
		{"no policy", func(o *Options) { o.Policy = nil }, "Options.Policy is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			p, err := New(o)
			if tt.wantErr == "" {
				if err != nil || p == nil {
					t.Fatalf("New = %v, %v; want a proxy", p, err)
				}
				if got, want := *p.limits.Load(), LimitsFromConfig(config.Proxy{}); got != want {
					t.Errorf("default limits = %+v, want %+v", got, want)
				}
				if n := len(p.Collectors()); n == 0 {
					t.Errorf("Collectors() is empty")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name        string
		in          config.Proxy
		want        Limits
		wantNonRely int
	}{
		{
			name: "config defaults",
			in:   config.Default().Proxy,
			want: Limits{
				MaxConnsPerSource: config.DefaultMaxConnsPerSource, MaxConns: config.DefaultMaxConns,
				MaxRecipients: config.DefaultMaxRecipients, IdleTimeout: config.DefaultIdleTimeout,
				RefusalTimeout: config.DefaultRefusalTimeout, ConnectTimeout: config.DefaultConnectTimeout,
				CommandTimeout: config.DefaultIdleTimeout, DataTimeout: 2 * config.DefaultIdleTimeout,
			},
			wantNonRely: 3687,
		},
		{
			name: "zero takes defaults",
			in:   config.Proxy{MaxConns: 10},
			want: Limits{
				MaxConnsPerSource: config.DefaultMaxConnsPerSource, MaxConns: 10,
				MaxRecipients: config.DefaultMaxRecipients, IdleTimeout: config.DefaultIdleTimeout,
				RefusalTimeout: config.DefaultRefusalTimeout, ConnectTimeout: config.DefaultConnectTimeout,
				CommandTimeout: config.DefaultIdleTimeout, DataTimeout: 2 * config.DefaultIdleTimeout,
			},
			wantNonRely: 9,
		},
		{
			name: "set",
			in: config.Proxy{MaxConnsPerSource: 2, MaxConns: 1, MaxRecipients: 3,
				IdleTimeout: config.Duration(time.Second), RefusalTimeout: config.Duration(2 * time.Second), ConnectTimeout: config.Duration(3 * time.Second)},
			want: Limits{MaxConnsPerSource: 2, MaxConns: 1, MaxRecipients: 3, IdleTimeout: time.Second, RefusalTimeout: 2 * time.Second, ConnectTimeout: 3 * time.Second,
				CommandTimeout: time.Second, DataTimeout: 2 * time.Second},
			wantNonRely: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LimitsFromConfig(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("LimitsFromConfig (-want +got):\n%s", diff)
			}
			if n := got.NonRelayCap(); n != tt.wantNonRely {
				t.Errorf("NonRelayCap() = %d, want %d", n, tt.wantNonRely)
			}
		})
	}
}

// countKind waits until the recorder holds n events of kind k, then
// makes sure no more arrive for a moment.
func countKind(t *testing.T, rec *fakeRecorder, k event.Kind, n int) {
	t.Helper()
	count := func() int {
		c := 0
		for _, e := range rec.all() {
			if e.Kind == k {
				c++
			}
		}
		return c
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := count(); got != n {
		t.Errorf("%d %s events, want %d", got, k, n)
	}
}

func TestConnectionCaps(t *testing.T) {
	perSource := "421 4.7.0 Too many connections from your address"
	total := "421 4.7.0 Too many connections, try again later"
	type attempt struct{ src, want string }
	tests := []struct {
		name                    string
		maxPerSource, maxConns  int
		attempts                []attempt
		wantRefused, wantDeferr int // events
		wantRefusedMetric       float64
		wantSeries              map[string]int64 // the store's outcome series, "metric/key"
		free                    int              // closing this many of the first connections makes room for attempts[0] again
	}{
		{
			name:         "per source: the third connection from one source gets 421, relays and others still get through",
			maxPerSource: 2, maxConns: 100,
			attempts: []attempt{
				{"127.0.0.1", greeting},
				{"127.0.0.1", greeting},
				{"127.0.0.1", perSource},
				{"127.0.0.1", perSource}, // counted, not recorded again within a minute
				{"127.0.0.3", greeting},
				{"127.0.0.2", mxGreeting},
				{"127.0.0.2", mxGreeting},
				{"127.0.0.2", mxGreeting},
			},
			wantRefused: 1, wantRefusedMetric: 2, free: 1,
			wantSeries: map[string]int64{"attempts_refused/127.0.0.1": 2, "blocked/127.0.0.1": 2},
		},
		{
			name:         "total: non-relays stop below max_conns, relays use the reserve",
			maxPerSource: 100, maxConns: 5, // non-relays may hold 4
			attempts: []attempt{
				{"127.0.0.1", greeting},
				{"127.0.0.1", greeting},
				{"127.0.0.3", greeting},
				{"127.0.0.4", greeting},
				{"127.0.0.5", total},
				{"127.0.0.2", mxGreeting},
				{"127.0.0.2", total}, // a relay at max_conns is deferred
			},
			wantRefused: 1, wantDeferr: 1, wantRefusedMetric: 1,
			wantSeries: map[string]int64{"attempts_refused/127.0.0.5": 1, "blocked/127.0.0.5": 1,
				"attempts_deferred/127.0.0.2": 1, "deferred/mail-relay": 1},
			free: 2, // 4 non-relays and 1 relay are open; non-relays need total < 4
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0")
			lim := testLimits()
			lim.MaxConnsPerSource, lim.MaxConns = tt.maxPerSource, tt.maxConns
			series := newStoreSeries(t)
			tp := startProxy(t, series.options(Options{
				Dialer: &fakeDialer{target: mx.Addr()},
				Limits: lim,
				Policy: testPolicy(t, "mail-relay", "127.0.0.2/32"),
			}))
			var open []*smtpClient
			for i, a := range tt.attempts {
				c := dialFrom(t, a.src, tp.addr)
				if got := c.reply(); got != a.want {
					t.Fatalf("attempt %d from %s: %q, want %q", i, a.src, got, a.want)
				}
				if strings.HasPrefix(a.want, "421") {
					if got := c.reply(); got != "EOF" {
						t.Errorf("attempt %d from %s after 421: %q, want EOF", i, a.src, got)
					}
				}
				open = append(open, c)
			}
			countKind(t, tp.rec, event.Refused, tt.wantRefused)
			countKind(t, tp.rec, event.Deferred, tt.wantDeferr)
			if got := metricValue(t, tp.metrics.conns.WithLabelValues(classRefused)); got != tt.wantRefusedMetric {
				t.Errorf("connections_total{class=refused} = %v, want %v", got, tt.wantRefusedMetric)
			}
			if got := metricValue(t, tp.metrics.deferrals.WithLabelValues("max_conns")); got != float64(tt.wantDeferr) {
				t.Errorf("deferrals_total{limit=max_conns} = %v, want %v", got, tt.wantDeferr)
			}
			got := series.outcomes()
			if diff := cmp.Diff(tt.wantSeries, got); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
			for _, e := range tp.rec.all() {
				if e.Kind == event.Refused && (e.Client != netip.MustParseAddr("127.0.0.1") && e.Client != netip.MustParseAddr("127.0.0.5") || e.Code != 421) {
					t.Errorf("refused event %+v", e)
				}
			}

			// Closing connections frees their slots.
			for _, c := range open[:tt.free] {
				c.conn.Close()
			}
			deadline := time.Now().Add(2 * time.Second)
			for {
				c := dialFrom(t, tt.attempts[0].src, tp.addr)
				got := c.reply()
				if got == greeting {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after closing a connection: %q, want %q", got, greeting)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestSetPolicyAndLimitsLive(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	tp := startProxy(t, Options{Dialer: &fakeDialer{target: mx.Addr()}})

	c := dialFrom(t, "127.0.0.1", tp.addr)
	if got := c.reply(); got != greeting {
		t.Fatalf("before SetPolicy: %q, want the refusal greeting %q", got, greeting)
	}

	tp.SetPolicy(testPolicy(t, "new-relay", "127.0.0.1"))
	c2 := dialFrom(t, "127.0.0.1", tp.addr)
	if got := c2.reply(); got != mxGreeting {
		t.Fatalf("after SetPolicy: %q, want the MX's greeting %q", got, mxGreeting)
	}
	// The open refusal session keeps its decision.
	if got := c.cmd("RCPT TO:<x@y>"); !strings.HasPrefix(got, "502") {
		t.Errorf("open refusal session: %q, want 502 (no MAIL)", got)
	}

	lim := testLimits()
	lim.MaxConnsPerSource = 1
	tp.SetLimits(lim)
	c3 := dialFrom(t, "127.0.0.3", tp.addr)
	if got := c3.reply(); got != greeting {
		t.Fatalf("first from 127.0.0.3: %q, want %q", got, greeting)
	}
	c4 := dialFrom(t, "127.0.0.3", tp.addr)
	if got, want := c4.reply(), "421 4.7.0 Too many connections from your address"; got != want {
		t.Fatalf("second from 127.0.0.3 after SetLimits: %q, want %q", got, want)
	}
}

// panicPolicy panics on every lookup.
type panicPolicy struct{}

func (panicPolicy) Relay(netip.Addr) (policy.Relay, bool) { panic("boom") }
func (panicPolicy) Reject() string                        { return "x" }

func TestPanicIsRecovered(t *testing.T) {
	tp := startProxy(t, Options{Policy: panicPolicy{}})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	if got := c.reply(); got != "EOF" {
		t.Errorf("after a panic: %q, want EOF", got)
	}
	if got := metricValue(t, tp.metrics.panics); got != 1 {
		t.Errorf("panics_total = %v, want 1", got)
	}
	tp.SetPolicy(testPolicy(t))
	c2 := dialFrom(t, "127.0.0.1", tp.addr)
	if got := c2.reply(); got != greeting {
		t.Errorf("after a panic, the next connection: %q, want %q", got, greeting)
	}
}

func TestServeShutdown(t *testing.T) {
	tests := []struct {
		name      string
		grace     time.Duration
		quitAfter time.Duration // the refusal client says QUIT this long after cancel; 0: never
		wantRefus []string      // replies the refusal client reads after cancel
		minTime   time.Duration
		maxTime   time.Duration
	}{
		{
			name: "sessions closed after the grace period", grace: 300 * time.Millisecond,
			wantRefus: []string{"EOF"}, minTime: 300 * time.Millisecond, maxTime: 3 * time.Second,
		},
		{
			name: "a session ending within the grace period ends normally", grace: 10 * time.Second, quitAfter: 100 * time.Millisecond,
			wantRefus: []string{"221 2.0.0 Bye", "EOF"}, maxTime: 3 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0")
			base := runtime.NumGoroutine()
			tp := startProxy(t, Options{
				Dialer:        &fakeDialer{target: mx.Addr()},
				Policy:        testPolicy(t, "mail-relay", "127.0.0.2"),
				ShutdownGrace: tt.grace,
			})
			refusal := dialFrom(t, "127.0.0.1", tp.addr)
			if got := refusal.reply(); got != greeting {
				t.Fatalf("refusal greeting %q", got)
			}
			if got := refusal.cmd("EHLO bot.example"); !strings.HasPrefix(got, "250") {
				t.Fatalf("EHLO: %q", got)
			}
			relay := dialFrom(t, "127.0.0.2", tp.addr)
			if got := relay.reply(); got != mxGreeting {
				t.Fatalf("relay greeting %q", got)
			}

			start := time.Now()
			stopped := make(chan struct{})
			go func() {
				tp.stop(t)
				close(stopped)
			}()
			if tt.quitAfter > 0 {
				time.Sleep(tt.quitAfter)
				refusal.send("QUIT\r\n")
				relay.cmd("QUIT")
				relay.conn.Close()
			}
			for _, want := range tt.wantRefus {
				if got := refusal.reply(); got != want {
					t.Errorf("refusal client after cancel: %q, want %q", got, want)
				}
			}
			<-stopped
			if d := time.Since(start); d < tt.minTime || d > tt.maxTime {
				t.Errorf("Serve returned %s after cancel, want between %s and %s", d, tt.minTime, tt.maxTime)
			}
			if _, err := net.DialTimeout("tcp", tp.addr.String(), time.Second); err == nil {
				t.Errorf("dial after Serve returned: nil error, want refused")
			}
			countKind(t, tp.rec, event.Blocked, 1)
			countKind(t, tp.rec, event.Relayed, 1)
			refusal.conn.Close()
			relay.conn.Close()
			waitGoroutines(t, base)
		})
	}
}
