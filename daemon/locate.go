package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/locate"
	"github.com/relaygate/relaygate/policy"
	"github.com/relaygate/relaygate/reputation"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

// Bounds of the location service.
const (
	// locateQueue bounds the lookups and alerts waiting for a worker;
	// beyond it they are dropped and counted.
	locateQueue = 256
	// locateWorkers is how many lookups run at once.
	locateWorkers = 2
	// locateTracked bounds the addresses whose last lookup and first
	// alert the service remembers.
	locateTracked = 65536
	// minLookupTimeout bounds one whole lookup (several switches, several
	// requests each) from below; it is at least 10 SNMP timeouts.
	minLookupTimeout = 30 * time.Second
)

// newSNMPLocator builds the SNMP locator of cfg.
func newSNMPLocator(cfg config.Locate, log *slog.Logger) locate.Locator {
	return locate.New(cfg, log)
}

// Alerts sends alerts to the configured channels (*reputation.Alerter).
type Alerts interface {
	Send(ctx context.Context, al reputation.Alert)
}

// locateJob is one piece of background work for an address.
type locateJob struct {
	addr netip.Addr
	// relay is the relay's name when addr is a relay's.
	relay string
	// alert is the kind of the host's first offence, to alert on; "" none.
	alert event.Kind
	// lookup asks the switches.
	lookup bool
}

// locService finds where offending hosts and relays are plugged in, in
// the background: Observe sees every recorded event and never blocks; a
// bounded queue feeds locateWorkers workers. It also sends the alert of a
// host's first offence, with the location when it is known, and the relay
// spoofing alarm.
type locService struct {
	log        *slog.Logger
	store      *store.Store
	recorder   event.Recorder
	newLocator func(config.Locate, *slog.Logger) locate.Locator
	now        func() time.Time
	// alerts is set before run starts; nil sends none.
	alerts Alerts

	mu      sync.Mutex
	cfg     config.Locate
	loc     locate.Locator
	relays  *policy.Policy
	last    map[netip.Addr]time.Time // last lookup queued
	alerted map[netip.Addr]bool      // first offence alerted

	queue   chan locateJob
	lookups *prometheus.CounterVec
	drops   prometheus.Counter
	// offenders counts hosts' first offences (the first alerted).
	offenders *prometheus.CounterVec
}

// newLocService returns the service for cfg; newLocator builds the
// locator when cfg names switches.
func newLocService(log *slog.Logger, st *store.Store, rec event.Recorder, cfg *config.Config,
	newLocator func(config.Locate, *slog.Logger) locate.Locator) *locService {
	l := &locService{
		log: log.With("component", "locate"), store: st, recorder: rec, newLocator: newLocator, now: time.Now,
		last: map[netip.Addr]time.Time{}, alerted: map[netip.Addr]bool{},
		queue: make(chan locateJob, locateQueue),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relaygate_locate_lookups_total",
			Help: "Switch-port lookups of host addresses, by status (found, mac_only, not_found, failed)."}, []string{"status"}),
		drops: prometheus.NewCounter(prometheus.CounterOpts{Name: "relaygate_locate_queue_drops_total",
			Help: "Lookups and alerts dropped because the location queue was full."}),
		offenders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relaygate_offender_hosts_total",
			Help: "Hosts seen offending for the first time since the daemon started, by the kind of that first event (blocked, would_block, refused)."}, []string{"kind"}),
	}
	for _, k := range []event.Kind{event.Blocked, event.WouldBlock, event.Refused} {
		l.offenders.WithLabelValues(string(k))
	}
	for _, s := range []locate.Status{locate.Found, locate.MACOnly, locate.NotFound, locate.Failed} {
		l.lookups.WithLabelValues(string(s))
	}
	l.SetConfig(cfg)
	return l
}

// Collectors returns the service's metrics.
func (l *locService) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.lookups, l.drops, l.offenders}
}

// SetConfig applies a new configuration: a new locator when locate.*
// changed (none when no switch is configured), the relays for the
// spoofing alarm of LocateNow.
func (l *locService) SetConfig(c *config.Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.relays = policy.New(c)
	if l.loc != nil && reflect.DeepEqual(l.cfg, c.Locate) {
		return
	}
	l.cfg, l.loc = c.Locate, nil
	if len(c.Locate.Switches) > 0 && l.newLocator != nil {
		l.loc = l.newLocator(c.Locate, l.log)
	}
}

// lookupTimeout bounds one lookup.
func (l *locService) lookupTimeout() time.Duration {
	return max(minLookupTimeout, 10*l.cfg.Timeout.D())
}

// Observe schedules the work an event calls for: the alert of a host's
// first blocked, would_block or refused event, and a lookup of that host
// or of a relaying relay at most every locate.refresh. It never blocks:
// when the queue is full the work is dropped and counted.
func (l *locService) Observe(e event.Event) {
	var job locateJob
	switch e.Kind {
	case event.Blocked, event.WouldBlock, event.Refused:
	case event.Relayed:
		if e.Relay == "" {
			return
		}
		job.relay = e.Relay
	default:
		return
	}
	job.addr = e.Client.Unmap().WithZone("")
	if !job.addr.IsValid() {
		return
	}
	now := l.now()
	l.mu.Lock()
	l.bound(now)
	if job.relay == "" && !l.alerted[job.addr] {
		l.alerted[job.addr] = true
		job.alert = e.Kind
	}
	if l.loc != nil {
		if t, ok := l.last[job.addr]; !ok || now.Sub(t) >= l.cfg.Refresh.D() {
			l.last[job.addr] = now
			job.lookup = true
		}
	}
	l.mu.Unlock()
	if !job.lookup && job.alert == "" {
		return
	}
	select {
	case l.queue <- job:
		// Counted once queued: a dropped first offence is retried, and
		// counted, with the host's next event.
		if job.alert != "" {
			l.offenders.WithLabelValues(string(job.alert)).Inc()
		}
	default:
		l.drops.Inc()
		// A later event of the host tries again.
		l.mu.Lock()
		if job.lookup && l.last[job.addr].Equal(now) {
			delete(l.last, job.addr)
		}
		if job.alert != "" {
			delete(l.alerted, job.addr)
		}
		l.mu.Unlock()
	}
}

// bound keeps the remembered addresses under locateTracked: lookups older
// than the refresh are forgotten first, everything when that is not
// enough. Called with mu held.
func (l *locService) bound(now time.Time) {
	if len(l.last) >= locateTracked {
		for a, t := range l.last {
			if now.Sub(t) >= l.cfg.Refresh.D() {
				delete(l.last, a)
			}
		}
		if len(l.last) >= locateTracked {
			clear(l.last)
		}
	}
	if len(l.alerted) >= locateTracked {
		clear(l.alerted)
	}
}

// LocateNow queues a lookup of addr now, whatever the refresh says.
func (l *locService) LocateNow(addr netip.Addr) error {
	addr = addr.Unmap().WithZone("")
	l.mu.Lock()
	on := l.loc != nil
	relay, isRelay := l.relays.Relay(addr)
	if on {
		l.last[addr] = l.now()
	}
	l.mu.Unlock()
	if !on {
		return webui.ErrLocationOff
	}
	job := locateJob{addr: addr, lookup: true}
	if isRelay {
		job.relay = relay.Name
	}
	select {
	case l.queue <- job:
		return nil
	default:
		l.drops.Inc()
		return webui.ErrLocateBusy
	}
}

// run serves the queue with locateWorkers workers until ctx ends.
func (l *locService) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range locateWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-l.queue:
					l.handle(ctx, job)
				}
			}
		}()
	}
	wg.Wait()
}

func (l *locService) handle(ctx context.Context, job locateJob) {
	// The alert first: it never waits for a lookup.
	if job.alert != "" {
		l.alertOffender(ctx, job)
	}
	if job.lookup {
		l.lookup(ctx, job)
	}
}

// alertOffender sends the alert of a host's first offence, naming where
// the host is when the store knows it.
func (l *locService) alertOffender(ctx context.Context, job locateJob) {
	if l.alerts == nil {
		return
	}
	rec, ok, err := l.store.Location(ctx, job.addr)
	if err != nil {
		l.log.Warn("location for an alert", "addr", job.addr.String(), "err", err)
	}
	var where *store.LocationRecord
	if ok {
		where = &rec
	}
	l.alerts.Send(ctx, offenderAlert(l.now(), job.addr, job.alert, where))
}

// offenderAlert is the alert of a host's first blocked, would_block or
// refused attempt.
func offenderAlert(now time.Time, addr netip.Addr, kind event.Kind, where *store.LocationRecord) reputation.Alert {
	host := describeHost(addr, where)
	verb := map[event.Kind]string{
		event.Blocked:    "was blocked sending mail directly to the internet",
		event.WouldBlock: "sends mail directly to the internet (would be blocked in enforce mode)",
		event.Refused:    "was refused sending mail directly to the internet",
	}[kind]
	body := fmt.Sprintf("%s %s (%s).", host, verb, kind)
	if where != nil && where.Status == locate.Found && !where.SeenAt.IsZero() {
		body += fmt.Sprintf("\nSeen on %s %s at %s.", where.Switch, where.Port, where.SeenAt.UTC().Format(time.RFC3339))
	}
	return reputation.Alert{Time: now, Subject: host + ": direct SMTP " + string(kind), Body: body}
}

// describeHost names a host with what is known of it, e.g.
// 10.20.0.50 (aa:bb:cc:dd:ee:ff, Dell Inc.) on access-2 Gi1/0/17 '3F room 12'.
func describeHost(addr netip.Addr, where *store.LocationRecord) string {
	var b strings.Builder
	b.WriteString(addr.String())
	if where == nil || where.MAC == "" {
		return b.String()
	}
	b.WriteString(" (" + where.MAC)
	if where.Vendor != "" {
		b.WriteString(", " + where.Vendor)
	}
	b.WriteString(")")
	if where.Status == locate.Found && where.Switch != "" {
		fmt.Fprintf(&b, " on %s %s", where.Switch, where.Port)
		if where.PortDescription != "" {
			fmt.Fprintf(&b, " '%s'", where.PortDescription)
		}
	}
	return b.String()
}

// lookup asks the switches where job.addr is, stores the answer and, for
// a relay, raises the spoofing alarm when the relay's address moved.
func (l *locService) lookup(ctx context.Context, job locateJob) {
	l.mu.Lock()
	loc, timeout := l.loc, l.lookupTimeout()
	l.mu.Unlock()
	if loc == nil {
		return
	}
	prev, hadPrev, err := l.store.Location(ctx, job.addr)
	if err != nil {
		l.log.Warn("previous location", "addr", job.addr.String(), "err", err)
		hadPrev = false
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	res, err := loc.Locate(lctx, job.addr)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		res = locate.Location{Status: locate.Failed, Error: err.Error()}
	}
	res.Addr = job.addr
	if res.SeenAt.IsZero() {
		res.SeenAt = l.now()
	}
	switch res.Status {
	case locate.Found, locate.MACOnly, locate.NotFound, locate.Failed:
	default:
		res.Error = fmt.Sprintf("locator answered an unknown status %q", res.Status)
		res.Status = locate.Failed
	}
	l.lookups.WithLabelValues(string(res.Status)).Inc()
	if err := l.store.SaveLocation(ctx, res); err != nil {
		l.log.Error("save location", "addr", job.addr.String(), "err", err)
	}
	if job.relay != "" && hadPrev && moved(prev.Location, res) {
		l.relayMoved(ctx, job, prev.Location, res)
	}
}

// moved reports whether the address of a relay is now somewhere else than
// where it was found before: another MAC, or another switch port.
func moved(prev, now locate.Location) bool {
	if prev.MAC != "" && now.MAC != "" && prev.MAC != now.MAC {
		return true
	}
	return prev.Status == locate.Found && now.Status == locate.Found &&
		(prev.Switch != now.Switch || prev.Port != now.Port)
}

// relayMoved records and sends the relay spoofing alarm.
func (l *locService) relayMoved(ctx context.Context, job locateJob, prev, now locate.Location) {
	was := describeHost(job.addr, &store.LocationRecord{Location: prev})
	is := describeHost(job.addr, &store.LocationRecord{Location: now})
	detail := fmt.Sprintf("relay_moved: the address of relay %s was %s, now %s: someone may be using the relay's address to get mail out",
		job.relay, was, is)
	subject := fmt.Sprintf("relay_moved: relay %s (%s) seen at another MAC or port", job.relay, job.addr)
	l.log.Warn("alert", "subject", subject, "was_mac", prev.MAC, "mac", now.MAC, "was_port", prev.Switch+" "+prev.Port, "port", now.Switch+" "+now.Port)
	t := l.now()
	if l.recorder != nil {
		l.recorder.Record(event.Event{Time: t, Kind: event.Alert, Client: job.addr, Relay: job.relay, Detail: detail})
	}
	if l.alerts != nil {
		l.alerts.Send(ctx, reputation.Alert{Time: t, Subject: subject, Body: detail})
	}
}

var _ Alerts = (*reputation.Alerter)(nil)
