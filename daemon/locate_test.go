package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/locate"
	"github.com/relaygate/relaygate/reputation"
	"github.com/relaygate/relaygate/store"
)

// testLocator is a locate.Locator whose answers the test sets; the real
// SNMP locator is tested end to end in the namespace lab. A closed (or
// nil) gate lets lookups through; an open one holds them until the
// lookup's context ends.
type testLocator struct {
	mu      sync.Mutex
	answers map[netip.Addr]locate.Location
	calls   map[netip.Addr]int
	hold    bool
	called  chan netip.Addr
}

func newTestLocator() *testLocator {
	return &testLocator{answers: map[netip.Addr]locate.Location{}, calls: map[netip.Addr]int{}, called: make(chan netip.Addr, 1000)}
}

func (l *testLocator) Locate(ctx context.Context, addr netip.Addr) (locate.Location, error) {
	l.mu.Lock()
	l.calls[addr]++
	a, ok := l.answers[addr]
	hold := l.hold
	l.mu.Unlock()
	l.called <- addr
	if hold {
		<-ctx.Done()
		return locate.Location{}, ctx.Err()
	}
	if !ok {
		return locate.Location{Addr: addr, Status: locate.NotFound}, nil
	}
	return a, nil
}

func (l *testLocator) set(addr netip.Addr, loc locate.Location) {
	l.mu.Lock()
	l.answers[addr] = loc
	l.mu.Unlock()
}

func (l *testLocator) count(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[addr]
}

// waitCalls waits until n lookups have started.
func (l *testLocator) waitCalls(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-l.called:
		case <-time.After(5 * time.Second):
			t.Fatalf("waited for lookup %d of %d", i+1, n)
		}
	}
}

// noMoreCalls asserts that no lookup starts for a while.
func (l *testLocator) noMoreCalls(t *testing.T) {
	t.Helper()
	select {
	case a := <-l.called:
		t.Fatalf("unexpected lookup of %s", a)
	case <-time.After(200 * time.Millisecond):
	}
}

// sentAlerts collects the alerts the service sends.
type sentAlerts struct {
	mu  sync.Mutex
	all []reputation.Alert
	ch  chan reputation.Alert
}

func (s *sentAlerts) Send(ctx context.Context, al reputation.Alert) {
	s.mu.Lock()
	s.all = append(s.all, al)
	s.mu.Unlock()
	s.ch <- al
}

type locHarness struct {
	st    *store.Store
	loc   *testLocator
	svc   *locService
	clk   *fakeNow
	sent  *sentAlerts
	cfg   *config.Config
	relay netip.Addr
}

type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeNow) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeNow) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newLocHarness runs the location service on a store in a temp dir with
// one switch configured; run false leaves the queue without workers.
func newLocHarness(t *testing.T, run bool) *locHarness {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{PruneInterval: -1, EventsPerSourcePerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Default()
	cfg.Locate.Switches = []config.Switch{{Name: "access-2", Address: "10.0.0.2", Version: "2c", Community: "public"}}
	p, err := config.ParsePrefix("10.10.0.25/32")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Relays = []config.Relay{{Name: "mail-relay", Address: p}}
	h := &locHarness{st: st, loc: newTestLocator(), clk: &fakeNow{t: time.Date(2026, 3, 4, 10, 42, 0, 0, time.UTC)},
		sent: &sentAlerts{ch: make(chan reputation.Alert, 100)}, cfg: cfg, relay: netip.MustParseAddr("10.10.0.25")}
	h.svc = newLocService(slog.New(slog.DiscardHandler), st, st, cfg,
		func(config.Locate, *slog.Logger) locate.Locator { return h.loc })
	h.svc.now = h.clk.now
	h.svc.alerts = h.sent
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { h.svc.run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return h
}

func blockedBy(addr netip.Addr) event.Event {
	return event.Event{Time: time.Now(), Kind: event.Blocked, Client: addr, Server: netip.MustParseAddr("192.0.2.25")}
}

// waitLocation waits until the store holds a lookup of addr at or after t.
func (h *locHarness) waitLocation(t *testing.T, addr netip.Addr, after time.Time) store.LocationRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rec, ok, err := h.st.Location(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		if ok && !rec.LastAttempt.Before(after) {
			return rec
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no location of %s stored after %s", addr, after)
	return store.LocationRecord{}
}

var pcLocation = locate.Location{Status: locate.Found, MAC: "aa:bb:cc:dd:ee:ff", Vendor: "Dell Inc.",
	Switch: "access-2", Port: "Gi1/0/17", PortDescription: "3F room 12", VLAN: 20}

// TestLocateFirstBlockOnce: the first block of a host starts one lookup,
// whose answer is stored; more blocks within locate.refresh start none,
// the first block after it starts the next.
func TestLocateFirstBlockOnce(t *testing.T) {
	h := newLocHarness(t, true)
	pc := netip.MustParseAddr("10.20.0.50")
	want := pcLocation
	want.Addr = pc
	h.loc.set(pc, want)

	h.svc.Observe(blockedBy(pc))
	h.loc.waitCalls(t, 1)
	rec := h.waitLocation(t, pc, h.clk.now())
	if rec.Port != "Gi1/0/17" || rec.MAC != "aa:bb:cc:dd:ee:ff" || rec.LastStatus != locate.Found {
		t.Errorf("stored location = %+v, want port Gi1/0/17, MAC aa:bb:cc:dd:ee:ff, found", rec)
	}
	for range 20 {
		h.clk.add(10 * time.Second)
		h.svc.Observe(blockedBy(pc))
	}
	h.loc.noMoreCalls(t)
	if n := h.loc.count(pc); n != 1 {
		t.Errorf("lookups within the refresh = %d, want 1", n)
	}
	h.clk.add(h.cfg.Locate.Refresh.D())
	h.svc.Observe(blockedBy(pc))
	h.loc.waitCalls(t, 1)
	if got := counterValue(t, h.svc.lookups.WithLabelValues("found")); got < 1 {
		t.Errorf("relaygate_locate_lookups_total{status=found} = %v, want >= 1", got)
	}
	// Events that are not offences or relaying start nothing.
	other := netip.MustParseAddr("10.20.0.99")
	h.svc.Observe(event.Event{Kind: event.UpstreamError, Client: other})
	h.svc.Observe(event.Event{Kind: event.Relayed, Client: other})
	h.loc.noMoreCalls(t)
}

// TestLocateQueueFullDrops: with the workers busy, lookups beyond the
// queue are dropped and counted, and a later event of a dropped host
// queues it again.
func TestLocateQueueFullDrops(t *testing.T) {
	h := newLocHarness(t, false)
	h.svc.alerts = nil
	const extra = 10
	for i := range locateQueue + extra {
		h.svc.Observe(blockedBy(netip.AddrFrom4([4]byte{10, 20, byte(i >> 8), byte(i)})))
	}
	if got := counterValue(t, h.svc.drops); got != extra {
		t.Errorf("relaygate_locate_queue_drops_total = %v, want %d", got, extra)
	}
	if got := len(h.svc.queue); got != locateQueue {
		t.Errorf("queued = %d, want %d", got, locateQueue)
	}
	<-h.svc.queue
	dropped := netip.AddrFrom4([4]byte{10, 20, locateQueue >> 8, locateQueue & 0xff})
	h.svc.Observe(blockedBy(dropped))
	if got := len(h.svc.queue); got != locateQueue {
		t.Errorf("queued after a dropped host's next event = %d, want %d (queued again)", got, locateQueue)
	}
}

// TestLocateSlowLocatorNeverBlocks: while every lookup hangs, recording
// events (the data path) stays fast and every event is stored.
func TestLocateSlowLocatorNeverBlocks(t *testing.T) {
	h := newLocHarness(t, true)
	h.svc.alerts = nil
	h.loc.hold = true
	rec := watchedRecorder{st: h.st, watchers: []func(event.Event){h.svc.Observe}}
	const n = 2000
	start := time.Now()
	for i := range n {
		rec.Record(blockedBy(netip.AddrFrom4([4]byte{10, 30, byte(i >> 8), byte(i)})))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("recording %d events with hanging lookups took %s", n, d)
	}
	h.loc.waitCalls(t, locateWorkers)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := h.st.Events(ctx, store.Query{Kind: event.Blocked, Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Errorf("stored events = %d, want %d", len(evs), n)
	}
	if got := counterValue(t, h.svc.drops); got == 0 {
		t.Error("no drops counted though the workers hang and the queue overflowed")
	}
}

// udpSyslog listens for syslog datagrams on 127.0.0.1.
func udpSyslog(t *testing.T) (string, chan string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ch := make(chan string, 10)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return pc.LocalAddr().String(), ch
}

// TestOffenderAlertNamesLocation: the alert of a host's first block (its
// syslog line) names the host's MAC, vendor, switch, port and port
// description when they are known, and goes out without them, without
// waiting for a lookup, when they are not; a second block alerts no more.
func TestOffenderAlertNamesLocation(t *testing.T) {
	h := newLocHarness(t, true)
	h.loc.hold = true // lookups never answer: the alerts must not wait
	addr, ch := udpSyslog(t)
	alerter := reputation.NewAlerter(slog.New(slog.DiscardHandler), config.Alerts{
		Syslog: config.SyslogAlert{Address: addr, Transport: "udp"}, DigestAfter: 100, Window: config.Duration(time.Minute)})
	h.svc.alerts = alerter

	known := netip.MustParseAddr("10.20.0.50")
	loc := pcLocation
	loc.Addr, loc.SeenAt = known, h.clk.now()
	if err := h.st.SaveLocation(context.Background(), loc); err != nil {
		t.Fatal(err)
	}
	h.svc.Observe(blockedBy(known))
	line := recv(t, ch)
	want := "10.20.0.50 (aa:bb:cc:dd:ee:ff, Dell Inc.) on access-2 Gi1/0/17 '3F room 12'"
	if !strings.Contains(line, want) {
		t.Errorf("syslog line = %q, want it to contain %q", line, want)
	}

	unknown := netip.MustParseAddr("10.20.0.77")
	h.svc.Observe(event.Event{Kind: event.WouldBlock, Client: unknown})
	line = recv(t, ch)
	if !strings.Contains(line, "10.20.0.77: direct SMTP would_block") || strings.Contains(line, " on ") {
		t.Errorf("syslog line of an unlocated host = %q, want the address without a location", line)
	}
	h.svc.Observe(blockedBy(known))
	select {
	case l := <-ch:
		t.Errorf("second block sent another alert: %q", l)
	case <-time.After(300 * time.Millisecond):
	}
}

func recv(t *testing.T, ch chan string) string {
	t.Helper()
	select {
	case l := <-ch:
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no syslog line")
		return ""
	}
}

// TestRelayMovedAlarm: a relay located again at the same MAC and port
// raises nothing; located at another MAC it raises the relay_moved alert
// and records it as an alert event; located on another port too.
func TestRelayMovedAlarm(t *testing.T) {
	h := newLocHarness(t, true)
	ctx := context.Background()
	relay := locate.Location{Addr: h.relay, Status: locate.Found, MAC: "00:11:22:33:44:55", Switch: "core", Port: "Gi1/0/1", PortDescription: "server room"}
	h.loc.set(h.relay, relay)
	relayed := event.Event{Kind: event.Relayed, Client: h.relay, Relay: "mail-relay"}

	step := func(loc locate.Location) {
		t.Helper()
		h.loc.set(h.relay, loc)
		h.clk.add(h.cfg.Locate.Refresh.D())
		h.svc.Observe(relayed)
		h.loc.waitCalls(t, 1)
		h.waitLocation(t, h.relay, h.clk.now())
	}
	step(relay)
	step(relay)
	select {
	case al := <-h.sent.ch:
		t.Fatalf("alert for a relay that did not move: %+v", al)
	case <-time.After(200 * time.Millisecond):
	}

	spoof := relay
	spoof.MAC, spoof.Vendor, spoof.Switch, spoof.Port, spoof.PortDescription = "aa:bb:cc:dd:ee:ff", "Dell Inc.", "access-2", "Gi1/0/17", "3F room 12"
	step(spoof)
	var al reputation.Alert
	select {
	case al = <-h.sent.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no alert when the relay's address moved to another MAC")
	}
	if !strings.HasPrefix(al.Subject, "relay_moved: relay mail-relay (10.10.0.25)") ||
		!strings.Contains(al.Body, "00:11:22:33:44:55") || !strings.Contains(al.Body, "aa:bb:cc:dd:ee:ff, Dell Inc.) on access-2 Gi1/0/17") {
		t.Errorf("relay_moved alert = %+v, want the relay, the old MAC and the new MAC and port", al)
	}
	if err := h.st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := h.st.Events(ctx, store.Query{Kind: event.Alert, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Relay != "mail-relay" || !strings.HasPrefix(evs[0].Detail, "relay_moved:") {
		t.Errorf("alert events = %+v, want one relay_moved event of mail-relay", evs)
	}

	// Same MAC, another port: moved too.
	onPort := spoof
	onPort.Port = "Gi1/0/18"
	step(onPort)
	select {
	case al := <-h.sent.ch:
		if !strings.Contains(al.Body, "Gi1/0/18") {
			t.Errorf("relay_moved alert for a new port = %+v, want it to name Gi1/0/18", al)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert when the relay's address moved to another port")
	}
	// A lookup that finds nothing is not a move.
	step(locate.Location{Addr: h.relay, Status: locate.NotFound})
	select {
	case al := <-h.sent.ch:
		t.Errorf("alert for a relay lookup that found nothing: %+v", al)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestLocateNow: "locate now" queues a lookup whatever the refresh says,
// and says when location is off.
func TestLocateNow(t *testing.T) {
	h := newLocHarness(t, true)
	pc := netip.MustParseAddr("10.20.0.50")
	for range 2 {
		if err := h.svc.LocateNow(pc); err != nil {
			t.Fatalf("LocateNow() = %v", err)
		}
		h.loc.waitCalls(t, 1)
	}
	off := *h.cfg
	off.Locate.Switches = nil
	h.svc.SetConfig(&off)
	if err := h.svc.LocateNow(pc); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("LocateNow() without switches = %v, want the not-configured error", err)
	}
	h.svc.Observe(blockedBy(netip.MustParseAddr("10.20.0.51")))
	h.loc.noMoreCalls(t)
	h.svc.SetConfig(h.cfg)
	if err := h.svc.LocateNow(pc); err != nil {
		t.Errorf("LocateNow() after switches are configured again = %v", err)
	}
	h.loc.waitCalls(t, 1)
}

// counterValue reads a counter's value.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestOffenderHostsCounted: relaygate_offender_hosts_total counts each
// host's first offence once, by its kind; relays and repeat offences do
// not count.
func TestOffenderHostsCounted(t *testing.T) {
	h := newLocHarness(t, false)
	pc, printer := netip.MustParseAddr("10.20.0.50"), netip.MustParseAddr("10.20.0.60")
	for range 3 {
		h.svc.Observe(blockedBy(pc))
	}
	h.svc.Observe(event.Event{Kind: event.WouldBlock, Client: printer})
	h.svc.Observe(blockedBy(printer))
	h.svc.Observe(event.Event{Kind: event.Relayed, Client: h.relay, Relay: "mail-relay"})
	for kind, want := range map[string]float64{"blocked": 1, "would_block": 1, "refused": 0} {
		if got := counterValue(t, h.svc.offenders.WithLabelValues(kind)); got != want {
			t.Errorf("relaygate_offender_hosts_total{kind=%q} = %v, want %v", kind, got, want)
		}
	}
}
