package export

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaygate/relaygate/config"
)

// Sender timing and batching.
const (
	dialTimeout  = 10 * time.Second
	writeTimeout = 10 * time.Second
	minBackoff   = time.Second
	maxBackoff   = 10 * time.Second
	// cursorEvery is how often the cursor file is written while sending;
	// it is also written when the spool runs empty and on stop.
	cursorEvery = 200 * time.Millisecond
	// batchLines and batchBytes bound one write.
	batchLines = 64
	batchBytes = 64 << 10
)

// sender sends one collector's spool, from its cursor, in order.
type sender struct {
	log   *slog.Logger
	cfg   config.ExportCollector
	spool *Spool
	tls   *tls.Config
	// notify wakes the sender when records were spooled.
	notify chan struct{}
	now    func() time.Time

	// cur is the open connection, nil when none.
	cur  atomic.Pointer[conn]
	sent atomic.Uint64

	mu      sync.Mutex
	lastErr string
	tokens  float64
	refill  time.Time
}

func newSender(log *slog.Logger, cfg config.ExportCollector, sp *Spool) (*sender, error) {
	s := &sender{log: log, cfg: cfg, spool: sp, notify: make(chan struct{}, 1), now: time.Now}
	if cfg.Transport == "tls" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		s.tls = tc
	}
	return s, nil
}

// tlsConfig verifies the collector's certificate against ca_file (the
// system roots when empty) for server_name (the address's host when
// empty), with a client certificate when cert_file is set.
func tlsConfig(c config.ExportCollector) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(c.Address)
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if c.ServerName != "" {
		tc.ServerName = c.ServerName
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("export collector %s: ca_file: %w", c.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("export collector %s: ca_file %s: no PEM certificate", c.Name, c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("export collector %s: cert_file: %w", c.Name, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (s *sender) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *sender) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastErr = ""
		return
	}
	s.lastErr = err.Error()
}

func (s *sender) lastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// conn is a connection to the collector; dead closes when the collector
// closed it or it failed. A syslog collector never sends anything, so any
// read that returns means the connection is gone: checking dead before a
// write keeps records from being written into a connection the collector
// already closed (the kernel would accept them and lose them).
type conn struct {
	net.Conn
	dead chan struct{}
}

func (s *sender) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	var c net.Conn
	var err error
	switch s.cfg.Transport {
	case "udp":
		c, err = d.DialContext(ctx, "udp", s.cfg.Address)
	case "tcp":
		c, err = d.DialContext(ctx, "tcp", s.cfg.Address)
	case "tls":
		td := tls.Dialer{NetDialer: &d, Config: s.tls}
		c, err = td.DialContext(ctx, "tcp", s.cfg.Address)
	default:
		err = fmt.Errorf("unknown transport %q", s.cfg.Transport)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", s.cfg.Transport, s.cfg.Address, err)
	}
	cn := &conn{Conn: c, dead: make(chan struct{})}
	if s.cfg.Transport == "udp" {
		return cn, nil
	}
	go func() {
		defer close(cn.dead)
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	return cn, nil
}

// connected reports whether a connection is open and not closed by the
// collector.
func (s *sender) connected() bool {
	c := s.cur.Load()
	return c != nil && !c.isDead()
}

func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// frame frames one line for the transport: RFC 6587 octet counting for
// RFC 5424 over a stream, a newline for JSON lines over a stream, the
// bare line in a UDP datagram (RFC 5426).
func (s *sender) frame(dst, line []byte) []byte {
	switch {
	case s.cfg.Transport == "udp":
		return append(dst, line...)
	case s.cfg.Format == FormatJSON:
		dst = append(dst, line...)
		return append(dst, '\n')
	default:
		dst = strconv.AppendInt(dst, int64(len(line)), 10)
		dst = append(dst, ' ')
		return append(dst, line...)
	}
}

// take waits until n lines may be sent under the collector's rate (a
// token bucket of one second's worth).
func (s *sender) take(ctx context.Context, n int) error {
	rate := float64(s.cfg.Rate)
	for {
		s.mu.Lock()
		now := s.now()
		if s.refill.IsZero() {
			s.tokens, s.refill = rate, now
		}
		s.tokens = min(rate, s.tokens+now.Sub(s.refill).Seconds()*rate)
		s.refill = now
		if s.tokens >= float64(n) {
			s.tokens -= float64(n)
			s.mu.Unlock()
			return nil
		}
		wait := time.Duration((float64(n) - s.tokens) / rate * float64(time.Second))
		s.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// run sends until ctx ends, then persists the cursor.
func (s *sender) run(ctx context.Context) {
	var c *conn
	backoff := minBackoff
	lastPersist := time.Time{}
	persisted := true
	var stopClose func() bool
	closeConn := func() {
		if c != nil {
			stopClose()
			c.Close()
			c = nil
		}
		s.cur.Store(nil)
	}
	defer closeConn()
	var buf []byte
	for ctx.Err() == nil {
		items, err := s.spool.Read(min(batchLines, s.cfg.Rate), batchBytes)
		if err != nil {
			s.log.Error("read export spool", "collector", s.cfg.Name, "err", err)
		}
		if len(items) == 0 {
			if !persisted {
				if err := s.spool.Persist(); err != nil {
					s.log.Warn("persist export cursor", "collector", s.cfg.Name, "err", err)
				}
				persisted = true
			}
			select {
			case <-ctx.Done():
				return
			case <-s.notify:
			case <-time.After(time.Second):
			}
			continue
		}
		if c != nil && c.isDead() {
			closeConn()
		}
		if c == nil {
			if c, err = s.dial(ctx); err != nil {
				s.fail(ctx, err, &backoff)
				continue
			}
			// Stopping the sender must not wait for a write to a stuck
			// collector: closing the connection ends the write.
			cn := c
			stopClose = context.AfterFunc(ctx, func() { cn.Close() })
			s.cur.Store(c)
			s.setErr(nil)
			s.log.Info("export collector connected", "collector", s.cfg.Name, "address", s.cfg.Address, "transport", s.cfg.Transport)
		}
		if err := s.take(ctx, len(items)); err != nil {
			return
		}
		if err := s.write(c, items, &buf); err != nil {
			closeConn()
			s.fail(ctx, err, &backoff)
			continue
		}
		backoff = minBackoff
		s.sent.Add(uint64(len(items)))
		now := s.now()
		persist := now.Sub(lastPersist) >= cursorEvery
		if err := s.spool.Advance(items[len(items)-1].Next, persist); err != nil {
			s.log.Warn("persist export cursor", "collector", s.cfg.Name, "err", err)
		}
		if persist {
			lastPersist = now
		}
		persisted = persist
	}
}

// write sends items: one write for a stream, one datagram each for UDP.
func (s *sender) write(c *conn, items []Item, buf *[]byte) error {
	if err := c.SetWriteDeadline(s.now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("write to %s: %w", s.cfg.Address, err)
	}
	if s.cfg.Transport == "udp" {
		for _, it := range items {
			if _, err := c.Write(it.Data); err != nil {
				return fmt.Errorf("send to %s: %w", s.cfg.Address, err)
			}
		}
		return nil
	}
	b := (*buf)[:0]
	for _, it := range items {
		b = s.frame(b, it.Data)
	}
	*buf = b
	if _, err := c.Write(b); err != nil {
		return fmt.Errorf("write to %s: %w", s.cfg.Address, err)
	}
	return nil
}

// fail records err and waits the backoff, doubling it.
func (s *sender) fail(ctx context.Context, err error, backoff *time.Duration) {
	if s.lastError() == "" {
		s.log.Warn("export collector unreachable; spooling", "collector", s.cfg.Name, "address", s.cfg.Address, "err", err)
	}
	s.setErr(err)
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	*backoff = min(*backoff*2, maxBackoff)
}
