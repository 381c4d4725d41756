// Package policy answers the one question the data path asks of every SMTP
// connection: is this source an approved relay, and which one.
package policy

import (
	"net/netip"
	"sort"

	"github.com/relaygate/relaygate/config"
)

// Relay is an approved relay with its parsed prefix.
type Relay struct {
	Name   string
	Prefix netip.Prefix
}

// Policy is an immutable snapshot of the relay list; build a new one on a
// configuration change and swap it in.
type Policy struct {
	relays     []Relay // longest prefix first
	RejectText string
	// Lookup tables: for each prefix length in use, longest first, the
	// relays by masked prefix. A lookup costs one map access per distinct
	// length (at most 33 for IPv4, 129 for IPv6), whatever the number of relays.
	lens4, lens6 []int
	byPrefix     map[netip.Prefix]Relay
}

// New builds a policy from a validated configuration.
func New(c *config.Config) *Policy {
	p := &Policy{RejectText: c.RejectText}
	for _, r := range c.Relays {
		if !r.Address.IsValid() {
			continue // Validate has rejected it already
		}
		p.relays = append(p.relays, Relay{Name: r.Name, Prefix: r.Address.Net()})
	}
	sort.SliceStable(p.relays, func(i, j int) bool { return p.relays[i].Prefix.Bits() > p.relays[j].Prefix.Bits() })
	p.byPrefix = make(map[netip.Prefix]Relay, len(p.relays))
	seen := map[int]bool{}
	for _, r := range p.relays {
		if _, dup := p.byPrefix[r.Prefix]; !dup {
			p.byPrefix[r.Prefix] = r // the first in config order wins
		}
		key := r.Prefix.Bits()
		if r.Prefix.Addr().Is6() {
			key = -1 - key
		}
		if !seen[key] {
			seen[key] = true
			if r.Prefix.Addr().Is4() {
				p.lens4 = append(p.lens4, r.Prefix.Bits())
			} else {
				p.lens6 = append(p.lens6, r.Prefix.Bits())
			}
		}
	}
	return p
}

// Relay returns the most specific relay whose prefix holds addr.
func (p *Policy) Relay(addr netip.Addr) (Relay, bool) {
	if p == nil {
		return Relay{}, false
	}
	addr = addr.Unmap().WithZone("")
	lens := p.lens6
	if addr.Is4() {
		lens = p.lens4
	}
	for _, bits := range lens {
		pfx, err := addr.Prefix(bits)
		if err != nil {
			continue
		}
		if r, ok := p.byPrefix[pfx]; ok {
			return r, true
		}
	}
	return Relay{}, false
}

// Relays returns the relays, longest prefix first.
func (p *Policy) Relays() []Relay {
	if p == nil {
		return nil
	}
	return append([]Relay(nil), p.relays...)
}

// Reject returns the text of the refusal reply.
func (p *Policy) Reject() string {
	if p == nil || p.RejectText == "" {
		return config.DefaultRejectText
	}
	return p.RejectText
}
