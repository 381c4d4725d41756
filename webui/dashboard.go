package webui

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// dashboardRoutes registers the dashboard and the series it draws.
func (s *server) dashboardRoutes(ui, api *gin.RouterGroup) {
	ui.GET("/", s.pageDashboard)
	api.GET("/series", s.getSeries)
	api.GET("/dashboard", s.getDashboard)
}

// seriesResponse is the answer of GET /api/v1/series.
type seriesResponse struct {
	Points []store.Point `json:"points"`
	// Truncated says that more than maxSeriesPoints matched: Points are
	// the newest whole minutes, the oldest are left out.
	Truncated bool `json:"truncated"`
}

// maxSeriesPoints caps the points of one GET /api/v1/series answer.
const maxSeriesPoints = 100000

// getSeries answers GET /api/v1/series?metric=&key=&since=&until=.
// since defaults to an hour ago.
func (s *server) getSeries(c *gin.Context) {
	p, msg := queryParams(c.Request.URL.RawQuery, "metric", "key", "since", "until")
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return
	}
	metric := p["metric"]
	if metric == "" || len(metric) > 64 {
		abortError(c, http.StatusBadRequest, "missing metric (e.g. relay_messages, blocked, deferred)")
		return
	}
	since, until := s.now().Add(-time.Hour), time.Time{}
	for _, t := range []struct {
		key string
		dst *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := p[t.key]; v != "" {
			tm, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid %s %q (want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z)", t.key, v))
				return
			}
			*t.dst = tm
		}
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	pts, truncated, err := s.series.SeriesNewest(ctx, store.SeriesQuery{Metric: metric, Key: p["key"], Since: since, Until: until}, maxSeriesPoints)
	if err != nil {
		s.internalError(c, "series", fmt.Errorf("SeriesNewest(%s, %q): %w", metric, p["key"], err))
		return
	}
	if pts == nil {
		pts = []store.Point{}
	}
	c.JSON(http.StatusOK, seriesResponse{Points: pts, Truncated: truncated})
}

// getDashboard answers GET /api/v1/dashboard?minutes=: what the dashboard
// polls.
func (s *server) getDashboard(c *gin.Context) {
	p, msg := queryParams(c.Request.URL.RawQuery, "minutes")
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return
	}
	minutes := dashboardMinutes
	if v := p["minutes"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDashboardMinutes {
			abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid minutes %q (want 1 to %d)", v, maxDashboardMinutes))
			return
		}
		minutes = n
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	d, err := s.dashboard(ctx, minutes)
	if err != nil {
		s.internalError(c, "dashboard", err)
		return
	}
	c.JSON(http.StatusOK, d)
}

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

// dashboardLabels are the catalog entries dashboard.js draws with.
var dashboardLabels = []string{"blocked", "deferred", "no_data", "serving_up", "serving_down", "would_block",
	"outcome_relayed", "outcome_blocked", "outcome_would_block", "outcome_deferred", "outcome_upstream_error", "outcome_shed_short",
	"data_path_diverting", "data_path_fail_safe", "data_path_watching", "data_path_not_watching"}

// pageDashboard renders the dashboard shell; dashboard.js fills it from
// GET /api/v1/dashboard and keeps it live.
func (s *server) pageDashboard(c *gin.Context) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	d, err := s.dashboard(ctx, dashboardMinutes)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "dashboard", err)
		return
	}
	p := s.newPage(c, "dashboard.html", "dashboard")
	labels := map[string]string{}
	for _, k := range dashboardLabels {
		labels[k] = p.M[k]
	}
	p.Data = gin.H{"D": d, "L": labels}
	s.render(c, http.StatusOK, "dashboard.html", p)
}
