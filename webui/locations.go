package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

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

// LocationBrief is where a host was last found, as the list rows show it.
type LocationBrief struct {
	// Switch and Port name the edge port, e.g. access-2 Gi1/0/17.
	Switch string `json:"switch,omitempty"`
	Port   string `json:"port,omitempty"`
	// PortDescription is the port's description (ifAlias), e.g. "3F room 12".
	PortDescription string `json:"port_description,omitempty"`
	// MAC and Vendor name the machine, e.g. aa:bb:cc:dd:ee:ff, Dell Inc.
	MAC    string `json:"mac,omitempty"`
	Vendor string `json:"vendor,omitempty"`
	// SeenAt is when a switch reported it.
	SeenAt time.Time `json:"seen_at"`
}

func briefOf(r store.LocationRecord) *LocationBrief {
	if !r.Known() {
		return nil
	}
	return &LocationBrief{Switch: r.Switch, Port: r.Port, PortDescription: r.PortDescription,
		MAC: r.MAC, Vendor: r.Vendor, SeenAt: r.SeenAt.UTC()}
}

// locationRoutes registers "locate now".
func (s *server) locationRoutes(ui, api *gin.RouterGroup) {
	ui.POST("/hosts/:addr/locate", s.postLocateNow)
	api.POST("/hosts/:addr/locate", s.apiLocateNow)
}

// locateNow queues a lookup of the address in the path; it returns the
// HTTP status and, on failure, the message.
func (s *server) locateNow(c *gin.Context) (netip.Addr, int, string) {
	addr, ok := parseHostAddr(c.Param("addr"))
	if !ok {
		return addr, http.StatusBadRequest, fmt.Sprintf("invalid address %q (want an IP address, e.g. 192.0.2.7)", c.Param("addr"))
	}
	if s.locator == nil {
		return addr, http.StatusConflict, ErrLocationOff.Error()
	}
	err := s.locator.LocateNow(addr)
	switch {
	case errors.Is(err, ErrLocationOff):
		return addr, http.StatusConflict, err.Error()
	case err != nil:
		return addr, http.StatusServiceUnavailable, err.Error()
	}
	s.audit(c, "", "host.locate", addr.String())
	return addr, http.StatusAccepted, ""
}

// apiLocateNow answers POST /api/v1/hosts/{addr}/locate: 202, the lookup
// runs in the background; 409 when no switch is configured, 503 when too
// many lookups wait.
func (s *server) apiLocateNow(c *gin.Context) {
	addr, status, msg := s.locateNow(c)
	if msg != "" {
		abortError(c, status, msg)
		return
	}
	c.JSON(status, gin.H{"addr": addr, "status": "queued"})
}

// postLocateNow is the host card's "Locate now" button.
func (s *server) postLocateNow(c *gin.Context) {
	addr, status, _ := s.locateNow(c)
	if status == http.StatusBadRequest {
		s.renderMessage(c, http.StatusNotFound, "err_not_found")
		return
	}
	q := "queued"
	switch status {
	case http.StatusConflict:
		q = "off"
	case http.StatusServiceUnavailable:
		q = "busy"
	}
	c.Redirect(http.StatusSeeOther, "/hosts/"+addr.String()+"?locate="+q+"#where")
}

// addLocation adds what is known of where the host is and its other
// addresses (same MAC) to its card.
func (s *server) addLocation(ctx context.Context, d *hostDetail) error {
	d.Locatable = s.locator != nil
	if s.locations == nil {
		return nil
	}
	rec, ok, err := s.locations.Location(ctx, d.Host.Addr)
	if err != nil || !ok {
		return err
	}
	d.Location = &rec
	if rec.MAC == "" {
		return nil
	}
	addrs, err := s.locations.AddressesByMAC(ctx, rec.MAC)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a != d.Host.Addr {
			d.SameMachine = append(d.SameMachine, a)
		}
	}
	return nil
}

// addRowLocations adds the location, the MAC and the other listed
// addresses of the same MAC to each row, in one store query.
func (s *server) addRowLocations(ctx context.Context, rows []hostRow) error {
	if s.locations == nil || len(rows) == 0 {
		return nil
	}
	addrs := make([]netip.Addr, len(rows))
	for i, r := range rows {
		addrs[i] = r.Addr
	}
	recs, err := s.locations.LocationsFor(ctx, addrs)
	if err != nil {
		return fmt.Errorf("LocationsFor(%d addresses): %w", len(addrs), err)
	}
	byMAC := map[string][]netip.Addr{}
	for i := range rows {
		r := &rows[i]
		rec, ok := recs[r.Addr]
		if !ok || !rec.Known() {
			continue
		}
		r.Location, r.MAC = briefOf(rec), rec.MAC
		byMAC[rec.MAC] = append(byMAC[rec.MAC], r.Addr)
	}
	for i := range rows {
		r := &rows[i]
		for _, a := range byMAC[r.MAC] {
			if a != r.Addr {
				r.SameMachine = append(r.SameMachine, a)
			}
		}
		slices.SortFunc(r.SameMachine, netip.Addr.Compare)
	}
	return nil
}

// addPreviewLocations adds where each host of the mode preview is.
func (s *server) addPreviewLocations(ctx context.Context, hosts []PreviewHost) error {
	if s.locations == nil || len(hosts) == 0 {
		return nil
	}
	addrs := make([]netip.Addr, len(hosts))
	for i, h := range hosts {
		addrs[i] = h.Addr
	}
	recs, err := s.locations.LocationsFor(ctx, addrs)
	if err != nil {
		return fmt.Errorf("LocationsFor(%d addresses): %w", len(addrs), err)
	}
	for i := range hosts {
		if rec, ok := recs[hosts[i].Addr]; ok {
			hosts[i].Location = briefOf(rec)
		}
	}
	return nil
}
