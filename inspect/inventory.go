package inspect

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// Bounds of the inventory's reverse DNS lookups.
const (
	rdnsTimeout  = 2 * time.Second
	rdnsInterval = 100 * time.Millisecond // at most 10 lookups a second
	rdnsQueue    = 256
	rdnsMemo     = 65536 // addresses remembered as looked up
	maxDeltaList = 32    // list entries collected per host between flushes
)

// Host is one entry of the passive inventory, as the web UI shows it.
type Host struct {
	store.HostSeen
	// Relay is the name of the relay the address belongs to, if any.
	Relay string `json:"relay,omitempty"`
	// Evidence says whether a pcap is available (HostPcap).
	Evidence bool `json:"evidence"`
}

// inventory aggregates per host in memory; flush merges into the store.
type inventory struct {
	in *Inspector

	mu     sync.Mutex
	deltas map[netip.Addr]*store.HostDelta
	looked map[netip.Addr]bool
	rdnsq  chan netip.Addr
}

func newInventory(in *Inspector) *inventory {
	return &inventory{
		in:     in,
		deltas: map[netip.Addr]*store.HostDelta{},
		looked: map[netip.Addr]bool{},
		rdnsq:  make(chan netip.Addr, rdnsQueue),
	}
}

func (v *inventory) delta(addr netip.Addr, t time.Time) *store.HostDelta {
	d := v.deltas[addr]
	if d == nil {
		d = &store.HostDelta{Addr: addr, FirstSeen: t, LastSeen: t}
		v.deltas[addr] = d
	}
	if t.Before(d.FirstSeen) {
		d.FirstSeen = t
	}
	if t.After(d.LastSeen) {
		d.LastSeen = t
	}
	return d
}

// seen notes a new flow of addr.
func (v *inventory) seen(addr netip.Addr, t time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	d := v.delta(addr, t)
	d.Flows++
	if v.in.opts.Resolver != nil && v.in.cfg.Load().rdns && !v.looked[addr] {
		if len(v.looked) >= rdnsMemo {
			clear(v.looked)
		}
		v.looked[addr] = true
		select {
		case v.rdnsq <- addr:
		default:
			delete(v.looked, addr) // try again on a later flow
		}
	}
}

// sessionSeen is what one SMTP session of a host showed: a captured flow
// or, for a relay's diverted session, the proxy's event.
type sessionSeen struct {
	messages  int
	encrypted bool
	rcpt      []string
	server    netip.Addr
	authMechs []string
}

// flowEnded adds what a flow showed.
func (v *inventory) flowEnded(f *flow, t time.Time) {
	c := f.conv
	v.session(f.key.cli.Addr(), f.last, sessionSeen{
		messages: c.Messages, encrypted: c.Encrypted, rcpt: c.Rcpt, server: f.key.srv.Addr(), authMechs: c.AuthMechs,
	})
}

// session adds what a session of addr showed, at t.
func (v *inventory) session(addr netip.Addr, t time.Time, s sessionSeen) {
	v.mu.Lock()
	defer v.mu.Unlock()
	d := v.delta(addr, t)
	d.Messages += int64(s.messages)
	if s.encrypted {
		d.EncryptedFlows++
	}
	for _, r := range s.rcpt {
		if dom := rcptDomain(r); dom != "" {
			d.RcptDomains = addBounded(d.RcptDomains, dom)
		}
	}
	if s.server.IsValid() {
		d.RemoteMXs = addBounded(d.RemoteMXs, s.server.String())
	}
	for _, m := range s.authMechs {
		d.AuthMechs = addBounded(d.AuthMechs, m)
	}
}

func addBounded(list []string, s string) []string {
	if len(list) >= maxDeltaList || contains(list, s) {
		return list
	}
	return append(list, s)
}

// flush writes the collected deltas; on failure they are merged back.
func (v *inventory) flush(ctx context.Context) error {
	st := v.in.opts.Inventory
	v.mu.Lock()
	if st == nil || len(v.deltas) == 0 {
		v.mu.Unlock()
		return nil
	}
	batch := make([]store.HostDelta, 0, len(v.deltas))
	for _, d := range v.deltas {
		batch = append(batch, *d)
	}
	clear(v.deltas)
	v.mu.Unlock()
	if err := st.UpsertHosts(ctx, batch); err != nil {
		v.mu.Lock()
		for _, d := range batch {
			m := v.delta(d.Addr, d.FirstSeen)
			m.LastSeen = later(m.LastSeen, d.LastSeen)
			m.Flows += d.Flows
			m.Messages += d.Messages
			m.EncryptedFlows += d.EncryptedFlows
			for _, s := range d.RcptDomains {
				m.RcptDomains = addBounded(m.RcptDomains, s)
			}
			for _, s := range d.RemoteMXs {
				m.RemoteMXs = addBounded(m.RemoteMXs, s)
			}
			for _, s := range d.AuthMechs {
				m.AuthMechs = addBounded(m.AuthMechs, s)
			}
			if d.RDNS != "" {
				m.RDNS = d.RDNS
			}
		}
		v.mu.Unlock()
		return fmt.Errorf("flush inventory: %w", err)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// resolve runs the reverse DNS lookups, rate-limited, until ctx ends.
func (v *inventory) resolve(ctx context.Context) {
	r := v.in.opts.Resolver
	if r == nil {
		return
	}
	tick := time.NewTicker(rdnsInterval)
	defer tick.Stop()
	for {
		var addr netip.Addr
		select {
		case <-ctx.Done():
			return
		case addr = <-v.rdnsq:
		}
		lctx, cancel := context.WithTimeout(ctx, rdnsTimeout)
		names, err := r.LookupAddr(lctx, addr.String())
		cancel()
		if err == nil && len(names) > 0 {
			name := event.Clip(strings.TrimSuffix(names[0], "."), 253)
			v.mu.Lock()
			d := v.deltas[addr]
			if d == nil {
				// Only the name is new: zero times keep those the store has.
				d = &store.HostDelta{Addr: addr}
				v.deltas[addr] = d
			}
			d.RDNS = name
			v.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Inventory returns every host seen speaking SMTP, most recently seen first.
func (in *Inspector) Inventory(ctx context.Context) ([]Host, error) {
	if in.opts.Inventory == nil {
		return []Host{}, nil
	}
	if err := in.inv.flush(ctx); err != nil {
		in.log.Warn("inventory flush", "err", err)
	}
	rows, err := in.opts.Inventory.HostsSeen(ctx, 10000)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	out := make([]Host, len(rows))
	for i, r := range rows {
		out[i] = in.decorate(r)
	}
	return out, nil
}

// ErrUnknownHost is returned for an address the inventory has not seen.
var ErrUnknownHost = errors.New("host not seen")

// Host returns one host of the inventory; ErrUnknownHost when unseen.
func (in *Inspector) Host(ctx context.Context, addr netip.Addr) (Host, error) {
	if in.opts.Inventory == nil {
		return Host{}, ErrUnknownHost
	}
	if err := in.inv.flush(ctx); err != nil {
		in.log.Warn("inventory flush", "err", err)
	}
	r, err := in.opts.Inventory.HostSeenByAddr(ctx, addr.Unmap().WithZone(""))
	if errors.Is(err, store.ErrNotFound) {
		return Host{}, fmt.Errorf("host %s: %w", addr, ErrUnknownHost)
	}
	if err != nil {
		return Host{}, err
	}
	return in.decorate(r), nil
}

func (in *Inspector) decorate(r store.HostSeen) Host {
	cfg := in.cfg.Load()
	r.Label = labelFor(cfg.labels, r.Addr) // longest prefix
	h := Host{HostSeen: r}
	if rel, ok := cfg.policy.Relay(r.Addr); ok {
		h.Relay = rel.Name
	}
	if in.ev != nil {
		h.Evidence = in.ev.has(r.Addr)
	}
	return h
}

// labelFor returns the label of the longest prefix holding addr.
func labelFor(labels []label, addr netip.Addr) string {
	best, name := -1, ""
	for _, l := range labels {
		if l.prefix.Contains(addr) && l.prefix.Bits() > best {
			best, name = l.prefix.Bits(), l.name
		}
	}
	return name
}
