// Package sourcekey is the one rule by which relaygate counts a client
// "source" for its per-source limits: an IPv4 address is a source, an IPv6
// /64 is a source (one subscriber, one LAN: a host picks any address in
// its /64, so counting addresses would let it rotate past every limit).
//
// The kernel's flood limit (bridge, nftables set keyed on the masked
// address), the proxy's per-source connection cap and the web UI's login
// throttle all key on it.
package sourcekey

import "net/netip"

const (
	// IPv4Bits is the prefix length of an IPv4 source.
	IPv4Bits = 32
	// IPv6Bits is the prefix length of an IPv6 source.
	IPv6Bits = 64
)

// Key returns the source addr belongs to: addr/32 for IPv4 (IPv4-mapped
// IPv6 addresses count as IPv4), its /64 for IPv6, zone dropped. An
// invalid address gives the zero Prefix.
func Key(addr netip.Addr) netip.Prefix {
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	addr = addr.Unmap().WithZone("")
	bits := IPv6Bits
	if addr.Is4() {
		bits = IPv4Bits
	}
	p, _ := addr.Prefix(bits) // cannot fail: valid address, bits in range
	return p
}
