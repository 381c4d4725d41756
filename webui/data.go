package webui

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
)

// Dashboard and preview ranges.
const (
	// dashboardMinutes is the default chart range.
	dashboardMinutes = 180
	// maxDashboardMinutes bounds ?minutes= (one week).
	maxDashboardMinutes = 7 * 24 * 60
	// topHostsWindow is the range of "top offending hosts".
	topHostsWindow = 24 * time.Hour
	topHostsN      = 10
	// previewDays is how far back the mode-switch preview looks.
	previewDays = 7
)

// statusNow is the status with uptime filled in and no nil lists.
func (s *server) statusNow(ctx context.Context) Status {
	st := s.status.Status(ctx)
	if !st.Started.IsZero() {
		st.Started = st.Started.UTC()
		up := max(s.now().Sub(st.Started), 0)
		st.Uptime = up.Truncate(time.Second).String()
		st.UptimeSeconds = up.Seconds()
	}
	if st.Ports == nil {
		st.Ports = []PortStatus{}
	}
	if st.Counters == nil {
		st.Counters = map[string]uint64{}
	}
	return st
}

// dashboardData is the answer of GET /api/v1/dashboard: everything the
// dashboard page redraws on each poll.
type dashboardData struct {
	Status Status `json:"status"`
	// Minutes are the chart's x values, unix seconds, oldest first.
	Minutes []int64 `json:"minutes"`
	// Relayed maps each relay name to messages per minute, aligned with
	// Minutes.
	Relayed  map[string][]int64 `json:"relayed"`
	Blocked  []int64            `json:"blocked"`
	Deferred []int64            `json:"deferred"`
	Totals   map[string]int64   `json:"totals"`
	TopHosts []KeyTotal         `json:"top_hosts"`
	Recent   []event.Event      `json:"recent"`
}

// dashboard gathers the dashboard's data over the last minutes.
func (s *server) dashboard(ctx context.Context, minutes int) (*dashboardData, error) {
	now := s.now().UTC()
	end := now.Truncate(time.Minute)
	start := end.Add(-time.Duration(minutes-1) * time.Minute)
	d := &dashboardData{Status: s.statusNow(ctx), Relayed: map[string][]int64{}, Totals: map[string]int64{}}
	idx := map[int64]int{}
	for i := range minutes {
		m := start.Add(time.Duration(i) * time.Minute).Unix()
		idx[m] = i
		d.Minutes = append(d.Minutes, m)
	}
	d.Blocked = make([]int64, minutes)
	d.Deferred = make([]int64, minutes)
	// Every configured relay gets a line, even at zero.
	if cfg := s.config.Current(); cfg != nil {
		for _, r := range cfg.Relays {
			d.Relayed[r.Name] = make([]int64, minutes)
		}
	}
	for _, m := range []struct {
		metric string
		total  string
		add    func(p Point, i int)
	}{
		{MetricRelayMessages, "relayed", func(p Point, i int) {
			if d.Relayed[p.Key] == nil {
				d.Relayed[p.Key] = make([]int64, minutes)
			}
			d.Relayed[p.Key][i] += p.Value
		}},
		{MetricBlocked, "blocked", func(p Point, i int) { d.Blocked[i] += p.Value }},
		{MetricDeferred, "deferred", func(p Point, i int) { d.Deferred[i] += p.Value }},
	} {
		pts, err := s.series.Series(ctx, m.metric, "", start, end.Add(time.Minute))
		if err != nil {
			return nil, fmt.Errorf("series %s: %w", m.metric, err)
		}
		for _, p := range pts {
			i, ok := idx[p.Minute.Unix()]
			if !ok {
				continue
			}
			m.add(p, i)
			d.Totals[m.total] += p.Value
		}
	}
	top, err := s.series.TopKeys(ctx, MetricBlocked, now.Add(-topHostsWindow), topHostsN)
	if err != nil {
		return nil, fmt.Errorf("top hosts: %w", err)
	}
	d.TopHosts = top
	if d.TopHosts == nil {
		d.TopHosts = []KeyTotal{}
	}
	evs, err := s.events.Events(ctx, EventQuery{Limit: 10})
	if err != nil {
		return nil, fmt.Errorf("recent events: %w", err)
	}
	d.Recent = normalizeEvents(evs, 10)
	return d, nil
}

// normalizeEvents sorts newest first, cuts to limit and normalizes.
func normalizeEvents(evs []event.Event, limit int) []event.Event {
	slices.SortStableFunc(evs, func(a, b event.Event) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(b.ID, a.ID))
	})
	if len(evs) > limit {
		evs = evs[:limit]
	}
	out := make([]event.Event, len(evs))
	for i, e := range evs {
		e.Normalize()
		out[i] = e
	}
	return out
}

// PreviewHost is a source that a switch to enforce would block.
type PreviewHost struct {
	Addr     netip.Addr `json:"addr"`
	Attempts int        `json:"attempts"`
	LastSeen time.Time  `json:"last_seen"`
	// Senders are up to three envelope senders it used.
	Senders []string `json:"senders"`
	// Servers are up to three destinations it tried.
	Servers []string `json:"servers"`
}

// modePreview lists the non-relay sources (for cfg's relays) that tried
// SMTP in the last days: what enforce mode would block.
func (s *server) modePreview(ctx context.Context, cfg *config.Config, days int) ([]PreviewHost, error) {
	since := s.now().Add(-time.Duration(days) * 24 * time.Hour)
	relays := relayPolicy(cfg)
	byAddr := map[netip.Addr]*PreviewHost{}
	for _, k := range []event.Kind{event.WouldBlock, event.Blocked, event.Refused} {
		evs, err := s.events.Events(ctx, EventQuery{Kind: k, Since: since, Limit: MaxLimit})
		if err != nil {
			return nil, fmt.Errorf("events %s: %w", k, err)
		}
		for _, e := range evs {
			e.Normalize()
			if !e.Client.IsValid() || isRelay(relays, e.Client) {
				continue
			}
			h := byAddr[e.Client]
			if h == nil {
				h = &PreviewHost{Addr: e.Client, Senders: []string{}, Servers: []string{}}
				byAddr[e.Client] = h
			}
			h.Attempts++
			if e.Time.After(h.LastSeen) {
				h.LastSeen = e.Time
			}
			if e.MailFrom != "" && len(h.Senders) < 3 && !slices.Contains(h.Senders, e.MailFrom) {
				h.Senders = append(h.Senders, e.MailFrom)
			}
			if sv := e.Server; sv.IsValid() && len(h.Servers) < 3 && !slices.Contains(h.Servers, sv.String()) {
				h.Servers = append(h.Servers, sv.String())
			}
		}
	}
	// Hosts passive inspection saw speaking SMTP, even without an event.
	if s.inventory != nil {
		seen, err := s.inventory.HostsSeen(ctx, MaxLimit)
		if err != nil {
			return nil, fmt.Errorf("hosts seen: %w", err)
		}
		for _, sh := range seen {
			a := sh.Addr.Unmap().WithZone("")
			if byAddr[a] != nil || sh.LastSeen.Before(since) || !a.IsValid() || isRelay(relays, a) {
				continue
			}
			h := &PreviewHost{Addr: a, Attempts: int(sh.Flows), LastSeen: sh.LastSeen, Senders: []string{}, Servers: []string{}}
			for _, mx := range sh.RemoteMXs {
				if len(h.Servers) < 3 {
					h.Servers = append(h.Servers, mx)
				}
			}
			byAddr[a] = h
		}
	}
	out := make([]PreviewHost, 0, len(byAddr))
	for _, h := range byAddr {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b PreviewHost) int {
		return cmp.Or(cmp.Compare(b.Attempts, a.Attempts), a.Addr.Compare(b.Addr))
	})
	return out, nil
}

// cloneConfig returns a deep copy of c (through its YAML form, which is
// the file's and so always complete).
func cloneConfig(c *config.Config) (*config.Config, error) {
	b, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	n, err := config.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("re-read running configuration: %w", err)
	}
	return n, nil
}

// csvCell defuses spreadsheet formulas (OWASP "CSV injection"): envelope
// senders and HELO names come from untrusted clients.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
