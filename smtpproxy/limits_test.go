package smtpproxy

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/fakemx"
	"github.com/relaygate/relaygate/ratelimit"
	"github.com/relaygate/relaygate/store"
)

// storeSeries is a real store in a temp dir that receives the proxy's
// events (through a tee beside the test's fake recorder) and series: the
// per-minute counts the tests read are the store's own.
type storeSeries struct {
	t  *testing.T
	st *store.Store
}

func newStoreSeries(t *testing.T) *storeSeries {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &storeSeries{t: t, st: st}
}

// teeRecorder records into the fake recorder of the test and the store.
type teeRecorder struct {
	*fakeRecorder
	st *store.Store
}

func (r teeRecorder) Record(e event.Event) { r.fakeRecorder.Record(e); r.st.Record(e) }
func (r teeRecorder) Tally(e event.Event)  { r.st.Tally(e) }

// options returns o with the store as series and a tee as recorder.
func (s *storeSeries) options(o Options) Options {
	o.Series = s.st
	o.Recorder = teeRecorder{newFakeRecorder(), s.st}
	return o
}

// get returns the sums of every key of the metrics the proxy feeds, as
// "metric/key".
func (s *storeSeries) get() map[string]int64 {
	s.t.Helper()
	return s.sums(store.SeriesRelayMessages, store.SeriesSenderMessages, store.SeriesDomainMessages, store.SeriesDeferred)
}

// outcomes returns the sums of the outcome series (attempts by kind and
// client, blocked, deferred), as "metric/key".
func (s *storeSeries) outcomes() map[string]int64 {
	s.t.Helper()
	var ms []string
	for _, k := range event.Kinds {
		ms = append(ms, store.AttemptsSeries(k))
	}
	return s.sums(append(ms, store.SeriesBlocked, store.SeriesDeferred)...)
}

func (s *storeSeries) sums(metrics ...string) map[string]int64 {
	s.t.Helper()
	ctx := context.Background()
	if err := s.st.Flush(ctx); err != nil {
		s.t.Fatal(err)
	}
	out := map[string]int64{}
	for _, m := range metrics {
		pts, err := s.st.Series(ctx, store.SeriesQuery{Metric: m})
		if err != nil {
			s.t.Fatal(err)
		}
		for _, p := range pts {
			out[p.Metric+"/"+p.Key] += p.Value
		}
	}
	return out
}

func TestSeriesNames(t *testing.T) {
	got := []string{seriesDomainMessages}
	want := []string{store.SeriesDomainMessages}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series names (-store +smtpproxy):\n%s", diff)
	}
	var _ Series = (*store.Store)(nil)
}

func kinds(evs []event.Event) map[event.Kind]int {
	m := map[event.Kind]int{}
	for _, e := range evs {
		m[e.Kind]++
	}
	return m
}

func TestMessageLimits(t *testing.T) {
	const body = "Subject: x\r\n\r\nx\r\n"
	tests := []struct {
		name   string
		limits MailLimits
		from   []string // senders of the messages, one session
		rcpts  []string
		want   []string // replies to the last message
		detail string   // of the deferred event
	}{
		{
			name:   "relay messages per minute",
			limits: MailLimits{RelayMessagesPerMinute: 2},
			from:   []string{"a@example.org", "a@example.org", "c@example.org"},
			rcpts:  []string{"b@example.net"},
			want:   []string{"451 4.7.1 Too many messages from relay mail-relay this minute, try again later"},
			detail: "451 4.7.1 Too many messages from relay mail-relay this minute, try again later (relay_messages_per_minute=2)",
		},
		{
			name:   "sender messages per minute, others pass",
			limits: MailLimits{SenderMessagesPerMinute: 1},
			from:   []string{"c@example.org", "A@example.org", "a@example.org"},
			rcpts:  []string{"b@example.net"},
			want:   []string{"451 4.7.1 Too many messages from sender <a@example.org> this minute, try again later"},
			detail: "451 4.7.1 Too many messages from sender <a@example.org> this minute, try again later (sender_messages_per_minute=1)",
		},
		{
			name:   "domain messages per minute: that RCPT only",
			limits: MailLimits{DomainMessagesPerMinute: map[string]int{"example.net": 1}},
			from:   []string{"a@example.org", "a@example.org"},
			rcpts:  []string{"x@example.com", "b@Example.NET"},
			want: []string{"250 2.0.0 Roger, accepting mail from <a@example.org>", "250 2.0.0 I'll make sure <x@example.com> gets this",
				"451 4.7.1 Too many messages to example.net this minute, try again later",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>", "250 2.0.0 OK: queued"},
			detail: "451 4.7.1 Too many messages to example.net this minute, try again later (domain_messages_per_minute[example.net]=1)",
		},
		{
			name:   "recipients per message",
			limits: MailLimits{RecipientsPerMessage: 1},
			from:   []string{"a@example.org"},
			rcpts:  []string{"b@example.net", "c@example.net"},
			want: []string{"250 2.0.0 Roger, accepting mail from <a@example.org>", "250 2.0.0 I'll make sure <b@example.net> gets this",
				"452 4.5.3 Too many recipients", "354 Go ahead. End your data with <CR><LF>.<CR><LF>", "250 2.0.0 OK: queued"},
			detail: "452 4.5.3 Too many recipients (recipients_per_message=1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0")
			clock := newFakeClock()
			series := newStoreSeries(t)
			tp := relayProxy(t, mx.Addr(), series.options(Options{MailLimits: tt.limits, Now: clock.Now}))
			c := dialFrom(t, "127.0.0.1", tp.addr)
			c.reply()
			c.cmd("EHLO relay.example.org")
			var got []string
			for i, from := range tt.from {
				got = c.sendMail(from, tt.rcpts, body)
				if i < len(tt.from)-1 && got[len(got)-1] != "250 2.0.0 OK: queued" {
					t.Fatalf("message %d: %q", i, got)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("replies (-want +got):\n%s", diff)
			}
			var deferred []event.Event
			for _, e := range tp.rec.all() {
				if e.Kind == event.Deferred {
					deferred = append(deferred, e)
				}
			}
			if len(deferred) != 1 || deferred[0].Detail != tt.detail || deferred[0].Relay != "mail-relay" {
				t.Errorf("deferred events %+v, want one with detail %q", deferred, tt.detail)
			}
			if got := series.get()[store.SeriesDeferred+"/mail-relay"]; got != 1 {
				t.Errorf("deferred series = %d, want 1", got)
			}
			// Once the sliding minute has passed, the retry passes.
			clock.Add(2 * time.Minute)
			got = c.sendMail(tt.from[len(tt.from)-1], tt.rcpts[len(tt.rcpts)-1:], body)
			if got[len(got)-1] != "250 2.0.0 OK: queued" {
				t.Errorf("retry a minute later: %q, want accepted", got)
			}
		})
	}
}

func TestSeries(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	series := newStoreSeries(t)
	tp := relayProxy(t, mx.Addr(), series.options(Options{}))
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	c.sendMail("A@example.org", []string{"b@example.net", "c@example.net", "d@example.com"}, "Subject: x\r\n\r\nx\r\n")
	c.sendMail("a@example.org", []string{"b@example.net"}, "Subject: x\r\n\r\nx\r\n")
	tp.rec.wait(t, 2)
	want := map[string]int64{
		"relay_messages/mail-relay":     2,
		"sender_messages/a@example.org": 2,
		"domain_messages/example.net":   2,
		"domain_messages/example.com":   1,
	}
	if diff := cmp.Diff(want, series.get()); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}

func TestSessionLimits(t *testing.T) {
	tests := []struct {
		name   string
		limits MailLimits
		want   string
	}{
		{"concurrent sessions", MailLimits{RelaySessions: 1}, "421 4.7.0 Too many concurrent sessions from relay mail-relay, try again later"},
		{"new sessions per minute", MailLimits{RelaySessionsPerMinute: 1}, "421 4.7.0 Too many new sessions from relay mail-relay this minute, try again later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0")
			clock := newFakeClock()
			tp := relayProxy(t, mx.Addr(), Options{MailLimits: tt.limits, Now: clock.Now})
			c1 := dialFrom(t, "127.0.0.1", tp.addr)
			c1.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"})
			c2 := dialFrom(t, "127.0.0.1", tp.addr)
			c2.steps([2]string{"", tt.want}, [2]string{"", "EOF"})
			evs := tp.rec.wait(t, 1)
			if evs[0].Kind != event.Deferred || evs[0].Code != 421 {
				t.Errorf("event %+v, want deferred 421", evs[0])
			}
			// Later (the first session gone, a minute passed) a retry passes.
			c1.cmd("QUIT")
			c1.conn.Close()
			tp.rec.wait(t, 2)
			clock.Add(2 * time.Minute)
			c3 := dialFrom(t, "127.0.0.1", tp.addr)
			c3.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"})
		})
	}
}

func TestRemoteMXLimit(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	clock := newFakeClock()
	// Listen on two addresses: the proxy sees two original destinations.
	tp := startProxyOn(t, "0.0.0.0:0", Options{Dialer: &fakeDialer{target: mx.Addr()}, Policy: testPolicy(t, "mail-relay", "127.0.0.1/32"),
		MailLimits: MailLimits{RemoteMXPerMinute: 1}, Now: clock.Now})
	a := dialFrom(t, "127.0.0.1", tp.addr)
	a.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"})
	again := dialFrom(t, "127.0.0.1", tp.addr) // the same destination again is fine
	again.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"})
	other := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), tp.addr.Port())
	b := dialFrom(t, "127.0.0.1", other)
	b.steps([2]string{"", "421 4.7.0 Too many distinct destinations from relay mail-relay this minute, try again later"})
	clock.Add(time.Minute)
	b2 := dialFrom(t, "127.0.0.1", other)
	b2.steps([2]string{"", "220 fakemx.test ESMTP Service Ready"})
}

func TestBurstAlertAndHold(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	clock := newFakeClock()
	ml := MailLimitsFromConfig(config.Limits{Burst: config.Burst{Factor: 5, MinMessages: 5, Hold: true, HoldFor: config.Duration(15 * time.Minute)}})
	tp := relayProxy(t, mx.Addr(), Options{MailLimits: ml, Now: clock.Now})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	send := func(from string) string {
		got := c.sendMail(from, []string{"b@example.net"}, "Subject: x\r\n\r\nx\r\n")
		return got[len(got)-1]
	}
	// A baseline of one message a minute for an hour.
	for range 60 {
		if got := send("victim@example.org"); got != "250 2.0.0 OK: queued" {
			t.Fatalf("baseline: %q", got)
		}
		clock.Add(time.Minute)
	}
	// Then a burst: the fifth message in a minute (5 > 5 * ~0.63) alerts and holds.
	for i := range 5 {
		if got := send("victim@example.org"); got != "250 2.0.0 OK: queued" {
			t.Fatalf("burst message %d: %q", i, got)
		}
	}
	var alerts []event.Event
	for _, e := range tp.rec.all() {
		if e.Kind == event.Alert {
			alerts = append(alerts, e)
		}
	}
	if len(alerts) != 1 || alerts[0].MailFrom != "victim@example.org" || !strings.Contains(alerts[0].Detail, "held (451 4.7.1) until") {
		t.Fatalf("alerts %+v, want one for victim@example.org with a hold", alerts)
	}
	if got, want := send("victim@example.org"), "451 4.7.1 Sender <victim@example.org> is held: it sends far above its usual rate, try again later"; got != want {
		t.Errorf("held sender: %q, want %q", got, want)
	}
	if got := send("other@example.org"); got != "250 2.0.0 OK: queued" {
		t.Errorf("another sender during the hold: %q, want accepted", got)
	}
	clock.Add(16 * time.Minute)
	if got := send("victim@example.org"); got != "250 2.0.0 OK: queued" {
		t.Errorf("after the hold: %q, want accepted", got)
	}
	if n := kinds(tp.rec.all())[event.Alert]; n != 1 {
		t.Errorf("%d alerts, want 1", n)
	}
}

func TestSetMailLimitsLive(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	tp := relayProxy(t, mx.Addr(), Options{})
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO r")
	c.sendMail("a@example.org", []string{"b@example.net"}, "x\r\n")
	tp.SetMailLimits(MailLimits{RelayMessagesPerMinute: 1})
	c2 := dialFrom(t, "127.0.0.1", tp.addr)
	c2.reply()
	c2.cmd("EHLO r")
	if got := c2.cmd("MAIL FROM:<a@example.org>"); !strings.HasPrefix(got, "451 4.7.1 ") {
		t.Errorf("after SetMailLimits: %q, want 451 4.7.1", got)
	}
}

func TestMailLimitsFromConfig(t *testing.T) {
	got := MailLimitsFromConfig(config.Limits{RelayMessagesPerMinute: 1, SenderMessagesPerMinute: 2, DomainMessagesPerMinute: map[string]int{"Docomo.NE.jp.": 3},
		RecipientsPerMessage: 4, RelaySessions: 5, RelaySessionsPerMinute: 6, RemoteMXPerMinute: 7,
		Burst: config.Burst{Factor: 10, MinMessages: 30, Hold: true}})
	want := MailLimits{RelayMessagesPerMinute: 1, SenderMessagesPerMinute: 2, DomainMessagesPerMinute: map[string]int{"docomo.ne.jp": 3},
		RecipientsPerMessage: 4, RelaySessions: 5, RelaySessionsPerMinute: 6, RemoteMXPerMinute: 7,
		Burst: ratelimit.BurstConfig{Factor: 10, MinMessages: 30, Hold: true, HoldFor: config.DefaultBurstHoldFor}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MailLimitsFromConfig (-want +got):\n%s", diff)
	}
}

// TestDeferredEventsBounded: a sender far over its limit (a stolen
// account's queue retried) leaves one deferred event per minute, the next
// one saying how many were held back; every deferral is still counted, and
// another sender's deferral is recorded on its own.
func TestDeferredEventsBounded(t *testing.T) {
	const body = "Subject: x\r\n\r\nx\r\n"
	mx := fakemx.Start(t, "127.0.0.1:0")
	clock := newFakeClock()
	series := newStoreSeries(t)
	tp := relayProxy(t, mx.Addr(), series.options(Options{MailLimits: MailLimits{SenderMessagesPerMinute: 1}, Now: clock.Now}))
	c := dialFrom(t, "127.0.0.1", tp.addr)
	c.reply()
	c.cmd("EHLO relay.example.org")
	send := func(from string) string {
		got := c.sendMail(from, []string{"b@example.net"}, body)
		return got[len(got)-1]
	}
	deferred := func() []event.Event {
		var out []event.Event
		for _, e := range tp.rec.all() {
			if e.Kind == event.Deferred {
				out = append(out, e)
			}
		}
		return out
	}
	if got := send("thief@example.org"); got != "250 2.0.0 OK: queued" {
		t.Fatalf("first message: %q", got)
	}
	for i := 0; i < 5; i++ {
		if got := send("thief@example.org"); !strings.HasPrefix(got, "451 4.7.1") {
			t.Fatalf("message %d over the limit: %q, want 451 4.7.1", i+2, got)
		}
	}
	if evs := deferred(); len(evs) != 1 || strings.Contains(evs[0].Detail, "more deferred") {
		t.Fatalf("deferred events after 5 deferrals of one sender: %+v, want one", evs)
	}
	if got := series.get()[store.SeriesDeferred+"/mail-relay"]; got != 5 {
		t.Errorf("deferred series = %d, want 5 (every deferral counted)", got)
	}
	if got := metricValue(t, tp.metrics.deferrals.WithLabelValues("sender_messages_per_minute")); got != 5 {
		t.Errorf("deferrals metric = %v, want 5", got)
	}

	// Another sender over its own limit is recorded at once.
	send("other@example.org")
	if got := send("other@example.org"); !strings.HasPrefix(got, "451 4.7.1") {
		t.Fatalf("second sender over the limit: %q", got)
	}
	if evs := deferred(); len(evs) != 2 || evs[1].MailFrom != "other@example.org" {
		t.Fatalf("deferred events = %+v, want a second one for other@example.org", evs)
	}

	// A minute later the next deferral of the first sender is recorded and
	// reports the four held back.
	clock.Add(2 * time.Minute)
	send("thief@example.org")
	if got := send("thief@example.org"); !strings.HasPrefix(got, "451 4.7.1") {
		t.Fatalf("after two minutes, second message: %q", got)
	}
	evs := deferred()
	if len(evs) != 3 {
		t.Fatalf("deferred events = %d, want 3: %+v", len(evs), evs)
	}
	if want := "; 4 more deferred by this limit since "; !strings.Contains(evs[2].Detail, want) {
		t.Errorf("detail %q lacks %q", evs[2].Detail, want)
	}
}

func TestEventThrottleBounded(t *testing.T) {
	var th eventThrottle[int]
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for k := range maxThrottleKeys {
		if ok, _, _ := th.allow(k, t0); !ok {
			t.Fatalf("key %d refused below the bound", k)
		}
	}
	if ok, _, _ := th.allow(-1, t0.Add(time.Second)); ok {
		t.Error("a new key was let through with the table full of recent keys")
	}
	if ok, _, _ := th.allow(7, t0.Add(time.Second)); ok {
		t.Error("a known key was let through twice within eventEvery")
	}
	ok, held, since := th.allow(7, t0.Add(eventEvery))
	if !ok || held != 1 || !since.Equal(t0) {
		t.Errorf("allow(7) after eventEvery = %v, %d, %v; want true, 1, %v", ok, held, since, t0)
	}
	if ok, _, _ := th.allow(-1, t0.Add(eventEvery+time.Second)); !ok {
		t.Error("a new key was refused although the old keys had expired")
	}
	if n := len(th.last); n > maxThrottleKeys {
		t.Errorf("throttle holds %d keys, bound %d", n, maxThrottleKeys)
	}
}

// A full eventThrottle forgets only keys whose last event is older than
// eventEvery (the oldest); keys still within it are never evicted, or a
// flood could get their events recorded again. New keys are held back
// instead.
func TestEventThrottleEvictsOnlyExpired(t *testing.T) {
	var th eventThrottle[int]
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	half := maxThrottleKeys / 2
	for k := range maxThrottleKeys {
		at := t0
		if k >= half {
			at = t0.Add(eventEvery / 2) // the younger half
		}
		th.allow(k, at)
	}
	now := t0.Add(eventEvery) // the older half has expired
	if ok, _, _ := th.allow(-1, now); !ok {
		t.Fatal("a new key was refused although old keys had expired")
	}
	if n := len(th.last); n != maxThrottleKeys-half+1 {
		t.Errorf("%d keys after the sweep, want the %d younger ones and the new one", n, maxThrottleKeys-half)
	}
	for k := half; k < maxThrottleKeys; k++ {
		if ok, _, _ := th.allow(k, now); ok {
			t.Fatalf("younger key %d was evicted: its event recorded again within eventEvery", k)
		}
	}
}
