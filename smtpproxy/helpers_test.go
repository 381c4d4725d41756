package smtpproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/policy"
)

const (
	testHostname = "relaygate.test"
	testReject   = "Direct SMTP from this host is not permitted."
)

// eventOpts compare events without their time (checked separately).
var eventOpts = cmp.Options{
	cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}),
	cmpopts.IgnoreFields(event.Event{}, "Time"),
}

// fakeRecorder keeps events in memory.
type fakeRecorder struct {
	mu     sync.Mutex
	events []event.Event
	notify chan struct{}
}

func newFakeRecorder() *fakeRecorder { return &fakeRecorder{notify: make(chan struct{})} }

func (r *fakeRecorder) Record(e event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	close(r.notify)
	r.notify = make(chan struct{})
}

func (r *fakeRecorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

// wait returns the events once there are n of them.
func (r *fakeRecorder) wait(t *testing.T, n int) []event.Event {
	t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		r.mu.Lock()
		evs, ch := append([]event.Event(nil), r.events...), r.notify
		r.mu.Unlock()
		if len(evs) >= n {
			return evs
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("recorder: %d events after 5s, want %d: %+v", len(evs), n, evs)
		}
	}
}

// dialCall is one call of fakeDialer.
type dialCall struct {
	Src netip.Addr
	Dst netip.AddrPort
}

// fakeDialer dials target (the fake MX) instead of the original
// destination, or fails with err.
type fakeDialer struct {
	target netip.AddrPort
	err    error
	block  bool // wait for the context to end
	opaque bool // hide the *net.TCPConn, so the proxy copies in user space

	mu    sync.Mutex
	calls []dialCall
}

func (d *fakeDialer) Dial(ctx context.Context, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	d.mu.Lock()
	d.calls = append(d.calls, dialCall{src, dst})
	d.mu.Unlock()
	if d.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if d.err != nil {
		return nil, d.err
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", d.target.String())
	if err != nil || !d.opaque {
		return c, err
	}
	return struct{ net.Conn }{c}, nil
}

func (d *fakeDialer) dialed() []dialCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dialCall(nil), d.calls...)
}

// testPolicy builds a real policy with the given relays (name: prefix).
func testPolicy(t testing.TB, relays ...string) *policy.Policy {
	t.Helper()
	c := config.Default()
	c.RejectText = testReject
	for i := 0; i+1 < len(relays); i += 2 {
		c.Relays = append(c.Relays, config.Relay{Name: relays[i], Address: config.MustParsePrefix(relays[i+1])})
	}
	return policy.New(c)
}

// testLimits are short enough for tests.
func testLimits() Limits {
	return Limits{
		MaxConnsPerSource: 10,
		MaxConns:          100,
		MaxRecipients:     10,
		IdleTimeout:       5 * time.Second,
		RefusalTimeout:    10 * time.Second,
		ConnectTimeout:    2 * time.Second,
	}
}

// testProxy is a running proxy on 127.0.0.1.
type testProxy struct {
	*Proxy
	addr   netip.AddrPort
	rec    *fakeRecorder
	dialer *fakeDialer
	cancel context.CancelFunc
	done   chan error
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SMTPPROXY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startProxy serves a proxy until the test ends. opts.Recorder and
// opts.Dialer default to fakes; opts.Policy to one without relays.
func startProxy(t testing.TB, opts Options) *testProxy {
	t.Helper()
	return startProxyOn(t, "127.0.0.1:0", opts)
}

// startProxyOn is startProxy listening on addr; tp.addr is then the
// address to dial: 127.0.0.1 with the port of addr.
func startProxyOn(t testing.TB, addr string, opts Options) *testProxy {
	t.Helper()
	rec := newFakeRecorder()
	if tee, ok := opts.Recorder.(teeRecorder); ok {
		rec = tee.fakeRecorder
	}
	if opts.Recorder == nil {
		opts.Recorder = rec
	}
	d, _ := opts.Dialer.(*fakeDialer)
	if opts.Dialer == nil {
		d = &fakeDialer{err: errors.New("no dialer in this test")}
		opts.Dialer = d
	}
	if opts.Policy == nil {
		opts.Policy = testPolicy(t)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Hostname == "" {
		opts.Hostname = testHostname
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 100 * time.Millisecond
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = testLimits()
	}
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	tp := &testProxy{Proxy: p, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), rec: rec, dialer: d, cancel: cancel, done: make(chan error, 1)}
	go func() { tp.done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() { tp.stop(t) })
	return tp
}

// stop cancels Serve and waits for it; idempotent.
func (tp *testProxy) stop(t testing.TB) {
	t.Helper()
	tp.cancel()
	select {
	case err, ok := <-tp.done:
		if ok && err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		if ok {
			close(tp.done)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Serve did not return 5s after cancel")
	}
}

// smtpClient speaks raw protocol lines.
type smtpClient struct {
	t       testing.TB
	conn    net.Conn
	r       *textproto.Reader
	in, out int64 // octets read and written
}

// dialFrom connects to the proxy from src (any 127/8 address is local).
func dialFrom(t testing.TB, src string, to netip.AddrPort) *smtpClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", to.String())
	if err != nil {
		t.Fatalf("dial %s from %s: %v", to, src, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc := &smtpClient{t: t, conn: c}
	sc.r = textproto.NewReader(bufio.NewReader(readerFunc(func(b []byte) (int, error) {
		n, err := c.Read(b)
		sc.in += int64(n)
		return n, err
	})))
	return sc
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// reply reads one (possibly multi-line) reply as "code text", lines
// joined with "\n"; io.EOF style errors are returned as "EOF".
func (c *smtpClient) reply() string {
	c.t.Helper()
	code, msg, err := c.r.ReadResponse(0)
	if err != nil {
		var perr textproto.ProtocolError
		if errors.As(err, &perr) {
			return "protocol error: " + perr.Error()
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return "EOF"
		}
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%d %s", code, msg)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// send writes raw bytes.
func (c *smtpClient) send(s string) {
	c.t.Helper()
	n, err := io.WriteString(c.conn, s)
	c.out += int64(n)
	if err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// cmd sends a command line and returns the reply.
func (c *smtpClient) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.reply()
}

// waitGoroutines waits until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither counter nor gauge", m.Desc())
	return 0
}
