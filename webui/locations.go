package webui

import (
	"context"
	"errors"
	"net/netip"

	"github.com/relaygate/relaygate/store"
)

// Locations is where hosts were seen on the switched network (switch,
// port, MAC). *store.Store implements it. Optional: without it the pages
// show no location.
type Locations interface {
	// Location returns what is known of where addr is; ok is false when
	// it was never looked up.
	Location(ctx context.Context, addr netip.Addr) (rec store.LocationRecord, ok bool, err error)
	// LocationsFor returns the records of those of addrs that were
	// looked up, in one query.
	LocationsFor(ctx context.Context, addrs []netip.Addr) (map[netip.Addr]store.LocationRecord, error)
	// AddressesByMAC returns the addresses last seen with mac (bounded):
	// one machine's addresses.
	AddressesByMAC(ctx context.Context, mac string) ([]netip.Addr, error)
}

// Locator looks a host up on the switches now, in the background.
// Optional: without it "locate now" answers 409.
type Locator interface {
	// LocateNow queues a lookup of addr and returns at once; it returns
	// ErrLocationOff when no switch is configured and ErrLocateBusy when
	// too many lookups wait.
	LocateNow(addr netip.Addr) error
}

// Errors of Locator.LocateNow.
var (
	ErrLocationOff = errors.New("location is not configured: add switches under locate.switches")
	ErrLocateBusy  = errors.New("too many lookups are waiting; try again in a minute")
)
