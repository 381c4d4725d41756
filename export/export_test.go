package export

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// octetCollector is a syslog-over-TCP collector (RFC 6587 octet
// counting) that keeps every line; stop closes its listener and every
// connection, as a stopped rsyslog does.
type octetCollector struct {
	t  *testing.T
	ln net.Listener

	mu    sync.Mutex
	lines []string
	conns []net.Conn
}

func listenCollector(t *testing.T, addr string) *octetCollector {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port of a stopped collector may take a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &octetCollector{t: t, ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			go c.read(conn)
		}
	}()
	return c
}

func (c *octetCollector) read(conn net.Conn) {
	r := bufio.NewReader(conn)
	for {
		n, err := r.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			c.t.Errorf("octet count %q: %v", n, err)
			return
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		c.mu.Lock()
		c.lines = append(c.lines, string(buf))
		c.mu.Unlock()
	}
}

func (c *octetCollector) stop() {
	c.ln.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

func (c *octetCollector) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// ids counts each record id among lines.
func ids(t *testing.T, lines []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range lines {
		p, err := parseRFC5424(l)
		if err != nil {
			t.Fatalf("parseRFC5424(%q) = %v", l, err)
		}
		out[p.Params["client"]]++
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExporterCollectorDownAndRestart: events recorded while the
// collector is down wait in the spool and arrive exactly once after it is
// back, as do events from before; the store's observer feeds the
// exporter; metrics show the backlog while the collector is down.
func TestExporterCollectorDownAndRestart(t *testing.T) {
	col := listenCollector(t, "127.0.0.1:0")
	addr := col.ln.Addr().String()
	dataDir := t.TempDir()
	cfg := config.Default()
	cfg.Export.Syslog = []config.ExportCollector{{Name: "test", Address: addr, Transport: "tcp", Format: FormatRFC5424,
		Facility: "local0", Rate: 10000, MaxLineBytes: 2048}}
	ctx, cancel := context.WithCancel(context.Background())
	x := New(slog.New(slog.DiscardHandler), dataDir)
	x.SetConfig(cfg)
	done := make(chan struct{})
	go func() { x.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	st, err := store.Open(ctx, t.TempDir(), store.Options{EventsPerSourcePerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetObserver(x)
	record := func(from, to int) {
		for i := from; i < to; i++ {
			st.Record(event.Event{Kind: event.Blocked, Client: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})})
		}
	}
	record(0, 100)
	if err := st.Audit(ctx, store.AuditEntry{Actor: "admin", Action: "config.update"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "101 lines", 5*time.Second, func() bool { return len(col.got()) == 101 })

	col.stop()
	waitFor(t, "the exporter to see the collector gone", 5*time.Second, func() bool {
		return !x.Status()[0].Connected || len(col.got()) > 101
	})
	record(100, 300)
	waitFor(t, "200 unsent records in the spool", 5*time.Second, func() bool {
		s := x.Status()[0]
		return s.SpoolBytes > 0 && s.OldestUnsent != nil
	})
	time.Sleep(300 * time.Millisecond)
	col2 := listenCollector(t, addr)
	defer col2.stop()
	waitFor(t, "200 lines at the restarted collector", 15*time.Second, func() bool { return len(col2.got()) >= 200 })
	time.Sleep(200 * time.Millisecond)

	all := append(col.got(), col2.got()...)
	seen := ids(t, all)
	for i := range 300 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()
		if seen[a] != 1 {
			t.Errorf("event from %s arrived %d times, want exactly once", a, seen[a])
		}
	}
	if len(all) != 301 {
		t.Errorf("collector got %d lines, want 301 (300 events and one audit entry)", len(all))
	}
	s := x.Status()[0]
	if s.Sent != 301 || s.SpoolBytes != 0 || s.OldestUnsent != nil || s.Dropped[DropSpoolFull]+s.Dropped[DropQueueFull] != 0 {
		t.Errorf("Status() = %+v, want 301 sent, nothing waiting, nothing dropped", s)
	}
}
