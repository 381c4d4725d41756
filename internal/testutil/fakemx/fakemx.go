// Package fakemx is an SMTP server for tests and the lab, built on go-smtp:
// it accepts any mail and keeps every accepted message in memory. Replies
// can be scripted (refuse a recipient with 550, fail DATA with 451, ...)
// so that tests can check that a remote server's codes pass through the
// proxy unchanged.
package fakemx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted message.
type Message struct {
	// ClientAddr is the connecting client's address, IPv4 never in
	// ::ffff: mapped form.
	ClientAddr netip.Addr
	Helo       string
	From       string
	To         []string
	// Data is the message as received (dot-unstuffed, CRLF line ends).
	Data []byte
	// Time is when the end of DATA was received.
	Time time.Time
	// TLS is set when the message came over a session that started TLS.
	TLS *tls.ConnectionState
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Hostname is used in the 220 greeting; default "fakemx.test".
	Hostname string
	// Logger receives go-smtp's connection errors; default: discarded.
	Logger *slog.Logger
	// Deliver, if set, is called for every message before it is accepted,
	// after any scripted DATA reply. An error refuses the message: a bare
	// *smtp.SMTPError is sent as it is, any other error as 451 4.3.0.
	Deliver func(Message) error
	// MaxMessageBytes bounds a message; default 32 MiB.
	MaxMessageBytes int64
	// Timeout bounds every read and write; default 5 minutes.
	Timeout time.Duration
	// TLSConfig, if set, makes the server offer STARTTLS (see SelfSigned).
	TLSConfig *tls.Config
	// SMTPUTF8 and DSN advertise those extensions too.
	SMTPUTF8, DSN bool
	// Greeting, if set, replaces the 220 greeting: the server writes it
	// (e.g. "554 5.3.2 No service") and closes the connection.
	Greeting string
}

// Server is a fake MX. Create it with New or Start.
type Server struct {
	srv      *smtp.Server
	deliver  func(Message) error
	greeting string
	addr     netip.AddrPort // set by Start

	mu     sync.Mutex
	msgs   []Message
	notify chan struct{} // closed and replaced on every new message
	mail   *smtp.SMTPError
	rcpt   map[string]*smtp.SMTPError // by lower-case address
	data   *smtp.SMTPError
}

// New creates a server; serve it with Serve.
func New(opts Options) *Server {
	if opts.Hostname == "" {
		opts.Hostname = "fakemx.test"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 32 << 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	s := &Server{
		greeting: opts.Greeting,
		deliver:  opts.Deliver,
		notify:   make(chan struct{}),
		rcpt:     map[string]*smtp.SMTPError{},
	}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = opts.Hostname
	s.srv.MaxMessageBytes = opts.MaxMessageBytes
	s.srv.ReadTimeout = opts.Timeout
	s.srv.WriteTimeout = opts.Timeout
	s.srv.ErrorLog = logAdapter{opts.Logger.With("component", "fakemx")}
	s.srv.TLSConfig = opts.TLSConfig
	s.srv.EnableSMTPUTF8 = opts.SMTPUTF8
	s.srv.EnableDSN = opts.DSN
	return s
}

// Serve accepts connections on ln until Close; it may run on several
// listeners at once. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	if s.greeting != "" {
		ln = &refusingListener{Listener: ln, greeting: s.greeting}
	}
	if err := s.srv.Serve(ln); err != nil {
		return fmt.Errorf("fakemx: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Close closes all listeners and connections.
func (s *Server) Close() error {
	if err := s.srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("fakemx: close: %w", err)
	}
	return nil
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves until the test
// ends. Options are optional; at most the first is used.
func Start(t testing.TB, addr string, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s := New(o)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("fakemx: listen %s: %v", addr, err)
	}
	s.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("fakemx: %v", err)
		}
	})
	return s
}

// Addr is the listening address of a server made by Start.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// FailMail makes every MAIL FROM get reply; nil accepts again.
func (s *Server) FailMail(reply *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mail = reply
}

// RejectRcpt makes RCPT TO addr (compared without case) get reply, e.g.
// &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
// Message: "No such user"}; nil accepts it again.
func (s *Server) RejectRcpt(addr string, reply *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reply == nil {
		delete(s.rcpt, strings.ToLower(addr))
		return
	}
	s.rcpt[strings.ToLower(addr)] = reply
}

// FailData makes the end of every DATA get reply (the message is not
// kept); nil accepts again.
func (s *Server) FailData(reply *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = reply
}

// Messages returns the accepted messages, oldest first. The messages'
// slices are shared: do not modify them.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitFor waits until at least n messages were accepted and returns them,
// or returns an error with those there are after timeout.
func (s *Server) WaitFor(n int, timeout time.Duration) ([]Message, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		msgs, ch := append([]Message(nil), s.msgs...), s.notify
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return msgs, fmt.Errorf("fakemx: %d of %d messages after %s", len(msgs), n, timeout)
		}
	}
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.notify)
	s.notify = make(chan struct{})
}

func (s *Server) scripted(f func() *smtp.SMTPError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := f(); r != nil {
		return r // bare *smtp.SMTPError: go-smtp sends it as it is
	}
	return nil
}

type backend struct{ s *Server }

var _ smtp.Backend = backend{}

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	var client netip.Addr
	if a, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		client = a.AddrPort().Addr().Unmap()
	}
	return &session{s: b.s, c: c, client: client}, nil
}

type session struct {
	s      *Server
	c      *smtp.Conn
	client netip.Addr
	from   string
	to     []string
}

var _ smtp.Session = (*session)(nil)

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if err := ss.s.scripted(func() *smtp.SMTPError { return ss.s.mail }); err != nil {
		return err
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.s.scripted(func() *smtp.SMTPError { return ss.s.rcpt[strings.ToLower(to)] }); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		// go-smtp's own errors (message too large) are SMTPErrors.
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Error reading message"}
	}
	if err := ss.s.scripted(func() *smtp.SMTPError { return ss.s.data }); err != nil {
		return err
	}
	m := Message{
		ClientAddr: ss.client,
		Helo:       ss.c.Hostname(),
		From:       ss.from,
		To:         append([]string(nil), ss.to...),
		Data:       data,
		Time:       time.Now(),
	}
	if cs, ok := ss.c.TLSConnectionState(); ok {
		m.TLS = &cs
	}
	if ss.s.deliver != nil {
		if err := ss.s.deliver(m); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				return se
			}
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error, try again later"}
		}
	}
	ss.s.add(m)
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// logAdapter routes go-smtp's log lines into slog.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a logAdapter) Println(v ...any)               { a.l.Debug(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

// refusingListener greets every connection with a fixed reply and closes it.
type refusingListener struct {
	net.Listener
	greeting string
}

func (l *refusingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, l.greeting+"\r\n")
		c.Close()
	}
}

// SelfSigned returns a server configuration with a new self-signed ECDSA
// certificate for hosts (names or IP addresses), and a pool holding that
// certificate, for clients that verify it.
func SelfSigned(t testing.TB, hosts ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("fakemx: generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "fakemx"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("fakemx: create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("fakemx: parse certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, pool
}
