// Package locate finds where a LAN host is plugged in: it asks the
// switches named in locate.switches, read-only over SNMP, for the host's MAC
// (IP-MIB on the routing switch) and for the port that MAC was learnt on
// (Q-BRIDGE-MIB, BRIDGE-MIB, IF-MIB), following uplinks (LLDP-MIB) to the
// edge port. It never runs on the data path.
package locate

import (
	"context"
	"net/netip"
	"time"
)

// Status says how far a lookup got.
type Status string

// Statuses of a Location.
const (
	// Found: the MAC and its edge port are known.
	Found Status = "found"
	// MACOnly: the MAC is known, no switch knows its port (aged out, or
	// the port's switch is not configured).
	MACOnly Status = "mac_only"
	// NotFound: no switch knows the address.
	NotFound Status = "not_found"
	// Failed: every switch failed (unreachable, wrong credentials, garbage);
	// Error says why.
	Failed Status = "failed"
)

// Location is where a host's address was seen on the switched network.
type Location struct {
	// Addr is the address that was looked up.
	Addr netip.Addr `json:"addr"`
	// Status says how far the lookup got.
	Status Status `json:"status"`
	// MAC is the host's MAC, lower case colon form, e.g. 00:11:22:33:44:55.
	MAC string `json:"mac,omitempty"`
	// Vendor is the MAC's IEEE OUI owner, e.g. Dell Inc.
	Vendor string `json:"vendor,omitempty"`
	// Switch is the configured name of the switch with the edge port.
	Switch string `json:"switch,omitempty"`
	// Port is the edge port's ifName, e.g. Gi1/0/17.
	Port string `json:"port,omitempty"`
	// PortDescription is the port's ifAlias, e.g. "3F room 12".
	PortDescription string `json:"port_description,omitempty"`
	// IfIndex is the edge port's ifIndex.
	IfIndex int `json:"if_index,omitempty"`
	// VLAN is the VLAN the MAC was learnt in, when the switch says.
	VLAN int `json:"vlan,omitempty"`
	// Path names the switches followed from the first to the edge.
	Path []string `json:"path,omitempty"`
	// SeenAt is when the switch reported it.
	SeenAt time.Time `json:"seen_at"`
	// Error says why a lookup failed, per switch, e.g. "core: timeout".
	Error string `json:"error,omitempty"`
}

// Locator looks up one address. Implementations bound their own time and
// concurrency; a Location with Status Failed is an answer, not an error.
type Locator interface {
	Locate(ctx context.Context, addr netip.Addr) (Location, error)
}
