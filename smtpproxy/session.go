package smtpproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/policy"
)

// Buffer sizes of a session: the directions that carry messages get
// ioBufSize, those that carry replies smallBufSize (more than a reply line).
// A session holds at most ioBufSize of a message in memory, whatever its size.
// A DATA block streams through dataBufSize reads and writes: the client's
// reader grows to it when DATA starts (growReader), so that idle sessions
// stay small and large messages cost few system calls.
const (
	ioBufSize    = 16 << 10
	smallBufSize = 4 << 10
	dataBufSize  = 64 << 10
)

// maxErrors ends a session after this many unrecognised or over-long
// commands (garbage, binary), as Postfix's smtpd_hard_error_limit does.
const maxErrors = 10

// errClientGone ends a session quietly.
var errClientGone = errors.New("client closed the connection")

// upstreamFailure is a failure of the remote side that ends the session
// with a 421 to the client and an upstream_error event.
type upstreamFailure struct {
	op  string // e.g. "read reply to DATA"
	err error
}

func (e *upstreamFailure) Error() string { return e.op + ": " + e.err.Error() }
func (e *upstreamFailure) Unwrap() error { return e.err }

// timedConn sets a deadline before every read and write, so that a
// session is cut only when one operation stalls for the whole timeout.
// The session's one goroutine changes rd and wd between operations.
type timedConn struct {
	net.Conn
	rd, wd time.Duration
}

func (c *timedConn) Read(b []byte) (int, error) {
	if c.rd > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.rd))
	}
	return c.Conn.Read(b)
}

func (c *timedConn) Write(b []byte) (int, error) {
	if c.wd > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.wd))
	}
	return c.Conn.Write(b)
}

// endpoint is one side of a session.
type endpoint struct {
	raw net.Conn // the TCP connection, for the splice after STARTTLS
	tc  *timedConn
	r   *bufio.Reader
	w   *bufio.Writer
}

// newClientEndpoint wraps the relay's side: messages come in, replies go out.
func newClientEndpoint(raw, c net.Conn, timeout time.Duration) *endpoint {
	tc := &timedConn{Conn: c, rd: timeout, wd: timeout}
	return &endpoint{raw: raw, tc: tc, r: getReader(tc, ioBufSize), w: getWriter(tc, smallBufSize)}
}

// newRemoteEndpoint wraps the remote's side: messages go out, replies come in.
func newRemoteEndpoint(raw, c net.Conn, timeout time.Duration) *endpoint {
	tc := &timedConn{Conn: c, rd: timeout, wd: timeout}
	return &endpoint{raw: raw, tc: tc, r: getReader(tc, smallBufSize), w: getWriter(tc, ioBufSize)}
}

// Session buffers are reused: a relay opens a session per message batch,
// and allocating ~40 KiB for each would keep the garbage collector busy at
// thousands of sessions per second.
var (
	readerPools = map[int]*sync.Pool{
		dataBufSize:  {New: func() any { return bufio.NewReaderSize(nil, dataBufSize) }},
		ioBufSize:    {New: func() any { return bufio.NewReaderSize(nil, ioBufSize) }},
		smallBufSize: {New: func() any { return bufio.NewReaderSize(nil, smallBufSize) }},
	}
	writerPools = map[int]*sync.Pool{
		ioBufSize:    {New: func() any { return bufio.NewWriterSize(nil, ioBufSize) }},
		smallBufSize: {New: func() any { return bufio.NewWriterSize(nil, smallBufSize) }},
	}
)

func getReader(r io.Reader, size int) *bufio.Reader {
	br := readerPools[size].Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func getWriter(w io.Writer, size int) *bufio.Writer {
	bw := writerPools[size].Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

// growReader gives the endpoint a reader with a buffer of size, keeping
// what the old one has buffered (pipelined bytes after a command).
func (e *endpoint) growReader(size int) {
	old := e.r
	if old.Size() >= size {
		return
	}
	var src io.Reader = e.tc
	if n := old.Buffered(); n > 0 {
		b, _ := old.Peek(n)
		src = io.MultiReader(bytes.NewReader(append([]byte(nil), b...)), e.tc)
	}
	e.r = getReader(src, size)
	if p := readerPools[old.Size()]; p != nil {
		old.Reset(nil)
		p.Put(old)
	}
}

// release returns the endpoint's buffers for reuse; the endpoint must not
// be used afterwards.
func (e *endpoint) release() {
	if e == nil {
		return
	}
	if p := readerPools[e.r.Size()]; p != nil {
		e.r.Reset(nil)
		p.Put(e.r)
	}
	if p := writerPools[e.w.Size()]; p != nil {
		e.w.Reset(nil)
		p.Put(e.w)
	}
	e.r, e.w = nil, nil
}

// transaction is the state of one mail transaction, as answered by the remote.
type transaction struct {
	from    string   // accepted MAIL FROM mailbox
	rcpts   []string // accepted recipients, at most Limits.MaxRecipients
	nrcpt   int      // accepted recipients, all
	domains []string // distinct domains of the accepted recipients
	sent    int      // RCPT commands forwarded (for recipients_per_message)
	size    int64    // BDAT octets so far
}

func (t *transaction) addRcpt(rcpt string, max int) {
	t.nrcpt++
	if len(t.rcpts) < max {
		t.rcpts = append(t.rcpts, rcpt)
	}
	d := domainOf(rcpt)
	for _, x := range t.domains {
		if x == d {
			return
		}
	}
	if len(t.domains) < 1000 {
		t.domains = append(t.domains, d)
	}
}

// relaySession relays one relay's SMTP session command by command (RFC
// 5321), like Postfix's before-queue proxy: nothing is accepted before the
// remote accepted it.
type relaySession struct {
	s     *server
	p     *Proxy
	cn    *conn
	relay policy.Relay
	ml    *MailLimits
	tlsIn string // config.TLSPassthrough or config.TLSInspect

	cl, up *endpoint
	ext    map[string]string // the remote's EHLO keywords (after the last EHLO)
	helo   string
	tls    string // "" or "inspect" once both legs are encrypted
	errs   int
	tx     transaction

	accepted int   // messages the remote accepted
	recorded bool  // the session's end is recorded already (passthrough, greeting refused)
	c2s      int64 // message octets relayed
	ended    string
}

// converse runs the session after the remote's greeting was passed on.
func (rs *relaySession) converse() error {
	for rs.ended == "" {
		if err := rs.batch(); err != nil {
			return err
		}
	}
	return nil
}

// item is one command of a pipelined group and what became of it.
type item struct {
	line  []byte // the raw line, as received
	cmd   command
	local []byte // the proxy's own reply, if the command is not forwarded
	close bool   // close the session after the local reply
	rcpt  string // RCPT mailbox
	from  string // MAIL mailbox
	path  bool   // the MAIL or RCPT path parsed
}

// groupEnders end a pipelined group (RFC 2920 section 3.1): the client
// waits for their replies before sending more.
var groupEnders = map[string]bool{"EHLO": true, "HELO": true, "DATA": true, "BDAT": true, "STARTTLS": true, "QUIT": true, "NOOP": true}

// batch reads one command, or one pipelined group of commands when the
// remote offered PIPELINING, forwards it, and passes the replies on in order.
func (rs *relaySession) batch() error {
	first, err := rs.readCommand()
	if err != nil {
		return err
	}
	items := []*item{first}
	_, pipelining := rs.ext["PIPELINING"]
	for pipelining && first.local == nil && !groupEnders[items[len(items)-1].cmd.verb] && len(items) < 1000 {
		if !rs.lineBuffered() {
			break
		}
		it, err := rs.readCommand()
		if err != nil {
			return err
		}
		items = append(items, it)
		if it.local != nil {
			break
		}
	}

	// Decide and forward.
	forwarded := false
	for _, it := range items {
		if it.local == nil {
			rs.decide(it)
		}
		if it.local == nil {
			if _, err := rs.up.w.Write(it.line); err != nil {
				return &upstreamFailure{"send " + it.cmd.verb, err}
			}
			forwarded = true
			if it.cmd.verb == "BDAT" {
				// The chunk follows its command at once (BDAT ends a group).
				if err := rs.bdatChunk(it); err != nil {
					return err
				}
			}
		}
	}
	if forwarded {
		if err := rs.up.w.Flush(); err != nil {
			return &upstreamFailure{"send commands", err}
		}
	}

	// Replies, in order.
	for _, it := range items {
		if it.local != nil {
			rs.cl.w.Write(it.local)
			if it.close {
				rs.ended = "closed after: " + strings.TrimSpace(string(it.local))
				return rs.cl.w.Flush()
			}
			continue
		}
		timeout := rs.cn.lim.CommandTimeout
		if _, last, _ := parseBDAT(it.cmd.arg); it.cmd.verb == "BDAT" && last {
			timeout = rs.cn.lim.DataTimeout
		}
		rp, err := rs.readReply(it.cmd.verb, timeout)
		if err != nil {
			return err
		}
		if err := rs.handleReply(it, rp); err != nil {
			return err
		}
		if rs.ended != "" {
			return nil
		}
	}
	// Replies wait while more pipelined commands are already here (RFC
	// 2920 section 3.2); before waiting for the client, they go out.
	if !pipelining || !rs.lineBuffered() {
		if err := rs.cl.w.Flush(); err != nil {
			return errClientGone
		}
	}
	return nil
}

// lineBuffered reports whether a whole command line is already buffered.
func (rs *relaySession) lineBuffered() bool {
	n := rs.cl.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := rs.cl.r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// readCommand reads and checks one command line from the client.
func (rs *relaySession) readCommand() (*item, error) {
	rs.cl.tc.rd = rs.cn.lim.CommandTimeout
	line, err := readLine(rs.cl.r, maxCmdLine)
	if errors.Is(err, errLineTooLong) {
		return rs.syntaxError(localReply(500, "5.5.2", "Line too long")), nil
	}
	if err != nil {
		if isTimeout(err) {
			rs.cl.w.Write(localReply(421, "4.4.2", "Timeout, closing connection"))
			rs.cl.w.Flush()
			return nil, fmt.Errorf("closed after %s idle", rs.cn.lim.CommandTimeout)
		}
		return nil, errClientGone
	}
	cmd, ok := parseCommand(line)
	if !ok {
		return rs.syntaxError(localReply(500, "5.5.2", "Syntax error, command unrecognized")), nil
	}
	return &item{line: append([]byte(nil), line...), cmd: cmd}, nil
}

func (rs *relaySession) syntaxError(r []byte) *item {
	rs.errs++
	it := &item{local: r}
	if rs.errs >= maxErrors {
		it.local = append(r, localReply(421, "4.7.0", "Too many errors, closing connection")...)
		it.close = true
	}
	return it
}

// decide answers a command locally (a limit, a command the proxy does not
// relay) or leaves it to be forwarded.
func (rs *relaySession) decide(it *item) {
	now := rs.p.now()
	rs.ml = rs.p.mailLimits.Load() // live: SetMailLimits reaches open sessions
	switch it.cmd.verb {
	case "RSET":
		// Reset now, not at the reply: commands pipelined behind RSET
		// belong to the next transaction.
		rs.tx = transaction{}
	case "HELO", "EHLO", "NOOP", "VRFY", "EXPN", "HELP", "DATA", "QUIT":
	case "MAIL":
		it.from, it.path = parsePath(it.cmd.arg, "FROM:")
		rs.tx = transaction{}
		if !it.path {
			return // the remote answers the syntax error
		}
		key := event.SenderKey(it.from)
		switch lim := rs.p.limiter; {
		case rs.ml.RelayMessagesPerMinute > 0 && !lim.relayMsgs.Allow(rs.relay.Name, rs.ml.RelayMessagesPerMinute, now):
			rs.deferLimit(it, 451, "4.7.1", fmt.Sprintf("Too many messages from relay %s this minute, try again later", rs.relay.Name),
				fmt.Sprintf("relay_messages_per_minute=%d", rs.ml.RelayMessagesPerMinute))
		case lim.burst.Held(key, now):
			rs.deferLimit(it, 451, "4.7.1", fmt.Sprintf("Sender <%s> is held: it sends far above its usual rate, try again later", it.from),
				"burst hold")
		case rs.ml.SenderMessagesPerMinute > 0 && !lim.senderMsgs.Allow(key, rs.ml.SenderMessagesPerMinute, now):
			rs.deferLimit(it, 451, "4.7.1", fmt.Sprintf("Too many messages from sender <%s> this minute, try again later", it.from),
				fmt.Sprintf("sender_messages_per_minute=%d", rs.ml.SenderMessagesPerMinute))
		}
	case "RCPT":
		it.rcpt, it.path = parsePath(it.cmd.arg, "TO:")
		if !it.path {
			return
		}
		dom := domainOf(it.rcpt)
		if n := rs.ml.RecipientsPerMessage; n > 0 && rs.tx.sent >= n {
			// RFC 5321 section 4.5.3.1.10: 452 makes the client send the
			// remaining recipients in a later transaction.
			rs.deferLimit(it, 452, "4.5.3", "Too many recipients", fmt.Sprintf("recipients_per_message=%d", n))
			return
		}
		if n := rs.ml.DomainMessagesPerMinute[dom]; n > 0 && !rs.p.limiter.domainMsgs.Allow(dom, n, now) {
			rs.deferLimit(it, 451, "4.7.1", fmt.Sprintf("Too many messages to %s this minute, try again later", dom),
				fmt.Sprintf("domain_messages_per_minute[%s]=%d", dom, n))
			return
		}
		rs.tx.sent++
	case "BDAT":
		if _, _, ok := parseBDAT(it.cmd.arg); !ok {
			// The chunk's length is unknown: the stream cannot be followed.
			it.local, it.close = localReply(501, "5.5.4", "Syntax: BDAT <size> [LAST]"), true
		}
	case "STARTTLS":
		switch {
		case rs.tls != "":
			it.local = localReply(503, "5.5.1", "TLS already active")
		case rs.cl.r.Buffered() > 0:
			// RFC 3207 section 5: nothing may follow STARTTLS in clear;
			// bytes that do could be injected into the TLS session.
			it.local, it.close = localReply(421, "4.7.0", "Data after STARTTLS, closing connection"), true
		}
	default:
		// AUTH, XCLIENT, ETRN, ...: the proxy does not advertise them.
		it.local = localReply(502, "5.5.1", "Command not implemented")
	}
}

// deferLimit answers it with a limit's 4xx and records a deferred event.
func (rs *relaySession) deferLimit(it *item, code int, enh, text, limit string) {
	it.local = localReply(code, enh, text)
	from := rs.tx.from
	if it.cmd.verb == "MAIL" {
		from = it.from
	}
	var rcpt []string
	if it.rcpt != "" {
		rcpt = []string{it.rcpt}
	}
	now := rs.p.now()
	rs.p.metrics.deferrals.WithLabelValues(limitName(limit)).Inc()
	rs.p.recordDeferral(event.Event{
		Time: now, Kind: event.Deferred,
		Client: rs.cn.src, Server: rs.cn.dst.Addr(), ServerPort: rs.cn.dst.Port(),
		Relay: rs.relay.Name, Helo: rs.helo, MailFrom: from, Rcpt: rcpt,
		Code: code, Detail: fmt.Sprintf("%d %s %s (%s)", code, enh, text, limit), TLS: rs.tls,
	}, limit)
	rs.cn.log.Debug("deferred by a limit", "relay", rs.relay.Name, "limit", limit, "mail_from", from, "rcpt", it.rcpt)
}

// limitName is a limit's name for the metric label.
func limitName(limit string) string {
	name, _, _ := strings.Cut(limit, "=")
	name, _, _ = strings.Cut(name, "[")
	return strings.ReplaceAll(name, " ", "_")
}

// readReply reads the remote's reply to verb within timeout.
func (rs *relaySession) readReply(verb string, timeout time.Duration) (reply, error) {
	rs.up.tc.rd = timeout
	rp, err := readReply(rs.up.r)
	if err != nil {
		return reply{}, &upstreamFailure{"read reply to " + verb, err}
	}
	return rp, nil
}

// handleReply passes the remote's reply to a forwarded command on and
// follows the session's state.
func (rs *relaySession) handleReply(it *item, rp reply) error {
	ok := rp.code/100 == 2
	out := rp.raw
	switch it.cmd.verb {
	case "EHLO":
		if ok {
			var exts map[string]string
			out, exts = filterEHLO(rp, rs.offerTLS(rp))
			rs.ext = exts
		}
		fallthrough
	case "HELO":
		if ok {
			rs.helo = truncateString(it.cmd.arg, 255)
			rs.tx = transaction{}
		}
	case "MAIL":
		if ok {
			// Keep tx.sent: RCPTs pipelined behind this MAIL are counted already.
			rs.tx.from = it.from
		}
	case "RCPT":
		if ok && it.path {
			rs.tx.addRcpt(it.rcpt, rs.cn.lim.MaxRecipients)
		}
	case "DATA":
		rs.cl.w.Write(out)
		if rp.code != 354 {
			return nil
		}
		if err := rs.cl.w.Flush(); err != nil {
			return errClientGone
		}
		return rs.data()
	case "STARTTLS":
		rs.cl.w.Write(out)
		if rp.code != 220 {
			return nil
		}
		return rs.startTLS()
	case "QUIT":
		rs.cl.w.Write(out)
		rs.cl.w.Flush()
		rs.ended = "QUIT"
		return nil
	case "BDAT":
		_, last, _ := parseBDAT(it.cmd.arg)
		switch {
		case !ok:
			// RFC 3030 section 2: a failed chunk fails the transaction.
			rs.tx = transaction{}
		case last:
			rs.messageAccepted(rs.tx.size, rp)
			rs.tx = transaction{}
		}
	}
	rs.cl.w.Write(out)
	return nil
}

// offerTLS says whether STARTTLS is offered to the client: only if the
// remote offered it (never weaker, never stronger than without the box)
// and the session is not encrypted yet.
func (rs *relaySession) offerTLS(ehlo reply) bool {
	if rs.tls != "" {
		return false
	}
	for _, l := range ehlo.lines()[1:] {
		if len(l) > 4 && strings.EqualFold(strings.TrimSpace(l[4:]), "STARTTLS") {
			return true
		}
	}
	return false
}

// data streams a DATA block from the client to the remote, byte for
// byte, and passes the remote's final reply on. What the scanner consumed
// goes to the remote straight from the client's read buffer: a large
// block is written as it was read, without a copy.
func (rs *relaySession) data() error {
	var d dataScanner
	rs.cl.growReader(dataBufSize)
	rs.cl.tc.rd = rs.cn.lim.CommandTimeout
	rs.up.tc.wd = rs.cn.lim.CommandTimeout
	held := 0 // octets the scanner left for more input
	for {
		if rs.cl.r.Buffered() <= held {
			if _, err := rs.cl.r.Peek(held + 1); err != nil {
				// The remote sees no end mark and drops the message.
				if isTimeout(err) {
					rs.cl.w.Write(localReply(421, "4.4.2", "Timeout during DATA, closing connection"))
					rs.cl.w.Flush()
					return fmt.Errorf("closed in DATA after %s idle", rs.cn.lim.CommandTimeout)
				}
				return errClientGone
			}
		}
		p, _ := rs.cl.r.Peek(rs.cl.r.Buffered())
		n, done, err := d.scan(p)
		if err != nil {
			// Abort the remote's transaction by closing: it never sees an
			// end mark, so it accepts nothing.
			rs.cl.w.Write(localReply(554, "5.5.2", "Message refused: bare <CR> or <LF> in the end-of-data sequence"))
			rs.cl.w.Flush()
			rs.ended = "smuggling attempt"
			rs.cn.log.Warn("DATA with a bare CR or LF end-of-data sequence, session closed", "relay", rs.relay.Name)
			return nil
		}
		if _, werr := rs.up.w.Write(p[:n]); werr != nil {
			return &upstreamFailure{"send DATA", werr}
		}
		rs.cl.r.Discard(n)
		if done {
			break
		}
		held = len(p) - n
	}
	if err := rs.up.w.Flush(); err != nil {
		return &upstreamFailure{"send DATA", err}
	}
	rs.c2s += d.size
	rp, err := rs.readReply("end of DATA", rs.cn.lim.DataTimeout)
	if err != nil {
		return err
	}
	rs.cl.w.Write(rp.raw)
	if rp.code/100 == 2 {
		rs.messageAccepted(d.size, rp)
	}
	rs.tx = transaction{}
	return nil
}

// bdatChunk copies one BDAT chunk (RFC 3030) of exactly the announced
// size from the client to the remote; its command line is already buffered
// for the remote.
func (rs *relaySession) bdatChunk(it *item) error {
	size, _, _ := parseBDAT(it.cmd.arg)
	rs.cl.tc.rd = rs.cn.lim.CommandTimeout
	buf := make([]byte, min(size, ioBufSize))
	for left := size; left > 0; {
		n, err := rs.cl.r.Read(buf[:min(left, int64(len(buf)))])
		if n > 0 {
			if _, werr := rs.up.w.Write(buf[:n]); werr != nil {
				return &upstreamFailure{"send BDAT chunk", werr}
			}
			left -= int64(n)
			rs.c2s += int64(n)
		}
		if err != nil && left > 0 {
			// The remote sees a short chunk and no more: it drops the message.
			if isTimeout(err) {
				rs.cl.w.Write(localReply(421, "4.4.2", "Timeout during BDAT, closing connection"))
				rs.cl.w.Flush()
				return fmt.Errorf("closed in BDAT after %s idle", rs.cn.lim.CommandTimeout)
			}
			return errClientGone
		}
	}
	rs.tx.size += size
	return nil
}

// messageAccepted counts a message the remote accepted and records it.
func (rs *relaySession) messageAccepted(size int64, rp reply) {
	p := rs.p
	now := p.now()
	rs.accepted++
	p.metrics.messages.Inc()
	key := event.SenderKey(rs.tx.from)
	lim := p.limiter
	lim.relayMsgs.Add(rs.relay.Name, 1, now)
	lim.senderMsgs.Add(key, 1, now)
	for _, d := range rs.tx.domains {
		lim.domainMsgs.Add(d, 1, now)
		p.addSeries(seriesDomainMessages, d, now, 1)
	}
	p.record(event.Event{
		Time: now, Kind: event.Relayed,
		Client: rs.cn.src, Server: rs.cn.dst.Addr(), ServerPort: rs.cn.dst.Port(),
		Relay: rs.relay.Name, Helo: rs.helo, MailFrom: rs.tx.from, Rcpt: append([]string(nil), rs.tx.rcpts...),
		RcptDropped: rs.tx.nrcpt - len(rs.tx.rcpts),
		Code:        rp.code, Messages: 1, Size: size, Bytes: size, Reply: rp.text(), TLS: rs.tls,
		Detail: fmt.Sprintf("recipients: %d", rs.tx.nrcpt),
	})
	if b := lim.burst.Observe(key, now); b != nil {
		detail := fmt.Sprintf("sender <%s> sent %d messages this minute, baseline %.1f per minute (factor %g, min %d)",
			rs.tx.from, b.Messages, b.Baseline, rs.ml.Burst.Factor, rs.ml.Burst.MinMessages)
		if !b.HeldUntil.IsZero() {
			detail += fmt.Sprintf("; held (451 4.7.1) until %s", b.HeldUntil.UTC().Format(time.RFC3339))
		}
		p.metrics.bursts.Inc()
		p.record(event.Event{
			Time: now, Kind: event.Alert,
			Client: rs.cn.src, Server: rs.cn.dst.Addr(), ServerPort: rs.cn.dst.Port(),
			Relay: rs.relay.Name, MailFrom: rs.tx.from, Messages: b.Messages, Detail: detail,
		})
		rs.cn.log.Warn("sender burst", "relay", rs.relay.Name, "mail_from", rs.tx.from, "messages", b.Messages, "baseline", b.Baseline, "held_until", b.HeldUntil)
	}
}

// startTLS follows the remote's 220 to STARTTLS: passthrough splices the
// encrypted bytes end to end; inspect terminates TLS on both legs.
func (rs *relaySession) startTLS() error {
	if err := rs.cl.w.Flush(); err != nil {
		return errClientGone
	}
	if rs.tlsIn == config.TLSInspect && rs.p.inspector != nil {
		return rs.inspectTLS()
	}
	rs.passthrough()
	return nil
}

// passthrough splices the raw connections once both sides start TLS.
// Bytes already read past the 220 (none from a well-behaved peer) are
// passed on first, unchanged.
func (rs *relaySession) passthrough() {
	if n := rs.cl.r.Buffered(); n > 0 {
		b, _ := rs.cl.r.Peek(n)
		rs.up.tc.Write(b)
	}
	if n := rs.up.r.Buffered(); n > 0 {
		b, _ := rs.up.r.Peek(n)
		rs.cl.tc.Write(b)
	}
	_ = rs.cl.raw.SetDeadline(time.Time{})
	_ = rs.up.raw.SetDeadline(time.Time{})
	res := splice(rs.cl.raw, rs.up.raw, rs.cn.lim.IdleTimeout)
	p := rs.p
	p.metrics.bytes.WithLabelValues(dirClientToServer).Add(float64(res.c2s))
	p.metrics.bytes.WithLabelValues(dirServerToClient).Add(float64(res.s2c))
	detail := fmt.Sprintf("STARTTLS passthrough: spliced %d/%d encrypted bytes; envelope not visible", res.c2s, res.s2c)
	switch {
	case res.idle:
		detail += fmt.Sprintf("; closed after %s idle", rs.cn.lim.IdleTimeout)
	case rs.s.hard.Err() != nil:
		detail += "; closed at shutdown"
	case res.err != nil:
		detail += "; " + res.err.Error()
	}
	p.record(event.Event{
		Time: rs.cn.start, Kind: event.Relayed,
		Client: rs.cn.src, Server: rs.cn.dst.Addr(), ServerPort: rs.cn.dst.Port(),
		Relay: rs.relay.Name, Helo: rs.helo, Bytes: res.c2s, TLS: config.TLSPassthrough, Detail: detail,
	})
	rs.ended = "STARTTLS passthrough"
	rs.recorded = true
}

// inspectTLS terminates the client's TLS with a certificate of the box's
// CA, then starts TLS onward (the remote already answered 220). If the
// onward handshake fails the client, already encrypted, gets 421: a
// session the client protected never goes on in clear.
func (rs *relaySession) inspectTLS() error {
	ctx, cancel := context.WithTimeout(rs.s.hard, rs.cn.lim.CommandTimeout)
	defer cancel()
	_ = rs.cl.raw.SetDeadline(time.Time{})
	_ = rs.up.raw.SetDeadline(time.Time{})
	ctls := tls.Server(rs.cl.raw, rs.p.inspector.serverConfig(rs.cn.dst.Addr()))
	if err := ctls.HandshakeContext(ctx); err != nil {
		rs.ended = "client TLS handshake failed"
		rs.cn.log.Info("client TLS handshake failed", "relay", rs.relay.Name, "err", err)
		return nil
	}
	sni := ctls.ConnectionState().ServerName
	utls := tls.Client(rs.up.raw, onwardTLSConfig(sni))
	if err := utls.HandshakeContext(ctx); err != nil {
		rs.cl = newClientEndpoint(rs.cl.raw, ctls, rs.cn.lim.CommandTimeout)
		rs.cl.w.Write(localReply(421, "4.7.0", "TLS with the destination failed, try again later"))
		rs.cl.w.Flush()
		return &upstreamFailure{"TLS handshake", err}
	}
	lim := rs.cn.lim
	rs.cl = newClientEndpoint(rs.cl.raw, ctls, lim.CommandTimeout)
	rs.up = newRemoteEndpoint(rs.up.raw, utls, lim.CommandTimeout)
	// RFC 3207 section 4.2: both sides forget what they knew; the client
	// starts again with EHLO.
	rs.tls = config.TLSInspect
	rs.ext, rs.helo, rs.tx = nil, "", transaction{}
	rs.cn.log.Debug("TLS inspected", "relay", rs.relay.Name, "sni", sni, "onward_version", tls.VersionName(utls.ConnectionState().Version))
	return nil
}

// onwardTLSConfig is TLS toward the remote MX in inspect mode:
// opportunistic, like Postfix's smtp_tls_security_level=may. The box only
// knows the MX's address (TPROXY keeps no name), and most MXs' certificates
// would not verify against it, so verification is off; the relay's own
// policy (DANE, MTA-STS) cannot be applied through an inspecting box.
func onwardTLSConfig(sni string) *tls.Config {
	return &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, //nolint:gosec // opportunistic TLS, see above
		MinVersion:         tls.VersionTLS12,
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
