package smtpproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/relaygate/relaygate/event"
)

// maxLineLength bounds a command line of the refusal dialogue: RFC 5321
// section 4.5.3.1.4 allows 512 octets; like go-smtp we accept twice that
// and more, and answer a longer line with 500 and a close.
const maxLineLength = 2000

// missingRcptReply is what go-smtp answers to DATA (and BDAT) when no
// recipient was accepted, which in the refusal dialogue is always. go-smtp
// has no hook for it, so refusalConn rewrites exactly this reply into the
// 554 of the policy; TestRefusalDialogue catches a go-smtp upgrade that
// changes the text.
var missingRcptReply = []byte("502 5.5.1 Missing RCPT TO command.\r\n")

// newSMTPServer builds the go-smtp server that runs refusal dialogues.
// ReadTimeout and WriteTimeout stay zero: refusalConn sets deadlines from
// the limits its connection was admitted with, which SetLimits may change.
func (p *Proxy) newSMTPServer() *smtp.Server {
	srv := smtp.NewServer(backend{})
	srv.Domain = p.hostname
	srv.MaxLineLength = maxLineLength
	srv.ErrorLog = smtpLogger{p}
	return srv
}

// refusalSMTPError is the reply to every RCPT TO and DATA. It must be
// returned as a bare *smtp.SMTPError: go-smtp finds it by type assertion.
func refusalSMTPError(text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: text}
}

// refusal runs a non-relay's dialogue: it hands the connection to the
// go-smtp server, which ends it with refusalConn.Close; end is then called
// once.
func (s *server) refusal(c net.Conn, cn *conn, reject string, end func()) {
	rc := &refusalConn{
		Conn:   c,
		cn:     cn,
		end:    cn.start.Add(cn.lim.RefusalTimeout),
		reject: refusalSMTPError(reject),
	}
	rc.env.rcpt = []string{}
	stop := context.AfterFunc(s.hard, func() { rc.Close() })
	rc.finish = func() {
		stop()
		defer end()
		defer func() {
			if r := recover(); r != nil {
				s.p.metrics.panics.Inc()
				cn.log.Error("panic recording a refused session", "panic", r)
			}
		}()
		s.p.recordBlocked(rc)
	}
	if !s.cl.handoff(s.hard, rc) {
		rc.Close()
	}
}

// recordBlocked records the one event of a refusal dialogue.
func (p *Proxy) recordBlocked(rc *refusalConn) {
	cn := rc.cn
	rc.env.mu.Lock()
	e := event.Event{
		Time:        cn.start,
		Kind:        event.Blocked,
		Client:      cn.src,
		Server:      cn.dst.Addr(),
		ServerPort:  cn.dst.Port(),
		Helo:        rc.env.helo,
		MailFrom:    rc.env.mailFrom,
		Rcpt:        append([]string{}, rc.env.rcpt...),
		RcptDropped: rc.env.rcptSeen - len(rc.env.rcpt),
		Code:        554,
		Detail:      rc.reject.Message,
		Messages:    rc.env.mails,
	}
	seen := rc.env.rcptSeen
	rc.env.mu.Unlock()
	p.metrics.refusedRcpt.Add(float64(seen))
	p.record(e)
	// Every session is an event in the store; at info level a bot flood
	// would flood the log too.
	cn.log.Debug("refused non-relay session",
		"helo", e.Helo, "mail_from", e.MailFrom, "rcpt_count", seen,
		"duration", time.Since(cn.start).Round(time.Millisecond))
}

// envelope is the evidence a refusal dialogue collects, clipped as it
// arrives (event.MaxHelo, event.MaxPath): a line may be maxLineLength long,
// and a host that sends one per field must not make its evidence large.
type envelope struct {
	mu       sync.Mutex
	helo     string
	mailFrom string
	hasMail  bool
	rcpt     []string // at most Limits.MaxRecipients
	rcptSeen int      // every RCPT TO, recorded or not
	mails    int      // MAIL FROM commands: the messages attempted
}

// refusalConn is a refused client's connection as go-smtp sees it. It sets
// the deadlines (IdleTimeout per read or write, RefusalTimeout for the
// whole dialogue), turns go-smtp's answer to DATA into the policy's 554,
// keeps the envelope and ends the session exactly once.
type refusalConn struct {
	net.Conn
	cn     *conn
	end    time.Time // the whole dialogue's deadline
	reject *smtp.SMTPError
	env    envelope

	finish    func()
	closeOnce sync.Once
	closeErr  error
}

// deadline is the next read or write deadline: one idle period from now,
// at most slack past the end of the dialogue (slack lets the final 421 out).
func (c *refusalConn) deadline(slack time.Duration) time.Time {
	d := time.Now().Add(c.cn.lim.IdleTimeout)
	if e := c.end.Add(slack); e.Before(d) {
		return e
	}
	return d
}

// Read reads with a fresh deadline.
func (c *refusalConn) Read(b []byte) (int, error) {
	// An error here means the conn is closed; Read reports it.
	_ = c.Conn.SetReadDeadline(c.deadline(0))
	return c.Conn.Read(b)
}

// Write writes with a fresh deadline; go-smtp's reply to DATA without
// recipients becomes the policy's 554. go-smtp writes one reply line per
// Write (textproto flushes after each line).
func (c *refusalConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(c.deadline(time.Second))
	if bytes.Equal(b, missingRcptReply) {
		reply := fmt.Sprintf("554 5.7.1 %s\r\n", c.reject.Message)
		if _, err := io.WriteString(c.Conn, reply); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// Close closes the connection and ends the session, once.
func (c *refusalConn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.Conn.Close()
		c.finish()
	})
	return c.closeErr
}

func (c *refusalConn) noteHelo(helo string) {
	c.env.mu.Lock()
	defer c.env.mu.Unlock()
	if c.env.helo == "" {
		c.env.helo = event.Clip(helo, event.MaxHelo)
	}
}

func (c *refusalConn) noteMail(from string) {
	c.env.mu.Lock()
	defer c.env.mu.Unlock()
	c.env.mails++
	if !c.env.hasMail {
		c.env.hasMail, c.env.mailFrom = true, event.Clip(from, event.MaxPath)
	}
}

func (c *refusalConn) noteRcpt(to string) {
	c.env.mu.Lock()
	defer c.env.mu.Unlock()
	c.env.rcptSeen++
	if len(c.env.rcpt) < c.cn.lim.MaxRecipients {
		c.env.rcpt = append(c.env.rcpt, event.Clip(to, event.MaxPath))
	}
}

// backend makes a refusalSession for every connection go-smtp accepts.
type backend struct{}

var _ smtp.Backend = backend{}

// NewSession is called at the first HELO or EHLO.
func (backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	rc, ok := c.Conn().(*refusalConn)
	if !ok {
		// Only Serve feeds this server, always with a refusalConn.
		return nil, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Internal error"}
	}
	rc.noteHelo(c.Hostname())
	return &refusalSession{rc: rc, c: c}, nil
}

// refusalSession accepts MAIL FROM and refuses every recipient and DATA,
// keeping the envelope as evidence.
type refusalSession struct {
	rc *refusalConn
	c  *smtp.Conn
}

var _ smtp.Session = (*refusalSession)(nil)

// Mail accepts the sender: refusing here would lose the recipients.
func (s *refusalSession) Mail(from string, _ *smtp.MailOptions) error {
	s.rc.noteHelo(s.c.Hostname())
	s.rc.noteMail(from)
	return nil
}

// Rcpt records the recipient and refuses it.
func (s *refusalSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rc.noteRcpt(to)
	return s.rc.reject
}

// Data refuses the message. go-smtp does not call it without an accepted
// recipient (see missingRcptReply); it is here for completeness.
func (s *refusalSession) Data(r io.Reader) error {
	_, _ = io.Copy(io.Discard, r)
	return s.rc.reject
}

// Reset is called at RSET and at a repeated EHLO; the envelope keeps the
// first transaction.
func (s *refusalSession) Reset() {}

// Logout is called when go-smtp closes the connection; refusalConn.Close
// records the event, also for clients that never said HELO.
func (s *refusalSession) Logout() error { return nil }

// smtpLogger routes go-smtp's own log lines (connection errors, recovered
// panics) into slog.
type smtpLogger struct{ p *Proxy }

func (l smtpLogger) Printf(format string, v ...any) { l.log(fmt.Sprintf(format, v...)) }
func (l smtpLogger) Println(v ...any)               { l.log(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l smtpLogger) log(msg string) {
	if strings.HasPrefix(msg, "panic") {
		l.p.metrics.panics.Inc()
		l.p.logger.Error("refusal dialogue", "msg", msg)
		return
	}
	l.p.logger.Debug("refusal dialogue", "msg", msg)
}

// chanListener is the net.Listener through which Serve feeds refusal
// connections to the go-smtp server.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

var _ net.Listener = (*chanListener)(nil)

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// handoff passes c to Accept; false if the listener closed or ctx ended first.
func (l *chanListener) handoff(ctx context.Context, c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// Accept returns the next handed-off connection.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept return net.ErrClosed.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the real listener's address.
func (l *chanListener) Addr() net.Addr { return l.addr }
