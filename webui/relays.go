package webui

import (
	"net/netip"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/policy"
)

// relayPolicy is the relay matcher of cfg, built as the daemon builds the
// proxy's and inspection's (policy.New), so that the relay the UI names
// for an address is the one the data path, the events and the series
// name: the longest prefix wins, whatever the order in the file. A nil cfg
// has no relays.
func relayPolicy(cfg *config.Config) *policy.Policy {
	if cfg == nil {
		return nil
	}
	return policy.New(cfg)
}

// isRelay reports whether p (nil: no relays) makes addr a relay.
func isRelay(p *policy.Policy, addr netip.Addr) bool {
	_, ok := p.Relay(addr)
	return ok
}

// relayName returns the name of the relay p matches addr to, and whether
// there is one.
func relayName(p *policy.Policy, addr netip.Addr) (string, bool) {
	r, ok := p.Relay(addr)
	return r.Name, ok
}
