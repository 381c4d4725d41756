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
	"github.com/relaygate/relaygate/store"
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
	// Monitor is true in monitor mode: nothing is blocked yet, Blocked
	// and TopHosts are who would be.
	Monitor bool `json:"monitor"`
	// Minutes are the chart's x values, unix seconds, oldest first.
	Minutes []int64 `json:"minutes"`
	// Relayed maps each relay name to messages per minute, aligned with
	// Minutes.
	Relayed map[string][]int64 `json:"relayed"`
	// Blocked counts per minute what the proxy refused (the refusal
	// dialogue, the connection caps) and, in monitor mode, what passive
	// inspection saw from sources that are not relays (would_block).
	Blocked  []int64 `json:"blocked"`
	Deferred []int64 `json:"deferred"`
	// Outcomes are every attempt per minute by outcome (see
	// dashboardOutcomes), so that the numbers add up.
	Outcomes map[string][]int64 `json:"outcomes"`
	// Totals sum the range: relayed (messages), blocked, deferred, and
	// every outcome as "outcome_<name>", encrypted_sessions.
	Totals   map[string]int64 `json:"totals"`
	TopHosts []store.KeyTotal `json:"top_hosts"`
	// TopSenders are the envelope senders with the most relayed messages
	// per relay, over the last hour and 24 hours.
	TopSenders map[string][]RelaySender `json:"top_senders"`
	// Alerts are the alert events in the range, drawn as marks on the
	// relayed chart.
	Alerts []event.Event `json:"alerts"`
	Recent []event.Event `json:"recent"`
}

// RelaySender is an envelope sender's relayed messages through a relay.
type RelaySender struct {
	Relay    string `json:"relay"`
	Sender   string `json:"sender"`
	Messages int64  `json:"messages"`
}

// dashboardOutcomes are the outcome lines of the attempts chart: the name
// and the series (keyed by client) that add up to it. Relayed counts
// relayed events (a message, or a session without one), shed counts the
// packets the ruleset dropped or reset before they reached the proxy.
var dashboardOutcomes = []struct {
	name    string
	metrics []string
}{
	{"relayed", []string{store.AttemptsSeries(event.Relayed)}},
	{"blocked", []string{store.AttemptsSeries(event.Blocked), store.AttemptsSeries(event.Refused)}},
	{"would_block", []string{store.AttemptsSeries(event.WouldBlock)}},
	{"deferred", []string{store.AttemptsSeries(event.Deferred)}},
	{"upstream_error", []string{store.AttemptsSeries(event.UpstreamError)}},
	{"shed", []string{MetricShed}},
}

// topSenderWindows are the ranges of the top senders list.
var topSenderWindows = []struct {
	name string
	d    time.Duration
}{{"1h", time.Hour}, {"24h", 24 * time.Hour}}

const topSendersN = 10

// dashboard gathers the dashboard's data over the last minutes.
func (s *server) dashboard(ctx context.Context, minutes int) (*dashboardData, error) {
	now := s.now().UTC()
	end := now.Truncate(time.Minute)
	start := end.Add(-time.Duration(minutes-1) * time.Minute)
	d := &dashboardData{Status: s.statusNow(ctx), Relayed: map[string][]int64{}, Totals: map[string]int64{},
		Outcomes: map[string][]int64{}, TopSenders: map[string][]RelaySender{}}
	d.Monitor = d.Status.Mode == config.Monitor
	idx := map[int64]int{}
	for i := range minutes {
		m := start.Add(time.Duration(i) * time.Minute).Unix()
		idx[m] = i
		d.Minutes = append(d.Minutes, m)
	}
	// Every configured relay gets a line, even at zero.
	if cfg := s.config.Current(); cfg != nil {
		for _, r := range cfg.Relays {
			d.Relayed[r.Name] = make([]int64, minutes)
		}
	}
	// perMinute sums every key of metric per minute of the range.
	perMinute := func(metric string) ([]int64, int64, error) {
		pts, err := s.series.SeriesTotals(ctx, metric, start, end.Add(time.Minute))
		if err != nil {
			return nil, 0, fmt.Errorf("series %s: %w", metric, err)
		}
		out, total := make([]int64, minutes), int64(0)
		for _, p := range pts {
			if i, ok := idx[p.Minute.Unix()]; ok {
				out[i] += p.Value
				total += p.Value
			}
		}
		return out, total, nil
	}
	pts, err := s.series.Series(ctx, store.SeriesQuery{Metric: MetricRelayMessages, Since: start, Until: end.Add(time.Minute)})
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", MetricRelayMessages, err)
	}
	for _, p := range pts {
		i, ok := idx[p.Minute.Unix()]
		if !ok {
			continue
		}
		if d.Relayed[p.Key] == nil {
			d.Relayed[p.Key] = make([]int64, minutes)
		}
		d.Relayed[p.Key][i] += p.Value
		d.Totals["relayed"] += p.Value
	}
	if d.Blocked, d.Totals["blocked"], err = perMinute(MetricBlocked); err != nil {
		return nil, err
	}
	if d.Deferred, d.Totals["deferred"], err = perMinute(MetricDeferred); err != nil {
		return nil, err
	}
	if _, d.Totals["encrypted_sessions"], err = perMinute(MetricRelayEncrypted); err != nil {
		return nil, err
	}
	for _, o := range dashboardOutcomes {
		sum := make([]int64, minutes)
		for _, m := range o.metrics {
			v, total, err := perMinute(m)
			if err != nil {
				return nil, err
			}
			for i := range v {
				sum[i] += v[i]
			}
			d.Totals["outcome_"+o.name] += total
		}
		d.Outcomes[o.name] = sum
	}
	top, err := s.series.TopKeys(ctx, MetricBlocked, now.Add(-topHostsWindow), topHostsN)
	if err != nil {
		return nil, fmt.Errorf("top hosts: %w", err)
	}
	d.TopHosts = top
	if d.TopHosts == nil {
		d.TopHosts = []store.KeyTotal{}
	}
	for _, w := range topSenderWindows {
		top, err := s.series.TopKeys(ctx, MetricRelaySenderMessages, now.Add(-w.d), topSendersN)
		if err != nil {
			return nil, fmt.Errorf("top senders: %w", err)
		}
		list := make([]RelaySender, 0, len(top))
		for _, k := range top {
			relay, sender := store.SplitRelaySenderKey(k.Key)
			list = append(list, RelaySender{Relay: relay, Sender: sender, Messages: k.Value})
		}
		d.TopSenders[w.name] = list
	}
	alerts, err := s.events.Events(ctx, store.Query{Kind: event.Alert, Since: start, Limit: 100})
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	d.Alerts = normalizeEvents(alerts, 100)
	evs, err := s.events.Events(ctx, store.Query{Limit: 10})
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
		evs, err := s.events.Events(ctx, store.Query{Kind: k, Since: since, Limit: MaxLimit})
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
