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

// relay runs a relay's session: connection-level limits, the onward
// connection from the client's address, the remote's greeting passed on
// as it is (so the relay sees its real peer, and Postfix's loop detection
// keeps working), then the session command by command (relaySession).
func (s *server) relay(c net.Conn, cn *conn, relay policy.Relay) {
	p := s.p
	// At shutdown (s.hard cancelled) the connections are closed under the
	// session's feet; a session that ends by itself stops the watch.
	defer c.Close()
	defer context.AfterFunc(s.hard, func() { c.Close() })()

	ml := p.mailLimits.Load()
	if !p.limiter.sessions.Acquire(relay.Name, ml.RelaySessions) {
		s.sessionLimit(c, cn, relay, fmt.Sprintf("Too many concurrent sessions from relay %s, try again later", relay.Name),
			fmt.Sprintf("relay_sessions=%d", ml.RelaySessions))
		return
	}
	defer p.limiter.sessions.Release(relay.Name)
	now := p.now()
	if !p.limiter.newSessions.TakeIfAllowed(relay.Name, ml.RelaySessionsPerMinute, now) {
		s.sessionLimit(c, cn, relay, fmt.Sprintf("Too many new sessions from relay %s this minute, try again later", relay.Name),
			fmt.Sprintf("relay_sessions_per_minute=%d", ml.RelaySessionsPerMinute))
		return
	}
	if !p.limiter.remoteMX.Admit(relay.Name, cn.dst.Addr().String(), ml.RemoteMXPerMinute, now) {
		s.sessionLimit(c, cn, relay, fmt.Sprintf("Too many distinct destinations from relay %s this minute, try again later", relay.Name),
			fmt.Sprintf("remote_mx_per_minute=%d", ml.RemoteMXPerMinute))
		return
	}

	dctx, dcancel := context.WithTimeout(s.hard, cn.lim.ConnectTimeout)
	up, err := p.dialer.Dial(dctx, cn.src, cn.dst)
	dcancel()
	if err != nil {
		s.upstreamError(c, cn, relay, err)
		return
	}
	defer up.Close()
	defer context.AfterFunc(s.hard, func() { up.Close() })()
	cn.log.Debug("onward connection open", "relay", relay.Name, "local", up.LocalAddr().String())

	rs := &relaySession{
		s: s, p: p, cn: cn, relay: relay, ml: ml, tlsIn: p.tlsPolicy(relay.Name),
		cl: newClientEndpoint(c, c, cn.lim.CommandTimeout),
		up: newRemoteEndpoint(up, up, cn.lim.CommandTimeout),
	}
	err = rs.greet()
	if err == nil {
		err = rs.converse()
	}
	s.endSession(rs, err)
	rs.cl.release()
	rs.up.release()
}

// greet passes the remote's greeting on. A greeting other than 220 (554
// "no service", 421 "busy") reaches the client as it is and ends the
// session, as it would without the box.
func (rs *relaySession) greet() error {
	rp, err := rs.readReply("greeting", rs.cn.lim.CommandTimeout)
	if err != nil {
		return err
	}
	rs.cl.w.Write(rp.raw)
	if err := rs.cl.w.Flush(); err != nil {
		return errClientGone
	}
	if rp.code != 220 {
		rs.ended = "remote greeted " + rp.text()
		rs.recorded = true
		rs.p.metrics.upstreamErrors.Inc()
		rs.p.recordUpstreamRefusal(event.Event{
			Time: rs.cn.start, Kind: event.UpstreamError,
			Client: rs.cn.src, Server: rs.cn.dst.Addr(), ServerPort: rs.cn.dst.Port(),
			Relay: rs.relay.Name, Code: rp.code, Reply: rp.text(),
			Detail: fmt.Sprintf("%s refused the session: %s", rs.cn.dst, rp.text()),
		})
	}
	return nil
}

// endSession records how a relayed session ended: upstream failures as
// upstream_error (after a 421 to the client), a session without an
// accepted message and without TLS passthrough as one relayed event with
// Messages 0, so that every session leaves a trace.
func (s *server) endSession(rs *relaySession, err error) {
	p, cn := s.p, rs.cn
	var uf *upstreamFailure
	if errors.As(err, &uf) {
		p.metrics.upstreamErrors.Inc()
		text := fmt.Sprintf("Connection to %s lost, try again later", cn.dst)
		if isTimeout(uf.err) {
			text = fmt.Sprintf("Timeout talking to %s, try again later", cn.dst)
		}
		detail := fmt.Sprintf("%s: %v", cn.dst, uf)
		if s.hard.Err() != nil {
			detail += " (at shutdown)"
		}
		if uf.op != "TLS handshake" {
			rs.cl.w.Write(localReply(421, "4.4.2", text))
			rs.cl.w.Flush()
		}
		p.record(event.Event{
			Time: p.now(), Kind: event.UpstreamError,
			Client: cn.src, Server: cn.dst.Addr(), ServerPort: cn.dst.Port(),
			Relay: rs.relay.Name, Helo: rs.helo, MailFrom: rs.tx.from, Rcpt: append([]string(nil), rs.tx.rcpts...),
			Code: 421, Detail: detail, TLS: rs.tls,
		})
		cn.log.Warn("remote side failed", "relay", rs.relay.Name, "err", uf)
		return
	}
	p.metrics.bytes.WithLabelValues(dirClientToServer).Add(float64(rs.c2s))
	ended := rs.ended
	switch {
	case s.hard.Err() != nil:
		ended = "closed at shutdown"
	case err != nil && !errors.Is(err, errClientGone):
		ended = err.Error()
	case ended == "":
		ended = "client closed the connection"
	}
	if rs.accepted == 0 && !rs.recorded {
		p.record(event.Event{
			Time: cn.start, Kind: event.Relayed,
			Client: cn.src, Server: cn.dst.Addr(), ServerPort: cn.dst.Port(),
			Relay: rs.relay.Name, Helo: rs.helo, TLS: rs.tls,
			Detail: "session without accepted messages; " + ended,
		})
	}
	cn.log.Debug("relayed session", "relay", rs.relay.Name, "messages", rs.accepted, "bytes_out", rs.c2s,
		"ended", ended, "duration", time.Since(cn.start).Round(time.Millisecond))
}

// sessionLimit answers a relay's connection over a connection-level limit
// with 421 (RFC 5321 section 3.8: the relay keeps its mail and retries)
// and records a deferred event.
func (s *server) sessionLimit(c net.Conn, cn *conn, relay policy.Relay, text, limit string) {
	p := s.p
	_ = c.SetWriteDeadline(time.Now().Add(min(cn.lim.IdleTimeout, 10*time.Second)))
	fmt.Fprintf(c, "421 4.7.0 %s\r\n", text)
	now := p.now()
	p.metrics.deferrals.WithLabelValues(limitName(limit)).Inc()
	p.recordDeferral(event.Event{
		Time: now, Kind: event.Deferred,
		Client: cn.src, Server: cn.dst.Addr(), ServerPort: cn.dst.Port(),
		Relay: relay.Name, Code: 421, Detail: fmt.Sprintf("421 4.7.0 %s (%s)", text, limit),
	}, limit)
	cn.log.Debug("session deferred by a limit", "relay", relay.Name, "limit", limit)
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
	p.recordUpstreamRefusal(event.Event{
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
