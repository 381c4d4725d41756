// Package smtpproxy is relaygate's transparent SMTP proxy. The kernel
// (nftables TPROXY, set up by package bridge) delivers every diverted
// port-25 connection to one listening socket; an accepted connection's
// LocalAddr is the original destination (the remote MX) and its RemoteAddr
// is the client.
//
// For every connection the proxy asks the Policy whether the client is an
// approved relay:
//
//   - A relay is connected onward to its original destination from its own
//     address (see TransparentDialer) and its session is relayed command by
//     command (session.go): the remote's greeting and replies pass back
//     unchanged, EHLO offers only the extensions the proxy relays, messages
//     are streamed byte for byte, and the end of DATA is answered only with
//     the remote's reply. Limits (MailLimits) answer 4xx and record a
//     "deferred" event. One "relayed" event is recorded per accepted
//     message; "upstream_error" when the destination fails. After STARTTLS
//     the encrypted bytes are spliced end to end (policy passthrough) or
//     both legs are terminated with the box's CA (policy inspect).
//   - Any other source gets the refusal dialogue (go-smtp server side):
//     220, EHLO answered, MAIL FROM accepted, every RCPT TO and DATA
//     answered "554 5.7.1 <reject text>", so that the whole envelope is kept
//     as evidence. One "blocked" event is recorded when the session ends.
//
// Connection limits keep a bot from starving the relays: a non-relay source
// may hold at most Limits.MaxConnsPerSource connections, and non-relays
// together may use MaxConns minus a reserve kept for relays. A connection
// over a cap is answered 421 and closed.
//
// Events carry the time the connection was accepted.
package smtpproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/sourcekey"
	"github.com/relaygate/relaygate/policy"
)

// Policy decides who is a relay. *policy.Policy satisfies it; it must be
// safe for concurrent use.
type Policy interface {
	// Relay returns the relay that addr belongs to, if any.
	Relay(addr netip.Addr) (policy.Relay, bool)
	// Reject returns the text that follows "554 5.7.1 " in the refusal dialogue.
	Reject() string
}

var _ Policy = (*policy.Policy)(nil)

// Dialer opens the onward connection of a relay's session.
type Dialer interface {
	// Dial connects to dst from the client's own address src. The proxy
	// bounds ctx with Limits.ConnectTimeout.
	Dial(ctx context.Context, src netip.Addr, dst netip.AddrPort) (net.Conn, error)
}

// Limits bound the proxy's resources. Zero fields take the defaults of
// package config.
type Limits struct {
	// MaxConnsPerSource caps concurrent connections from one non-relay source, e.g. 4.
	MaxConnsPerSource int
	// MaxConns caps all concurrent connections, e.g. 4096. Non-relays may
	// only use MaxConns minus a reserve for relays (see NonRelayCap).
	MaxConns int
	// MaxRecipients bounds how many RCPT TO a refused session records, e.g. 100.
	MaxRecipients int
	// IdleTimeout ends a connection with no traffic in either direction, e.g. 5m.
	IdleTimeout time.Duration
	// RefusalTimeout bounds a whole refusal dialogue, e.g. 60s.
	RefusalTimeout time.Duration
	// ConnectTimeout bounds the onward connection to the original destination, e.g. 30s.
	ConnectTimeout time.Duration
	// CommandTimeout bounds, in a relayed session, the wait for each
	// command line and for each read or write of a DATA or BDAT block on
	// the client side, and for each reply of the remote, e.g. 5m (RFC 5321
	// section 4.5.3.2: 5 minutes for MAIL, RCPT and the server's wait for
	// a command). Default: IdleTimeout.
	CommandTimeout time.Duration
	// DataTimeout bounds the wait for the remote's reply to the end of a
	// message, e.g. 10m (RFC 5321 section 4.5.3.2.6). Default: twice
	// CommandTimeout.
	DataTimeout time.Duration
}

// LimitsFromConfig converts the proxy section of the configuration.
func LimitsFromConfig(p config.Proxy) Limits {
	return Limits{
		MaxConnsPerSource: p.MaxConnsPerSource,
		MaxConns:          p.MaxConns,
		MaxRecipients:     p.MaxRecipients,
		IdleTimeout:       p.IdleTimeout.D(),
		RefusalTimeout:    p.RefusalTimeout.D(),
		ConnectTimeout:    p.ConnectTimeout.D(),
	}.withDefaults()
}

func (l Limits) withDefaults() Limits {
	if l.MaxConnsPerSource <= 0 {
		l.MaxConnsPerSource = config.DefaultMaxConnsPerSource
	}
	if l.MaxConns <= 0 {
		l.MaxConns = config.DefaultMaxConns
	}
	if l.MaxRecipients <= 0 {
		l.MaxRecipients = config.DefaultMaxRecipients
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = config.DefaultIdleTimeout
	}
	if l.RefusalTimeout <= 0 {
		l.RefusalTimeout = config.DefaultRefusalTimeout
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = config.DefaultConnectTimeout
	}
	if l.CommandTimeout <= 0 {
		l.CommandTimeout = l.IdleTimeout
	}
	if l.DataTimeout <= 0 {
		l.DataTimeout = 2 * l.CommandTimeout
	}
	return l
}

// NonRelayCap is how many connections non-relays may hold together: MaxConns
// minus a reserve of a tenth (at least one), so that a flood of bot
// connections never locks the relays out. It is at least 1.
func (l Limits) NonRelayCap() int {
	l = l.withDefaults()
	return max(1, l.MaxConns-max(1, l.MaxConns/10))
}

// Options configure a Proxy. Recorder, Dialer and Policy are required.
type Options struct {
	// Logger receives the proxy's logs; default slog.Default().
	Logger *slog.Logger
	// Recorder receives the events; it must not block for long.
	Recorder event.Recorder
	// Dialer opens relays' onward connections (TransparentDialer in production).
	Dialer Dialer
	// Policy is the initial relay policy; replace it with SetPolicy.
	Policy Policy
	// Limits are the initial limits; replace them with SetLimits.
	Limits Limits
	// Hostname names the box in the refusal dialogue's 220 greeting, e.g.
	// relaygate.example.net; default "relaygate" (not os.Hostname, which
	// may be an internal name).
	Hostname string
	// MailLimits are the initial limits of relays' mail (zero: unlimited);
	// replace them with SetMailLimits.
	MailLimits MailLimits
	// TLSPolicies maps relay names to their STARTTLS policy
	// (config.TLSPassthrough, the default, or config.TLSInspect); replace
	// them with SetTLSPolicies.
	TLSPolicies map[string]string
	// Series, if set, receives per-minute counts of relayed and deferred
	// messages (*store.Store satisfies it).
	Series Series
	// DataDir holds the CA of the inspect policy (see LoadOrCreateCA);
	// empty: no inspect CA, and inspect relays are passed through.
	DataDir string
	// Now is the clock of limits and events; default time.Now.
	Now func() time.Time
	// DivertedOnly closes, at once and without a reply, every connection
	// that did not arrive through the kernel's divert. A diverted
	// connection's local address is its original destination: an SMTP port
	// of a host elsewhere. A connection to the listener's own port, or to
	// one of the box's own addresses, was made to the box itself (from
	// the LAN, the management network or the box) and is not the proxy's
	// business. The daemon sets it; tests that serve a plain listener
	// leave it off.
	DivertedOnly bool
	// ShutdownGrace is how long Serve waits for open sessions to finish
	// after its context is cancelled before it closes them; default 5s.
	ShutdownGrace time.Duration
}

// DefaultShutdownGrace is the default of Options.ShutdownGrace.
const DefaultShutdownGrace = 5 * time.Second

// policyBox lets an interface value live in an atomic.Pointer.
type policyBox struct{ Policy }

// Proxy is the transparent SMTP proxy. Create it with New; it is safe for
// concurrent use, and Serve may run on several listeners at once.
type Proxy struct {
	logger   *slog.Logger
	recorder event.Recorder
	dialer   Dialer
	hostname string
	grace    time.Duration
	metrics  *metrics

	series    Series
	now       func() time.Time
	limiter   *limiter
	inspector *inspector // nil: no inspect CA

	divertedOnly bool
	own          *ownAddrs
	undivLog     eventThrottle[struct{}] // the undiverted-connection warning, once per eventEvery

	policy      atomic.Pointer[policyBox]
	limits      atomic.Pointer[Limits]
	mailLimits  atomic.Pointer[MailLimits]
	tlsPolicies atomic.Pointer[map[string]string]
	nextID      atomic.Uint64

	mu        sync.Mutex
	total     int                  // open connections, relays included
	perSource map[netip.Prefix]int // open non-relay connections by source (sourcekey: IPv4 address, IPv6 /64)

	// Events that floods would repeat, at most one per key and minute.
	refusals         eventThrottle[netip.Prefix] // by source (sourcekey), at the connection caps
	deferrals        eventThrottle[deferralKey]
	upstreamRefusals eventThrottle[upstreamKey]
}

// New checks the options and sets every default.
func New(opts Options) (*Proxy, error) {
	if opts.Recorder == nil {
		return nil, errors.New("smtpproxy: Options.Recorder is nil")
	}
	if opts.Dialer == nil {
		return nil, errors.New("smtpproxy: Options.Dialer is nil")
	}
	if opts.Policy == nil {
		return nil, errors.New("smtpproxy: Options.Policy is nil")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	p := &Proxy{
		logger:    logger.With("component", "smtpproxy"),
		recorder:  opts.Recorder,
		dialer:    opts.Dialer,
		hostname:  opts.Hostname,
		grace:     opts.ShutdownGrace,
		metrics:   newMetrics(),
		perSource: map[netip.Prefix]int{},
		series:    opts.Series,
		now:       opts.Now,
		limiter:   newLimiter(),

		divertedOnly: opts.DivertedOnly,
		own:          newOwnAddrs(),
	}
	if p.now == nil {
		p.now = time.Now
	}
	if opts.DataDir != "" {
		ca, err := LoadOrCreateCA(opts.DataDir)
		if err != nil {
			return nil, err
		}
		p.inspector = newInspector(ca)
	}
	if p.hostname == "" {
		p.hostname = "relaygate"
	}
	if p.grace <= 0 {
		p.grace = DefaultShutdownGrace
	}
	p.SetPolicy(opts.Policy)
	p.SetLimits(opts.Limits)
	p.SetMailLimits(opts.MailLimits)
	p.SetTLSPolicies(opts.TLSPolicies)
	return p, nil
}

// SetMailLimits replaces the limits of relays' mail; the counts so far
// (messages this minute, senders' baselines and holds) are kept.
func (p *Proxy) SetMailLimits(l MailLimits) {
	p.mailLimits.Store(&l)
	p.limiter.burst.SetConfig(l.Burst)
}

// SetTLSPolicies replaces the relays' STARTTLS policies (by relay name);
// connections accepted from now on use them.
func (p *Proxy) SetTLSPolicies(m map[string]string) {
	p.tlsPolicies.Store(&m)
	if p.inspector != nil {
		return
	}
	for relay, pol := range m {
		if pol == config.TLSInspect {
			p.logger.Warn("relay has tls: inspect but the proxy has no inspect CA (no data_dir); its STARTTLS is passed through", "relay", relay)
		}
	}
}

func (p *Proxy) tlsPolicy(relay string) string {
	if pol := (*p.tlsPolicies.Load())[relay]; pol == config.TLSInspect {
		return pol
	}
	return config.TLSPassthrough
}

func (p *Proxy) addSeries(metric, key string, t time.Time, delta int64) {
	if p.series != nil {
		p.series.AddSeries(metric, key, t, delta)
	}
}

// SetPolicy replaces the policy; connections accepted from now on use it,
// open ones keep the decision they were admitted with. A nil policy is ignored.
func (p *Proxy) SetPolicy(pol Policy) {
	if pol == nil {
		return
	}
	p.policy.Store(&policyBox{pol})
}

// SetLimits replaces the limits (zero fields take defaults); connections
// accepted from now on use them.
func (p *Proxy) SetLimits(l Limits) {
	l = l.withDefaults()
	p.limits.Store(&l)
}

// Collectors returns the proxy's Prometheus metrics, to be registered by
// the caller.
func (p *Proxy) Collectors() []prometheus.Collector { return p.metrics.collectors() }

// Serve accepts connections on ln until ctx is cancelled. It then closes
// ln, waits up to Options.ShutdownGrace for open sessions to end, closes
// the rest and returns nil once every goroutine it started has ended. An
// accept error other than a transient one is returned.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	// Sessions outlive ctx by the grace period; hard is cancelled after it.
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	s := &server{p: p, hard: hard, cl: newChanListener(ln.Addr()), lnPort: addrOf(ln.Addr()).Port()}
	s.smtp = p.newSMTPServer()
	smtpDone := make(chan struct{})
	go func() {
		defer close(smtpDone)
		if err := s.smtp.Serve(s.cl); err != nil && !errors.Is(err, net.ErrClosed) {
			p.logger.Error("refusal server stopped", "err", err)
		}
	}()

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	p.logger.Info("serving", "listen", ln.Addr().String())

	var acceptErr error
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if isTransient(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				p.logger.Warn("accept failed, retrying", "err", err, "retry_in", delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			acceptErr = fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			break
		}
		delay = 0
		s.live.Add(1)
		s.routines.Add(1)
		go s.handle(c)
	}
	ln.Close()

	drained := make(chan struct{})
	go func() {
		s.live.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(p.grace):
		p.logger.Info("closing open sessions after the shutdown grace period", "grace", p.grace)
	}
	hardCancel()
	<-drained
	s.routines.Wait()
	s.cl.Close()
	sctx, cancel := context.WithTimeout(context.Background(), p.grace)
	defer cancel()
	if err := s.smtp.Shutdown(sctx); err != nil {
		p.logger.Warn("refusal server shutdown", "err", err)
	}
	<-smtpDone
	return acceptErr
}

// isTransient reports accept errors after which accepting can go on.
func isTransient(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// admit counts a new connection in, or says which cap it is over. The
// per-source cap counts sources as sourcekey does (an IPv6 /64 is one
// source), as the kernel's flood limit does.
func (p *Proxy) admit(src netip.Addr, relay bool, l Limits) (ok bool, reason string) {
	key := sourcekey.Key(src)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case relay && p.total >= l.MaxConns:
		return false, "max_conns"
	case !relay && p.perSource[key] >= l.MaxConnsPerSource:
		return false, "max_conns_per_source"
	case !relay && p.total >= l.NonRelayCap():
		return false, "max_conns"
	}
	p.total++
	if !relay {
		p.perSource[key]++
	}
	return true, ""
}

// release counts a connection out.
func (p *Proxy) release(src netip.Addr, relay bool) {
	key := sourcekey.Key(src)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total--
	if !relay {
		if p.perSource[key] <= 1 {
			delete(p.perSource, key)
		} else {
			p.perSource[key]--
		}
	}
}

// deferralKey names what one deferred event stands for: a relay, a limit
// (with its value) and the envelope sender, if any.
type deferralKey struct{ relay, limit, sender string }

// recordDeferral records a deferred event for limit, unless one for the
// same relay, limit and sender was recorded within eventEvery.
func (p *Proxy) recordDeferral(e event.Event, limit string) {
	recordThrottled(p, &p.deferrals, deferralKey{e.Relay, limit, event.SenderKey(e.MailFrom)}, e,
		"deferred by this limit", "counted in the deferred series")
}

// upstreamKey names a relay's destination, for upstream_error events of
// sessions that never started (connection failed, greeting refused): a
// relay retrying its queue against a dead or refusing MX would otherwise
// record one per attempt.
type upstreamKey struct {
	relay  string
	server netip.Addr
}

// recordUpstreamRefusal records an upstream_error event of a session that
// never started, unless one for the same relay and destination was
// recorded within eventEvery.
func (p *Proxy) recordUpstreamRefusal(e event.Event) {
	recordThrottled(p, &p.upstreamRefusals, upstreamKey{e.Relay, e.Server}, e,
		"sessions to this destination failed the same way", "counted in relaygate_proxy_upstream_errors_total")
}

// recordThrottled records e if th lets key through; the detail of a
// recorded event then says how many were held back before it.
func recordThrottled[K comparable](p *Proxy, th *eventThrottle[K], key K, e event.Event, what, counted string) {
	ok, held, since := th.allow(key, p.now())
	if !ok {
		p.tally(e)
		return
	}
	if held > 0 {
		e.Detail += fmt.Sprintf("; %d more %s since %s (%s, not recorded one by one)",
			held, what, since.UTC().Format("15:04:05Z"), counted)
	}
	p.record(e)
}

func (p *Proxy) record(e event.Event) {
	e.Normalize()
	p.recorder.Record(e)
}

// tally counts an event that a throttle held back, where the recorder
// counts events (event.Tallier): the per-minute series count every one.
func (p *Proxy) tally(e event.Event) {
	if t, ok := p.recorder.(event.Tallier); ok {
		e.Normalize()
		t.Tally(e)
	}
}

// server is one Serve call's state.
type server struct {
	p    *Proxy
	hard context.Context // cancelled when open sessions must close
	cl   *chanListener   // feeds refusal sessions to smtp
	smtp *smtp.Server
	// lnPort is the listener's own port: a connection to it was not diverted.
	lnPort uint16

	live     sync.WaitGroup // open sessions
	routines sync.WaitGroup // our goroutines
}

// conn is what every handler knows about its connection.
type conn struct {
	id    uint64
	start time.Time
	src   netip.Addr
	dst   netip.AddrPort
	log   *slog.Logger
	lim   Limits
}

// handle runs one accepted connection's admission and hands it to the
// relay or refusal path.
func (s *server) handle(c net.Conn) {
	p := s.p
	log := p.logger
	// done ends the session (live.Done, and after admission the release of
	// its slot); it belongs to this function until the refusal path takes
	// it over, and runs once whoever calls it.
	done := s.live.Done
	defer func() {
		if r := recover(); r != nil {
			p.metrics.panics.Inc()
			log.Error("panic in connection handler", "panic", r)
			c.Close()
		}
		if done != nil {
			done()
		}
		s.routines.Done()
	}()
	cn := &conn{
		id:    p.nextID.Add(1),
		start: time.Now(),
		src:   addrOf(c.RemoteAddr()).Addr().Unmap().WithZone(""),
		dst:   unmapPort(addrOf(c.LocalAddr())),
		lim:   *p.limits.Load(),
	}
	cn.log = connLogger(p.logger, slog.Uint64("conn_id", cn.id), slog.Any("client", cn.src), slog.Any("orig_dst", cn.dst))
	log = cn.log
	if !cn.src.IsValid() || !cn.dst.IsValid() {
		log.Warn("connection without IP addresses, closed", "remote", c.RemoteAddr().String(), "local", c.LocalAddr().String())
		c.Close()
		return
	}

	if p.divertedOnly && s.undiverted(cn.dst) {
		p.metrics.undiverted.Inc()
		if ok, held, _ := p.undivLog.allow(struct{}{}, p.now()); ok {
			log.Warn("connection that did not come through the divert closed (to the proxy's own port or one of the box's addresses)",
				"closed_since_last_warning", held)
		}
		c.Close()
		return
	}

	pol := p.policy.Load().Policy
	relay, isRelay := pol.Relay(cn.src)
	if ok, reason := p.admit(cn.src, isRelay, cn.lim); !ok {
		s.refuse(c, cn, isRelay, relay, reason)
		return
	}
	class := classBlocked
	if isRelay {
		class = classRelay
	}
	p.metrics.conns.WithLabelValues(class).Inc()
	p.metrics.active.WithLabelValues(class).Inc()
	done = sync.OnceFunc(func() {
		p.metrics.active.WithLabelValues(class).Dec()
		p.release(cn.src, isRelay)
		s.live.Done()
	})
	if isRelay {
		s.relay(c, cn, relay)
		return
	}
	s.refusal(c, cn, pol.Reject(), done)
	done = nil // the refusal connection's Close calls it
}

// refuse answers a connection over a cap with 421 and closes it.
func (s *server) refuse(c net.Conn, cn *conn, isRelay bool, relay policy.Relay, reason string) {
	p := s.p
	defer c.Close()
	text := "Too many connections from your address"
	if reason == "max_conns" {
		text = "Too many connections, try again later"
	}
	c.SetWriteDeadline(time.Now().Add(min(cn.lim.IdleTimeout, 10*time.Second)))
	fmt.Fprintf(c, "421 4.7.0 %s\r\n", text)

	class, kind := classRefused, event.Refused
	if isRelay {
		class, kind = classDeferred, event.Deferred
		// A relay over proxy.max_conns is a deferral like any other limit's.
		p.metrics.deferrals.WithLabelValues(limitName(reason)).Inc()
	}
	p.metrics.conns.WithLabelValues(class).Inc()
	cn.log.Debug("connection over cap refused", "cap", reason, "relay", relay.Name)
	e := event.Event{
		Time:       cn.start,
		Kind:       kind,
		Client:     cn.src,
		Server:     cn.dst.Addr(),
		ServerPort: cn.dst.Port(),
		Relay:      relay.Name,
		Code:       421,
		Detail:     fmt.Sprintf("421 4.7.0 %s (%s); further refusals of this source within %s are not recorded one by one (counted in the series)", text, reason, eventEvery),
	}
	if ok, _, _ := p.refusals.allow(sourcekey.Key(cn.src), cn.start); ok {
		p.record(e)
	} else {
		p.tally(e)
	}
}

// addrOf converts a net.Addr into an AddrPort; invalid if it has no IP.
func addrOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func unmapPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}
