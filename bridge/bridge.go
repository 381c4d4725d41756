// Package bridge owns relaygate's kernel plumbing: the Linux bridge between
// the inside and outside ports, the box's own addressing on it, the policy
// routing that TPROXY needs, and relaygate's nftables tables.
//
// The nftables ruleset is installed as one atomic transaction into tables
// named "relaygate" in the bridge, netdev and inet families; no other table
// is ever touched. In enforce mode the ruleset itself carries the failure
// behaviour: a set element with a short timeout, refreshed by Heartbeat while
// the proxy serves, gates the diversion. When it expires (the daemon stopped,
// crashed or is upgrading), relays' port-25 traffic is bridged straight
// through and every other source's port-25 traffic gets a TCP reset.
package bridge

import (
	"net/netip"
	"time"
)

// Routing marks and tables. The proxy sets ReplyMark on its listening socket
// (answers to LAN clients leave through the inside gateway) and OnwardMark on
// its onward connections (they leave through the bridge gateway), so neither
// depends on the main table, which belongs to the management interface.
const (
	// DivertMark marks diverted packets for local delivery (table DivertMark).
	DivertMark = 0x2525
	// ReplyMark selects the route back to LAN clients (table ReplyMark).
	ReplyMark = 0x2526
	// OnwardMark selects the route toward the internet (table OnwardMark).
	OnwardMark = 0x2527

	// TableName is the name of every nftables table relaygate owns.
	TableName = "relaygate"

	// AliveTimeout is how long the diversion stays up without a heartbeat.
	AliveTimeout = 3 * time.Second
	// HeartbeatInterval is how often a serving daemon refreshes it.
	HeartbeatInterval = time.Second

	rulePriorityBase = 10025
)

// PortStatus describes one link of the appliance.
type PortStatus struct {
	Name      string `json:"name"`
	Role      string `json:"role"` // bridge, inside, outside, management
	OperState string `json:"oper_state"`
	MTU       int    `json:"mtu"`
	MAC       string `json:"mac"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
	RxDropped uint64 `json:"rx_dropped"`
	TxDropped uint64 `json:"tx_dropped"`
}

// Counter names of the ruleset (named nftables counters in our tables).
const (
	// CounterSMTPPackets counts every packet toward an SMTP port on the inside port.
	CounterSMTPPackets = "smtp_packets"
	// CounterDiverted counts packets diverted to the proxy.
	CounterDiverted = "diverted"
	// CounterReturned counts remote servers' packets pulled up to onward connections.
	CounterReturned = "returned"
	// CounterReset counts non-relay packets reset while the proxy was not serving.
	CounterReset = "reset"
	// CounterTaggedRelay counts tagged relay packets (802.1Q, 802.1ad,
	// 0x9100, stacked) bridged straight through.
	CounterTaggedRelay = "tagged_relay"
	// CounterTaggedDropped counts 802.1Q-tagged non-relay packets dropped.
	// They are dropped, not reset: the reset the netdev hook builds leaves
	// untagged and would never reach the sender's VLAN.
	CounterTaggedDropped = "tagged_dropped"
	// CounterStackedDropped counts non-relay SMTP (or TCP whose port cannot
	// be read) in frames with an 802.1ad or 0x9100 tag or stacked tags,
	// dropped: the proxy cannot terminate them and the kernel does not
	// parse past the first tag.
	CounterStackedDropped = "stacked_dropped"
	// CounterFragDropped counts IPv4 and IPv6 TCP fragments (and IPv6
	// fragments behind extension headers) from non-relays, dropped: no
	// port can be matched in them.
	CounterFragDropped = "frag_dropped"
	// CounterFloodDropped counts non-relay SYNs dropped over
	// proxy.new_conns_per_source.
	CounterFloodDropped = "flood_dropped"
	// CounterProxyPortDropped counts packets to the proxy's listening port
	// (proxy.port) dropped on their way into the box, on any interface:
	// only diverted connections, which keep their SMTP port, may reach it.
	CounterProxyPortDropped = "proxy_port_dropped"
)

// splitFamilies returns the IPv4 and IPv6 prefixes of ps.
func splitFamilies(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}
