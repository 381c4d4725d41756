package webui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// hostsRoutes registers the hosts list, a host's card and its evidence.
func (s *server) hostsRoutes(ui, api *gin.RouterGroup) {
	ui.GET("/hosts", s.pageHosts)
	ui.GET("/hosts/:addr", s.pageHost)
	api.GET("/hosts", s.getHosts)
	api.GET("/hosts/:addr", s.getHost)
	api.GET("/hosts/:addr/pcap", s.getHostPcap)
}

// hostsResponse is the answer of GET /api/v1/hosts.
type hostsResponse struct {
	Hosts []hostRow `json:"hosts"`
}

// getHosts answers GET /api/v1/hosts?limit=.
func (s *server) getHosts(c *gin.Context) {
	limit, ok := limitOnly(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	rows, err := s.hostRows(ctx)
	if err != nil {
		s.internalError(c, "query hosts", err)
		return
	}
	// Most recently seen first, as the hosts page by default.
	slices.SortStableFunc(rows, func(a, b hostRow) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), a.Addr.Compare(b.Addr))
	})
	if len(rows) > limit {
		rows = rows[:limit]
	}
	c.JSON(http.StatusOK, hostsResponse{Hosts: rows})
}

// getHost answers GET /api/v1/hosts/{addr}: counters, events, whether
// evidence exists.
func (s *server) getHost(c *gin.Context) {
	addr, ok := parseHostAddr(c.Param("addr"))
	if !ok {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid address %q (want an IP address, e.g. 192.0.2.7)", c.Param("addr")))
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	d, found, err := s.hostDetail(ctx, addr)
	if err != nil {
		s.internalError(c, "host", err)
		return
	}
	if !found {
		abortError(c, http.StatusNotFound, fmt.Sprintf("no events from %s", addr))
		return
	}
	c.JSON(http.StatusOK, d)
}

// getHostPcap answers GET /api/v1/hosts/{addr}/pcap with the evidence
// capture, when the inspection serves one.
func (s *server) getHostPcap(c *gin.Context) {
	addr, ok := parseHostAddr(c.Param("addr"))
	if !ok {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid address %q (want an IP address, e.g. 192.0.2.7)", c.Param("addr")))
		return
	}
	if s.evidence == nil {
		abortError(c, http.StatusNotFound, "no packet evidence on this appliance")
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if !s.evidence.HasEvidence(ctx, addr) {
		abortError(c, http.StatusNotFound, fmt.Sprintf("no packet evidence for %s", addr))
		return
	}
	c.Header("Content-Type", "application/vnd.tcpdump.pcap")
	c.Header("Content-Disposition", `attachment; filename="relaygate-`+strings.ReplaceAll(addr.String(), ":", "_")+`.pcap"`)
	if err := s.evidence.WritePcap(ctx, c.Writer, addr); err != nil {
		if errors.Is(err, store.ErrNotFound) && !c.Writer.Written() {
			c.Header("Content-Disposition", "")
			abortError(c, http.StatusNotFound, fmt.Sprintf("no packet evidence for %s", addr))
			return
		}
		if !c.Writer.Written() {
			s.internalError(c, "write pcap", err)
			return
		}
		s.log.Error("write pcap", "err", err, "addr", addr.String())
	}
}

// hostRow is a Host with what the UI shows beside it.
type hostRow struct {
	store.Host
	Relay   string `json:"relay,omitempty"`
	IsRelay bool   `json:"is_relay"`
	// RDNS, Label, Flows, Messages and EncryptedFlows come from passive
	// inspection, when wired.
	RDNS           string `json:"rdns,omitempty"`
	Label          string `json:"label,omitempty"`
	Flows          int64  `json:"flows"`
	Messages       int64  `json:"messages"`
	EncryptedFlows int64  `json:"encrypted_flows"`
	// Location is where the switches last found the address, MAC its
	// MAC, and SameMachine the other listed addresses with that MAC
	// (one machine), when location is wired.
	Location    *LocationBrief `json:"location,omitempty"`
	MAC         string         `json:"mac,omitempty"`
	SameMachine []netip.Addr   `json:"same_machine,omitempty"`
}

// hostRows merges the outcome counters of the hosts (events and series)
// with passive inspection's inventory: every address that spoke SMTP,
// whether or not it has an event. The hosts page and GET /api/v1/hosts
// show the same rows.
func (s *server) hostRows(ctx context.Context) ([]hostRow, error) {
	hosts, err := s.events.Hosts(ctx, MaxLimit)
	if err != nil {
		return nil, fmt.Errorf("Hosts(%d): %w", MaxLimit, err)
	}
	relays := relayPolicy(s.config.Current())
	rows := make([]hostRow, 0, len(hosts))
	index := map[netip.Addr]int{}
	for _, h := range hosts {
		h.Addr = h.Addr.Unmap().WithZone("")
		h.FirstSeen, h.LastSeen = h.FirstSeen.UTC(), h.LastSeen.UTC()
		name, ok := relayName(relays, h.Addr)
		index[h.Addr] = len(rows)
		rows = append(rows, hostRow{Host: h, Relay: name, IsRelay: ok})
	}
	if s.inventory == nil {
		return rows, s.addRowLocations(ctx, rows)
	}
	seen, err := s.inventory.HostsSeen(ctx, MaxLimit)
	if err != nil {
		return nil, fmt.Errorf("HostsSeen(%d): %w", MaxLimit, err)
	}
	for _, h := range seen {
		a := h.Addr.Unmap().WithZone("")
		i, ok := index[a]
		if !ok {
			// Seen on the wire only: no outcome yet.
			name, isR := relayName(relays, a)
			i = len(rows)
			index[a] = i
			rows = append(rows, hostRow{Host: store.Host{Addr: a, FirstSeen: h.FirstSeen.UTC(), LastSeen: h.LastSeen.UTC()}, Relay: name, IsRelay: isR})
		}
		r := &rows[i]
		r.RDNS, r.Label, r.Flows, r.Messages, r.EncryptedFlows = h.RDNS, h.Label, h.Flows, h.Messages, h.EncryptedFlows
		if h.LastSeen.After(r.LastSeen) {
			r.LastSeen = h.LastSeen.UTC()
		}
		if !h.FirstSeen.IsZero() && h.FirstSeen.Before(r.FirstSeen) {
			r.FirstSeen = h.FirstSeen.UTC()
		}
	}
	return rows, s.addRowLocations(ctx, rows)
}

// hostSorts are the sortable columns of the hosts page.
var hostSorts = map[string]func(a, b hostRow) int{
	"addr":       func(a, b hostRow) int { return a.Addr.Compare(b.Addr) },
	"attempts":   func(a, b hostRow) int { return cmp.Compare(a.Attempts, b.Attempts) },
	"blocked":    func(a, b hostRow) int { return cmp.Compare(a.Blocked, b.Blocked) },
	"relayed":    func(a, b hostRow) int { return cmp.Compare(a.Relayed, b.Relayed) },
	"deferred":   func(a, b hostRow) int { return cmp.Compare(a.Deferred, b.Deferred) },
	"first_seen": func(a, b hostRow) int { return a.FirstSeen.Compare(b.FirstSeen) },
	"last_seen":  func(a, b hostRow) int { return a.LastSeen.Compare(b.LastSeen) },
	"flows":      func(a, b hostRow) int { return cmp.Compare(a.Flows, b.Flows) },
}

// pageHosts lists every source that spoke SMTP, sortable by any column
// (?sort=blocked&dir=asc).
func (s *server) pageHosts(c *gin.Context) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	rows, err := s.hostRows(ctx)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "hosts", err)
		return
	}
	sortKey, dir := c.Query("sort"), c.Query("dir")
	if hostSorts[sortKey] == nil {
		sortKey = "last_seen"
	}
	if dir != "asc" {
		dir = "desc"
	}
	f := hostSorts[sortKey]
	slices.SortStableFunc(rows, func(a, b hostRow) int {
		if dir == "desc" {
			return cmp.Or(f(b, a), a.Addr.Compare(b.Addr))
		}
		return cmp.Or(f(a, b), a.Addr.Compare(b.Addr))
	})
	cols := []string{"addr", "attempts", "blocked", "relayed", "deferred", "first_seen", "last_seen"}
	if s.inventory != nil {
		cols = append(cols, "flows")
	}
	p := s.newPage(c, "hosts.html", "hosts")
	p.Data = gin.H{"Hosts": rows, "Sort": sortKey, "Dir": dir, "Columns": cols, "Inventory": s.inventory != nil, "Where": s.locations != nil}
	s.render(c, http.StatusOK, "hosts.html", p)
}

// hostDetail is a host's page and the answer of GET /api/v1/hosts/{addr}.
type hostDetail struct {
	Host     store.Host `json:"host"`
	Relay    string     `json:"relay,omitempty"`
	IsRelay  bool       `json:"is_relay"`
	Evidence bool       `json:"evidence"`
	// Seen is what passive inspection knows of the host, if wired.
	Seen *store.HostSeen `json:"seen,omitempty"`
	// Events are the newest hostEvents events; EventsNext, when older
	// ones exist, is the events API's query for them (the page links the
	// events page instead).
	Events     []event.Event `json:"events"`
	EventsNext string        `json:"events_next,omitempty"`
	// OlderEvents is the events page of the older events, for the page.
	OlderEvents string `json:"-"`
	// Location is where the switches found the host, with the last
	// lookup; SameMachine its other addresses (same MAC). Both absent
	// while unknown.
	Location    *store.LocationRecord `json:"location,omitempty"`
	SameMachine []netip.Addr          `json:"same_machine,omitempty"`
	// Locatable shows the "Locate now" button; LocateResult is the
	// button's outcome (queued, off, busy), for the page.
	Locatable    bool   `json:"-"`
	LocateResult string `json:"-"`
}

// hostEvents bounds the events on a host's card: the rest are a link
// away, so that the card of a host with many large events stays small.
const hostEvents = 50

func (s *server) hostDetail(ctx context.Context, addr netip.Addr) (*hostDetail, bool, error) {
	d := &hostDetail{Host: store.Host{Addr: addr}}
	found := false
	h, err := s.events.HostByAddr(ctx, addr)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, false, fmt.Errorf("HostByAddr(%s): %w", addr, err)
	default:
		d.Host, found = h, true
		d.Host.Addr = addr
		d.Host.FirstSeen, d.Host.LastSeen = h.FirstSeen.UTC(), h.LastSeen.UTC()
	}
	d.Events = []event.Event{}
	more, err := s.events.EachEvent(ctx, store.Query{Client: addr, Limit: hostEvents}, func(e event.Event) error {
		e.Normalize()
		d.Events = append(d.Events, e)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("EachEvent(client %s): %w", addr, err)
	}
	if more {
		q := url.Values{"client": {addr.String()}, "before": {store.CursorOf(d.Events[len(d.Events)-1]).String()}}
		d.EventsNext = "/api/v1/events?" + q.Encode()
		d.OlderEvents = "/events?" + q.Encode()
	}
	found = found || len(d.Events) > 0
	d.Relay, d.IsRelay = relayName(relayPolicy(s.config.Current()), addr)
	if s.inventory != nil {
		seen, err := s.inventory.HostSeenByAddr(ctx, addr)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, fmt.Errorf("HostSeenByAddr(%s): %w", addr, err)
		}
		if err == nil {
			d.Seen, found = &seen, true
			if d.Host.FirstSeen.IsZero() {
				d.Host.FirstSeen, d.Host.LastSeen = seen.FirstSeen.UTC(), seen.LastSeen.UTC()
			}
		}
	}
	if s.evidence != nil {
		d.Evidence = s.evidence.HasEvidence(ctx, addr)
	}
	if err := s.addLocation(ctx, d); err != nil {
		return nil, false, fmt.Errorf("location of %s: %w", addr, err)
	}
	found = found || d.Location != nil
	return d, found, nil
}

func parseHostAddr(v string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// pageHost shows one host: counters, timeline, envelopes, evidence.
func (s *server) pageHost(c *gin.Context) {
	addr, ok := parseHostAddr(c.Param("addr"))
	if !ok {
		s.renderMessage(c, http.StatusNotFound, "err_not_found")
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	d, found, err := s.hostDetail(ctx, addr)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "host", err)
		return
	}
	if !found {
		s.renderMessage(c, http.StatusNotFound, "err_not_found")
		return
	}
	p := s.newPage(c, "host.html", "hosts")
	switch v := c.Query("locate"); v {
	case "queued", "off", "busy":
		d.LocateResult = v
	}
	p.Data = d
	s.render(c, http.StatusOK, "host.html", p)
}
