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
}

// New builds a policy from a validated configuration.
func New(c *config.Config) *Policy {
	p := &Policy{RejectText: c.RejectText}
	for _, r := range c.Relays {
		pfx, err := config.ParseRelayPrefix(r.Address)
		if err != nil {
			continue // Validate has rejected it already
		}
		p.relays = append(p.relays, Relay{Name: r.Name, Prefix: pfx})
	}
	sort.SliceStable(p.relays, func(i, j int) bool { return p.relays[i].Prefix.Bits() > p.relays[j].Prefix.Bits() })
	return p
}

// Relay returns the most specific relay whose prefix holds addr.
func (p *Policy) Relay(addr netip.Addr) (Relay, bool) {
	if p == nil {
		return Relay{}, false
	}
	addr = addr.Unmap().WithZone("")
	for _, r := range p.relays {
		if r.Prefix.Contains(addr) {
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
