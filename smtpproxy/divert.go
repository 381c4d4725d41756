package smtpproxy

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// undiverted reports whether a connection whose local address is dst did
// not arrive through the divert: TPROXY hands the listener connections
// whose local address is the original destination (an SMTP port of a
// remote host), so a connection to the listener's own port, or to an
// address of the box, was made to the box itself.
func (s *server) undiverted(dst netip.AddrPort) bool {
	return dst.Port() == s.lnPort || s.p.own.has(dst.Addr())
}

// ownAddrsTTL is how long the box's own addresses are cached.
const ownAddrsTTL = 5 * time.Second

// ownAddrs caches the box's own addresses (every interface's), refreshed
// at most every ownAddrsTTL, so that a flood of connections costs no
// netlink dump each.
type ownAddrs struct {
	list func() ([]net.Addr, error)

	mu      sync.Mutex
	fetched time.Time
	set     map[netip.Addr]bool
}

func newOwnAddrs() *ownAddrs { return &ownAddrs{list: net.InterfaceAddrs} }

// has reports whether a is one of the box's addresses (unspecified and
// loopback addresses count as the box's).
func (o *ownAddrs) has(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsUnspecified() || a.IsLoopback() {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if now := time.Now(); o.set == nil || now.Sub(o.fetched) > ownAddrsTTL {
		// On error the last known set stays; an empty one when none.
		if addrs, err := o.list(); err == nil || o.set == nil {
			set := map[netip.Addr]bool{}
			for _, ad := range addrs {
				if n, ok := ad.(*net.IPNet); ok {
					if x, ok := netip.AddrFromSlice(n.IP); ok {
						set[x.Unmap()] = true
					}
				}
			}
			o.set = set
		}
		o.fetched = now
	}
	return o.set[a]
}
