package smtpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/policy"
)

// relay connects a relay's session onward to its original destination and
// splices the bytes both ways until both sides are done.
func (s *server) relay(c net.Conn, cn *conn, relay policy.Relay) {
	p := s.p
	ctx, cancel := context.WithCancel(s.hard)
	defer cancel()
	defer c.Close()
	context.AfterFunc(ctx, func() { c.Close() })

	dctx, dcancel := context.WithTimeout(ctx, cn.lim.ConnectTimeout)
	up, err := p.dialer.Dial(dctx, cn.src, cn.dst)
	dcancel()
	if err != nil {
		s.upstreamError(c, cn, relay, err)
		return
	}
	defer up.Close()
	context.AfterFunc(ctx, func() { up.Close() })
	cn.log.Debug("onward connection open", "relay", relay.Name, "local", up.LocalAddr().String())

	res := splice(c, up, cn.lim.IdleTimeout)
	p.metrics.bytes.WithLabelValues(dirClientToServer).Add(float64(res.c2s))
	p.metrics.bytes.WithLabelValues(dirServerToClient).Add(float64(res.s2c))

	detail := fmt.Sprintf("spliced %d/%d bytes", res.c2s, res.s2c)
	switch {
	case res.idle:
		detail += fmt.Sprintf("; closed after %s idle", cn.lim.IdleTimeout)
	case s.hard.Err() != nil:
		detail += "; closed at shutdown"
	case res.err != nil:
		detail += "; " + res.err.Error()
	}
	p.record(event.Event{
		Time:       cn.start,
		Kind:       event.Relayed,
		Client:     cn.src,
		Server:     cn.dst.Addr(),
		ServerPort: cn.dst.Port(),
		Relay:      relay.Name,
		Detail:     detail,
		Bytes:      res.c2s,
	})
	cn.log.Info("relayed session", "relay", relay.Name, "bytes_out", res.c2s, "bytes_in", res.s2c,
		"idle_timeout", res.idle, "err", res.err, "duration", time.Since(cn.start).Round(time.Millisecond))
}

// upstreamError tells a relay that its destination is unreachable. The
// remote never greeted, so the proxy answers in its place with 421, which
// RFC 5321 section 3.8 allows at any time; the relay keeps the mail queued
// and retries.
func (s *server) upstreamError(c net.Conn, cn *conn, relay policy.Relay, err error) {
	p := s.p
	p.metrics.upstreamErrors.Inc()
	detail := fmt.Sprintf("connect to %s from %s: %v", cn.dst, cn.src, err)
	if s.hard.Err() != nil {
		detail = fmt.Sprintf("connect to %s from %s: aborted at shutdown", cn.dst, cn.src)
	}
	_ = c.SetWriteDeadline(time.Now().Add(min(cn.lim.IdleTimeout, 10*time.Second)))
	_, werr := fmt.Fprintf(c, "421 4.4.1 Cannot connect to %s, try again later\r\n", cn.dst)
	p.record(event.Event{
		Time:       cn.start,
		Kind:       event.UpstreamError,
		Client:     cn.src,
		Server:     cn.dst.Addr(),
		ServerPort: cn.dst.Port(),
		Relay:      relay.Name,
		Code:       421,
		Detail:     detail,
	})
	cn.log.Warn("onward connection failed", "relay", relay.Name, "err", err, "reply_err", werr)
}

// spliceResult is what a splice moved and why it ended.
type spliceResult struct {
	c2s, s2c int64 // octets client to server, server to client
	idle     bool  // ended by the idle timeout
	err      error // first error other than our own close
}

// closeWriter is a connection that can half-close (*net.TCPConn).
type closeWriter interface{ CloseWrite() error }

// splice copies both ways until both directions have ended. A clean end of
// one direction is passed on as a half-close (FIN), so that neither side
// loses data that is still in flight the other way; an error ends both.
//
// Between two *net.TCPConn, io.Copy uses splice(2), which does not return
// until it is done, so the idle timeout cannot be per-read deadlines. A
// watchdog instead looks at the kernel's byte counters (TCP_INFO, see
// kernelActivity) and ends the connection only when neither socket moved
// for a whole idle period; a long transfer that keeps moving is never cut.
// Other connections are copied through counting readers.
func splice(client, upstream net.Conn, idle time.Duration) spliceResult {
	var res spliceResult
	closeBoth := func() {
		client.Close()
		upstream.Close()
	}
	var fromClient, fromUpstream io.Reader = client, upstream
	activity := combine(kernelActivity(client), kernelActivity(upstream))
	if activity == nil {
		var n atomic.Uint64
		fromClient = &countingReader{r: client, n: &n}
		fromUpstream = &countingReader{r: upstream, n: &n}
		activity = n.Load
	}

	var wg sync.WaitGroup
	var errs [2]error
	half := func(i int, dst net.Conn, src io.Reader, n *int64) {
		defer wg.Done()
		defer func() {
			if r := recover(); r != nil {
				errs[i] = fmt.Errorf("panic: %v", r)
				closeBoth()
			}
		}()
		*n, errs[i] = io.Copy(dst, src)
		if errs[i] == nil {
			if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
				return
			}
		}
		closeBoth()
	}
	wg.Add(2)
	go half(0, upstream, fromClient, &res.c2s)
	go half(1, client, fromUpstream, &res.s2c)
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	res.idle = watchIdle(done, idle, activity, closeBoth)
	<-done
	for _, err := range errs {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			res.err = err
			break
		}
	}
	return res
}

// watchIdle calls onIdle and returns true when activity has not changed for
// idle; it returns false when done is closed first.
func watchIdle(done <-chan struct{}, idle time.Duration, activity func() uint64, onIdle func()) bool {
	t := time.NewTicker(min(max(idle/8, 10*time.Millisecond), 5*time.Second))
	defer t.Stop()
	last, lastAt := activity(), time.Now()
	for {
		select {
		case <-done:
			return false
		case now := <-t.C:
			if v := activity(); v != last {
				last, lastAt = v, now
				continue
			}
			if now.Sub(lastAt) >= idle {
				onIdle()
				return true
			}
		}
	}
}

// combine sums two activity counters; nil unless both are known.
func combine(a, b func() uint64) func() uint64 {
	if a == nil || b == nil {
		return nil
	}
	return func() uint64 { return a() + b() }
}

// countingReader counts the octets read into a shared counter.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(uint64(n))
	return n, err
}
