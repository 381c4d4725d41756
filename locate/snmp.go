package locate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/relaygate/relaygate/config"
)

// SNMP is the Locator that asks the configured switches over SNMP (v2c,
// or v3 authPriv). It is safe for concurrent use: each switch gets one
// request at a time, at least minInterval apart, whoever asks.
type SNMP struct {
	logger   *slog.Logger
	switches []*switchState

	// timeout bounds one request, retries are the further tries after a
	// timeout (locate.timeout, 1).
	timeout time.Duration
	retries int
	// refresh is how long a switch's own facts (its MACs, VLAN to FDB
	// map, LLDP neighbours) are kept (locate.refresh).
	refresh time.Duration
	// minInterval is the least time between two requests to one switch,
	// so that a burst of lookups never loads a switch's CPU.
	minInterval time.Duration
	// maxRepetitions is GETBULK's, maxRows the most objects one walk
	// reads and maxWalk its longest time, maxSeek the most GETNEXTs one
	// seek sends: an endless or garbage table ends there.
	maxRepetitions uint32
	maxRows        int
	maxWalk        time.Duration
	maxSeek        int
	// maxLookup bounds a Locate whose context has no deadline.
	maxLookup time.Duration
	now       func() time.Time
}

var _ Locator = (*SNMP)(nil)

// vendorOf names a MAC's vendor (IEEE OUI owner) for Location.Vendor; ""
// when unknown. Wired to the OUI list (locate.Vendor) where that exists.
var vendorOf = Vendor

// Defaults of the bounds that have no configuration key.
const (
	defaultRetries        = 1
	defaultMinInterval    = 20 * time.Millisecond
	defaultMaxRepetitions = 20
	defaultMaxRows        = 4096
	defaultMaxWalk        = 15 * time.Second
	defaultMaxSeek        = 1024
	defaultMaxLookup      = 60 * time.Second
)

// New returns a Locator for the switches in cfg, which config.Validate
// has checked. It sends nothing until Locate is called.
func New(cfg config.Locate, logger *slog.Logger) *SNMP {
	l := &SNMP{
		logger:         logger.With("component", "locate"),
		timeout:        cfg.Timeout.D(),
		retries:        defaultRetries,
		refresh:        cfg.Refresh.D(),
		minInterval:    defaultMinInterval,
		maxRepetitions: defaultMaxRepetitions,
		maxRows:        defaultMaxRows,
		maxWalk:        defaultMaxWalk,
		maxSeek:        defaultMaxSeek,
		maxLookup:      defaultMaxLookup,
		now:            time.Now,
	}
	if l.timeout <= 0 {
		l.timeout = config.DefaultLocateTimeout
	}
	if l.refresh <= 0 {
		l.refresh = config.DefaultLocateRefresh
	}
	for _, sw := range cfg.Switches {
		st := &switchState{cfg: sw, turn: make(chan struct{}, 1)}
		st.host, st.port, st.addrErr = sw.HostPort()
		l.switches = append(l.switches, st)
	}
	return l
}

// candidate is a switch that has learnt the host's MAC, and whether the
// port is an uplink.
type candidate struct {
	idx     int // into switches
	hit     portHit
	uplink  bool
	towards int    // the configured switch behind the uplink, -1 unknown
	why     string // what makes it an uplink
}

// Locate finds addr's MAC on the first switch that has it in its neighbour
// table, then the MAC's port on every switch, and reports the edge port:
// the one that is not an uplink. A switch that fails is named in Error;
// the lookup goes on with the others.
func (l *SNMP) Locate(ctx context.Context, addr netip.Addr) (Location, error) {
	if !addr.IsValid() {
		return Location{}, errors.New("locate: invalid address")
	}
	addr = addr.Unmap().WithZone("")
	loc := Location{Addr: addr}
	if len(l.switches) == 0 {
		loc.Status, loc.Error, loc.SeenAt = Failed, "no switches configured (locate.switches)", l.now()
		return loc, nil
	}
	parent := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.maxLookup)
		defer cancel()
	}
	sessions := make([]*session, len(l.switches))
	for i, sw := range l.switches {
		sessions[i] = &session{loc: l, sw: sw}
		if sw.addrErr != nil {
			sessions[i].fatal = &errFatal{sw.addrErr.Error()}
		}
	}
	defer func() {
		for _, s := range sessions {
			s.close()
		}
	}()
	defer func() {
		l.logger.Debug("locate", "addr", addr, "status", loc.Status, "mac", loc.MAC, "switch", loc.Switch,
			"port", loc.Port, "path", strings.Join(loc.Path, ">"), "error", loc.Error)
	}()

	// IP to MAC: the routing switch is the one that knows.
	var m mac
	var l3If uint32
	found, answered := -1, 0
	for i, s := range sessions {
		if s.fatal != nil {
			continue
		}
		var ok bool
		var err error
		guard(s, func() { m, l3If, ok, err = s.arp(ctx, addr) })
		if err != nil && s.fatal == nil {
			s.note("%v", err)
		}
		if err == nil && s.fatal == nil {
			answered++
		}
		if ok {
			found = i
			break
		}
	}
	if found < 0 {
		// Not found only when a switch could say so: failed when
		// every one was unreachable or answered garbage.
		loc.Status = NotFound
		if answered == 0 {
			loc.Status = Failed
		}
		loc.Error, loc.SeenAt = l.errorsOf(sessions, ""), l.now()
		return loc, cancelled(parent)
	}
	loc.MAC = m.String()
	loc.Vendor = vendorOf(loc.MAC)
	var hint int
	guard(sessions[found], func() { hint = sessions[found].vlanOfIf(ctx, l3If) })

	// The MAC's port on every switch, and every switch's own MACs (to
	// tell uplinks by), one goroutine per switch.
	hits := make([]*portHit, len(sessions))
	selfs := make([][]mac, len(sessions))
	l.each(sessions, nil, func(i int, s *session) {
		if len(sessions) > 1 {
			macs, err := s.selfMACs(ctx)
			if err != nil && s.fatal == nil {
				s.note("%v", err)
			}
			selfs[i] = macs
		}
		if h, ok, err := s.findMAC(ctx, m, hint); ok {
			hits[i] = &h
		} else if err != nil && s.fatal == nil {
			s.note("%v", err)
		}
	})

	// Which of those ports are uplinks.
	cands := make([]*candidate, len(sessions))
	l.each(sessions, hits, func(i int, s *session) {
		cands[i] = l.classify(ctx, i, s, *hits[i], selfs)
	})
	var seen []*candidate
	for _, c := range cands {
		if c != nil {
			seen = append(seen, c)
		}
	}
	edge := pickEdge(seen)
	loc.Path = l.path(seen, found, edge)
	loc.SeenAt = l.now()
	var uplinksOnly string
	switch {
	case edge != nil:
		sw, h := l.switches[edge.idx], edge.hit
		loc.Status, loc.Switch, loc.Port, loc.PortDescription, loc.IfIndex, loc.VLAN = Found, sw.cfg.Name, h.name, h.alias, h.ifIndex, h.vlan
		if loc.VLAN == 0 {
			loc.VLAN = hint
		}
	default:
		loc.Status = MACOnly
		if len(seen) > 0 {
			var parts []string
			for _, c := range seen {
				parts = append(parts, fmt.Sprintf("%s %s (%s)", l.switches[c.idx].cfg.Name, c.hit.label(), c.why))
			}
			uplinksOnly = "learnt on uplinks only, the edge switch is not configured or has aged the MAC out: " + strings.Join(parts, ", ")
		}
	}
	loc.Error = l.errorsOf(sessions, uplinksOnly)
	return loc, cancelled(parent)
}

// cancelled is the caller's cancellation, the one case where Locate
// returns an error: a lookup that ran out of time is still an answer.
func cancelled(ctx context.Context) error {
	if err := ctx.Err(); errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// each runs fn for every session that has not failed (and, when only is
// not nil, whose only entry is set), concurrently; a panic on a garbage
// answer fails that switch, not the daemon.
func (l *SNMP) each(sessions []*session, only []*portHit, fn func(int, *session)) {
	var wg sync.WaitGroup
	for i, s := range sessions {
		if s.fatal != nil || (only != nil && only[i] == nil) {
			continue
		}
		wg.Go(func() { guard(s, func() { fn(i, s) }) })
	}
	wg.Wait()
}

// guard runs fn and turns a panic into the session's fatal error.
func guard(s *session, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			s.fatal = &errFatal{fmt.Sprintf("%v: internal error: %v", errGarbled, r)}
		}
	}()
	fn()
}

// classify says whether the port that switch i learnt the host's MAC on
// is an uplink: a port with an LLDP neighbour, or one that has learnt
// another configured switch's own MAC.
func (l *SNMP) classify(ctx context.Context, i int, s *session, h portHit, selfs [][]mac) *candidate {
	c := &candidate{idx: i, hit: h, towards: -1}
	f, err := s.lldpFacts(ctx)
	if err != nil && s.fatal == nil {
		s.note("LLDP: %v", err)
	}
	if n := f.neighbourOn(h.ifIndex, h.name, h.descr); n != nil {
		c.uplink, c.towards = true, l.identify(i, n, selfs)
		name := n.sysName
		if name == "" {
			name = n.chassisID
		}
		c.why = "LLDP neighbour " + name
		return c
	}
	for j, macs := range selfs {
		if j == i {
			continue
		}
		for _, sm := range macs {
			oh, ok, _ := s.findMAC(ctx, sm, 0)
			if !ok {
				continue
			}
			if oh.ifIndex == h.ifIndex {
				c.uplink, c.towards = true, j
				c.why = "learnt " + l.switches[j].cfg.Name + "'s own MAC " + sm.String()
				return c
			}
			break
		}
	}
	return c
}

// identify is the configured switch an LLDP neighbour is, -1 if none: by
// chassis MAC, system name (the switch's name or host name, with or
// without domain) or management address.
func (l *SNMP) identify(self int, n *neighbour, selfs [][]mac) int {
	short := func(s string) string { h, _, _ := strings.Cut(s, "."); return h }
	for j, sw := range l.switches {
		if j == self {
			continue
		}
		if n.hasMAC && slices.Contains(selfs[j], n.chassisMAC) {
			return j
		}
		if n.sysName != "" {
			_, ipErr := netip.ParseAddr(sw.host)
			for _, name := range []string{sw.cfg.Name, sw.host} {
				if name == sw.host && ipErr == nil {
					continue
				}
				if strings.EqualFold(n.sysName, name) || strings.EqualFold(short(n.sysName), short(name)) {
					return j
				}
			}
		}
		if a, err := netip.ParseAddr(sw.host); err == nil && slices.Contains(n.mgmt, a.Unmap()) {
			return j
		}
	}
	return -1
}

// pickEdge is the candidate whose port is not an uplink; when several
// are (an inter-switch link that neither LLDP nor a switch's MAC gives
// away), the one another candidate's uplink leads to, else the last in
// configuration order, which lists the switches from the core outwards.
func pickEdge(cands []*candidate) *candidate {
	pointed := map[int]bool{}
	for _, c := range cands {
		if c.uplink && c.towards >= 0 {
			pointed[c.towards] = true
		}
	}
	var last *candidate
	for _, c := range cands {
		if c.uplink {
			continue
		}
		if pointed[c.idx] {
			return c
		}
		last = c
	}
	return last
}

// path names the switches that learnt the MAC from the first to the edge:
// from the routing switch (or a switch no other uplink leads to) along
// the uplinks, ending with the edge.
func (l *SNMP) path(cands []*candidate, routing int, edge *candidate) []string {
	if len(cands) == 0 {
		return nil
	}
	by := map[int]*candidate{}
	pointed := map[int]bool{}
	for _, c := range cands {
		by[c.idx] = c
		if c.uplink && c.towards >= 0 {
			pointed[c.towards] = true
		}
	}
	root := by[routing]
	if root == nil {
		for _, c := range cands {
			if !pointed[c.idx] {
				root = c
				break
			}
		}
	}
	if root == nil {
		root = cands[0]
	}
	var out []string
	visited := map[int]bool{}
	for c := root; c != nil && !visited[c.idx]; c = by[c.towards] {
		out = append(out, l.switches[c.idx].cfg.Name)
		visited[c.idx] = true
		if c == edge || !c.uplink {
			break
		}
	}
	if edge != nil && !visited[edge.idx] {
		out = append(out, l.switches[edge.idx].cfg.Name)
	}
	return out
}

// errorsOf is the per-switch errors, "name: why; name: why", and extra.
func (l *SNMP) errorsOf(sessions []*session, extra string) string {
	var parts []string
	for i, s := range sessions {
		if e := s.failed(); e != "" {
			parts = append(parts, l.switches[i].cfg.Name+": "+e)
		}
	}
	if extra != "" {
		parts = append(parts, extra)
	}
	return strings.Join(parts, "; ")
}
