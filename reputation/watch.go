package reputation

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// EvidenceWindow is how far back the evidence of a new listing reaches.
const EvidenceWindow = 72 * time.Hour

// EventSource is the store's event query (for the evidence of a listing).
type EventSource interface {
	// EachEvent calls fn with each event matching q, newest first, at
	// most q.Limit, a small chunk of events in memory at a time.
	EachEvent(ctx context.Context, q store.Query, fn func(event.Event) error) (more bool, err error)
}

// History keeps the blocklist checks (the store implements it).
type History interface {
	AddReputation(ctx context.Context, checks []store.ReputationCheck) error
	LastReputation(ctx context.Context) (map[string]string, error)
}

// Options configure a Watcher.
type Options struct {
	Logger   *slog.Logger
	Recorder event.Recorder
	Events   EventSource
	History  History
	Alerter  *Alerter
	// Resolver answers blocklist queries; default: a DNSClient on the
	// configured resolvers.
	Resolver Resolver
	// SPFResolver answers SPF lookups; default: a Go resolver on the
	// configured resolvers.
	SPFResolver interface {
		LookupTXT(ctx context.Context, name string) ([]string, error)
		LookupMX(ctx context.Context, name string) ([]*net.MX, error)
		LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
		LookupAddr(ctx context.Context, addr string) (names []string, err error)
	}
	// RelayDialer opens the open-relay self-test connections.
	RelayDialer Dialer
	// RelayPort is the relays' SMTP port for the self-test (default 25).
	RelayPort int
	Now       func() time.Time
}

// Snapshot is what the reputation page and API show.
type Snapshot struct {
	DNSBL      []Result      `json:"dnsbl"`
	SPF        []SPFResult   `json:"spf"`
	RelayTests []RelayTest   `json:"relay_tests"`
	Summary    SnapshotStats `json:"summary"`
	CheckedAt  time.Time     `json:"checked_at"`
}

// SnapshotStats sums up a snapshot for the dashboard.
type SnapshotStats struct {
	Listed     int `json:"listed"`
	Clean      int `json:"clean"`
	Errors     int `json:"errors"`
	SPFFailing int `json:"spf_failing"`
	OpenRelays int `json:"open_relays"`
}

// Watcher runs the checks on a schedule and on demand.
type Watcher struct {
	o      Options
	log    *slog.Logger
	listed *prometheus.GaugeVec
	errs   prometheus.Counter

	runMu    sync.Mutex // one run at a time
	mu       sync.Mutex
	cfg      *config.Config
	snap     Snapshot
	prev     map[string]Status // address|zone -> last listed/clean status
	loaded   bool              // prev read from History
	openPrev map[string]bool   // relay name -> open at the last test
	kick     chan struct{}
}

// NewWatcher returns a watcher for cfg.
func NewWatcher(o Options, cfg *config.Config) *Watcher {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RelayPort == 0 {
		o.RelayPort = 25
	}
	return &Watcher{
		o: o, log: o.Logger.With("component", "reputation"), cfg: cfg, prev: map[string]Status{}, openPrev: map[string]bool{},
		kick: make(chan struct{}, 1),
		listed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "relaygate_reputation_listed",
			Help: "1 when the address is listed on the zone, 0 when clean (absent while unknown)."}, []string{"address", "zone"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{Name: "relaygate_reputation_check_errors_total",
			Help: "Blocklist checks that got no usable answer."}),
	}
}

// Collectors returns the watcher's metrics.
func (w *Watcher) Collectors() []prometheus.Collector {
	return []prometheus.Collector{w.listed, w.errs}
}

// SetConfig applies a new configuration; a change of relays, addresses or
// zones triggers a new run.
func (w *Watcher) SetConfig(c *config.Config) {
	w.mu.Lock()
	w.cfg = c
	w.mu.Unlock()
	if w.o.Alerter != nil {
		w.o.Alerter.SetConfig(c.Alerts)
	}
	w.Kick()
}

// Kick asks the running loop for a check now.
func (w *Watcher) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Snapshot returns the latest results.
func (w *Watcher) Snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

// Run checks at start, every reputation.interval, and on Kick, until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	for {
		w.RunOnce(ctx)
		w.mu.Lock()
		every := w.cfg.Reputation.Interval.D()
		w.mu.Unlock()
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// RunOnce runs every check now and returns the new snapshot.
func (w *Watcher) RunOnce(ctx context.Context) Snapshot {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	w.mu.Lock()
	cfg := w.cfg
	w.mu.Unlock()
	now := w.o.Now()
	snap := Snapshot{CheckedAt: now.UTC(), DNSBL: []Result{}, SPF: []SPFResult{}, RelayTests: []RelayTest{}}

	res := w.o.Resolver
	if res == nil && len(cfg.Reputation.Addresses) > 0 {
		c, err := NewDNSClient(resolvers(cfg.Reputation.Resolvers), 5*time.Second)
		if err != nil {
			w.log.Error("blocklist checks", "err", err)
		} else {
			res = c
		}
	}
	for _, addr := range cfg.Reputation.Addresses {
		if res == nil {
			continue
		}
		for _, z := range cfg.Reputation.Zones {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			r := Check(cctx, res, addr, z, now)
			cancel()
			snap.DNSBL = append(snap.DNSBL, r)
		}
	}

	spfRes := w.o.SPFResolver
	if spfRes == nil {
		spfRes = NewNetResolver(resolvers(cfg.Reputation.Resolvers), 5*time.Second)
	}
	for _, r := range cfg.Relays {
		if !r.PublicAddress.IsValid() || r.Domain == "" {
			continue
		}
		addr := r.PublicAddress
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		snap.SPF = append(snap.SPF, CheckSPF(cctx, spfRes, r.Name, r.Domain, addr, now))
		cancel()
	}

	if w.o.RelayDialer != nil {
		for _, r := range cfg.Relays {
			p := r.Address.Net()
			if !p.IsValid() || !p.IsSingleIP() {
				continue // a prefix has no one host to test
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			snap.RelayTests = append(snap.RelayTests, TestRelay(cctx, w.o.RelayDialer, r.Name,
				net.JoinHostPort(p.Addr().String(), fmt.Sprint(w.o.RelayPort)), cfg.Reputation.RelayTestDomain, now))
			cancel()
		}
	}
	if w.o.History != nil && !w.loaded {
		if last, err := w.o.History.LastReputation(ctx); err != nil {
			w.log.Warn("reputation history", "err", err)
		} else {
			w.mu.Lock()
			for k, v := range last {
				w.prev[k] = Status(v)
			}
			w.loaded = true
			w.mu.Unlock()
		}
	}
	w.evaluate(ctx, cfg, &snap)
	if w.o.History != nil && len(snap.DNSBL) > 0 {
		checks := make([]store.ReputationCheck, 0, len(snap.DNSBL))
		for _, r := range snap.DNSBL {
			checks = append(checks, store.ReputationCheck{Time: r.CheckedAt, Address: r.Address.String(), Zone: r.Zone,
				Status: string(r.Status), Code: r.Code, Reason: r.Reason, Error: r.Error})
		}
		if err := w.o.History.AddReputation(ctx, checks); err != nil {
			w.log.Error("store reputation history", "err", err)
		}
	}
	w.mu.Lock()
	w.snap = snap
	w.mu.Unlock()
	return snap
}

// evaluate counts, updates metrics and raises alerts on changes for the worse.
func (w *Watcher) evaluate(ctx context.Context, cfg *config.Config, snap *Snapshot) {
	w.listed.Reset()
	for _, r := range snap.DNSBL {
		key := r.Address.String() + "|" + r.Zone
		switch r.Status {
		case Listed:
			snap.Summary.Listed++
			w.listed.WithLabelValues(r.Address.String(), r.Zone).Set(1)
		case Clean:
			snap.Summary.Clean++
			w.listed.WithLabelValues(r.Address.String(), r.Zone).Set(0)
		case Error:
			snap.Summary.Errors++
			w.errs.Inc()
		}
		w.mu.Lock()
		before, known := w.prev[key]
		if r.Status == Listed || r.Status == Clean {
			w.prev[key] = r.Status
		}
		w.mu.Unlock()
		switch {
		case r.Status == Listed && before != Listed:
			w.alertListing(ctx, r, known)
		case r.Status == Clean && before == Listed:
			w.log.Info("no longer listed", "address", r.Address, "zone", r.Zone)
		}
	}
	for _, s := range snap.SPF {
		if !s.OK {
			snap.Summary.SPFFailing++
		}
	}
	for _, t := range snap.RelayTests {
		w.mu.Lock()
		wasOpen := w.openPrev[t.Relay]
		if t.Error == "" {
			w.openPrev[t.Relay] = t.Open
		}
		w.mu.Unlock()
		if t.Open {
			snap.Summary.OpenRelays++
		}
		if t.Open && !wasOpen {
			w.raise(ctx, event.Event{Kind: event.Alert, Relay: t.Relay, Code: 0,
				Detail: fmt.Sprintf("open relay: %s accepted %d of %d third-party relay forms", t.Relay, countAccepted(t), len(t.Results))},
				"open relay: "+t.Relay, describeRelayTest(t))
		}
	}
}

func countAccepted(t RelayTest) int {
	n := 0
	for _, r := range t.Results {
		if r.Accepted {
			n++
		}
	}
	return n
}

func describeRelayTest(t RelayTest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The relay %s (%s) accepted these third-party relay forms (no DATA was sent):\n", t.Relay, t.Address)
	for _, r := range t.Results {
		if r.Accepted {
			fmt.Fprintf(&b, "  %s: MAIL FROM:<%s> RCPT TO:<%s> -> %s\n", r.Probe.Name, r.From, r.To, r.Reply)
		}
	}
	return b.String()
}

// alertListing raises the alert for a new listing with its evidence: the
// internal hosts that tried direct SMTP, and the relays' volume, in the
// EvidenceWindow before.
func (w *Watcher) alertListing(ctx context.Context, r Result, wasKnown bool) {
	evidence := w.evidence(ctx, r.CheckedAt)
	detail := fmt.Sprintf("%s listed on %s: %s (%s)", r.Address, r.Zone, r.Code, r.Meaning)
	if r.Reason != "" {
		detail += "; reason: " + r.Reason
	}
	if r.Removal != "" {
		detail += "; removal: " + r.Removal
	}
	if evidence != "" {
		detail += "; evidence: " + evidence
	}
	if !wasKnown {
		detail += " (first check)"
	}
	w.raise(ctx, event.Event{Kind: event.Alert, Server: r.Address, Detail: detail},
		fmt.Sprintf("%s is listed on %s", r.Address, r.Zone), strings.ReplaceAll(detail, "; ", "\n"))
}

func (w *Watcher) raise(ctx context.Context, e event.Event, subject, body string) {
	e.Time = w.o.Now()
	if w.o.Recorder != nil {
		w.o.Recorder.Record(e)
	}
	w.log.Warn("alert", "subject", subject)
	if w.o.Alerter != nil {
		w.o.Alerter.Send(ctx, Alert{Time: e.Time, Subject: subject, Body: body})
	}
}

// evidence summarises who tried direct SMTP, and how much the relays sent,
// in the window before t.
func (w *Watcher) evidence(ctx context.Context, t time.Time) string {
	if w.o.Events == nil {
		return ""
	}
	// Counted as the store walks the events: they are not held.
	counts := map[string]int{}
	for _, k := range []event.Kind{event.Blocked, event.WouldBlock} {
		_, err := w.o.Events.EachEvent(ctx, store.Query{Kind: k, Since: t.Add(-EvidenceWindow), Until: t.Add(time.Second), Limit: 10000},
			func(e event.Event) error {
				counts[e.Client.String()]++
				return nil
			})
		if err != nil {
			w.log.Warn("evidence query", "err", err)
		}
	}
	relayed := map[string]int{}
	if _, err := w.o.Events.EachEvent(ctx, store.Query{Kind: event.Relayed, Since: t.Add(-EvidenceWindow), Until: t.Add(time.Second), Limit: 10000},
		func(e event.Event) error {
			relayed[e.Relay] += max(e.Messages, 1)
			return nil
		}); err != nil {
		w.log.Warn("evidence query", "err", err)
	}
	var parts []string
	if len(counts) > 0 {
		hosts := make([]string, 0, len(counts))
		for h := range counts {
			hosts = append(hosts, h)
		}
		sort.Slice(hosts, func(i, j int) bool {
			return counts[hosts[i]] > counts[hosts[j]] || (counts[hosts[i]] == counts[hosts[j]] && hosts[i] < hosts[j])
		})
		var hs []string
		for i, h := range hosts {
			if i == 10 {
				break
			}
			hs = append(hs, fmt.Sprintf("%s (%d attempts)", h, counts[h]))
		}
		parts = append(parts, fmt.Sprintf("internal hosts that tried direct SMTP in the last %s: %s", EvidenceWindow, strings.Join(hs, ", ")))
	}
	if len(relayed) > 0 {
		var rs []string
		for r, n := range relayed {
			rs = append(rs, fmt.Sprintf("%s %d", r, n))
		}
		sort.Strings(rs)
		parts = append(parts, "relayed sessions by relay: "+strings.Join(rs, ", "))
	}
	return strings.Join(parts, "; ")
}

// resolvers are the configured resolvers as the dialers take them.
func resolvers(aps []netip.AddrPort) []string {
	var out []string
	for _, ap := range aps {
		out = append(out, ap.String())
	}
	return out
}
