package webui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

func (s *server) ctx(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request.Context(), s.storeTimeout)
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
		return rows, nil
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
	return rows, nil
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
	p.Data = gin.H{"Hosts": rows, "Sort": sortKey, "Dir": dir, "Columns": cols, "Inventory": s.inventory != nil}
	s.render(c, http.StatusOK, "hosts.html", p)
}

// hostDetail is a host's page and the answer of GET /api/v1/hosts/{addr}.
type hostDetail struct {
	Host     store.Host `json:"host"`
	Relay    string     `json:"relay,omitempty"`
	IsRelay  bool       `json:"is_relay"`
	Evidence bool       `json:"evidence"`
	// Seen is what passive inspection knows of the host, if wired.
	Seen   *store.HostSeen `json:"seen,omitempty"`
	Events []event.Event   `json:"events"`
}

// hostLimit bounds the events on a host page.
const hostLimit = 500

func (s *server) hostDetail(ctx context.Context, addr netip.Addr) (*hostDetail, bool, error) {
	hosts, err := s.events.Hosts(ctx, MaxLimit)
	if err != nil {
		return nil, false, fmt.Errorf("Hosts(%d): %w", MaxLimit, err)
	}
	d := &hostDetail{Host: store.Host{Addr: addr}}
	found := false
	for _, h := range hosts {
		if h.Addr.Unmap().WithZone("") == addr {
			d.Host, found = h, true
			d.Host.Addr = addr
			d.Host.FirstSeen, d.Host.LastSeen = h.FirstSeen.UTC(), h.LastSeen.UTC()
		}
	}
	evs, err := s.events.Events(ctx, store.Query{Client: addr, Limit: hostLimit})
	if err != nil {
		return nil, false, fmt.Errorf("Events(client %s): %w", addr, err)
	}
	d.Events = normalizeEvents(evs, hostLimit)
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
	p.Data = d
	s.render(c, http.StatusOK, "host.html", p)
}

// formTime accepts the browser's datetime-local value (taken as UTC) or
// RFC 3339, and returns RFC 3339 for parseEventQuery.
func formTime(v string) string {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return v
}

// pageEvents lists events with the API's filters; the CSV link exports
// the same selection.
func (s *server) pageEvents(c *gin.Context) {
	in := c.Request.URL.Query()
	q := url.Values{}
	for _, k := range []string{"kind", "client", "since", "until", "q", "limit"} {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			if k == "since" || k == "until" {
				v = formTime(v)
			}
			q.Set(k, v)
		}
	}
	p := s.newPage(c, "events.html", "events")
	eq, msg := parseEventQuery(q.Encode())
	status := http.StatusOK
	var evs []event.Event
	if msg != "" {
		p.Error, status = msg, http.StatusBadRequest
	} else {
		ctx, cancel := s.ctx(c)
		defer cancel()
		var err error
		if evs, err = s.events.Events(ctx, eq); err != nil {
			s.pageError(c, http.StatusInternalServerError, "events", err)
			return
		}
		evs = normalizeEvents(evs, eq.Limit)
	}
	kinds := make([]string, len(event.Kinds))
	for i, k := range event.Kinds {
		kinds[i] = string(k)
	}
	form := map[string]string{}
	for _, k := range []string{"kind", "client", "q", "limit", "since", "until"} {
		form[k] = in.Get(k)
	}
	p.Data = gin.H{"Events": evs, "Kinds": kinds, "Form": form, "CSV": "/api/v1/events.csv?" + q.Encode()}
	s.render(c, status, "events.html", p)
}

// policyData is the relays-and-policy page.
type policyData struct {
	Config  *config.Config
	Welcome bool
	// Errors maps a form field ("relays.new.address", "relays.2.name",
	// "limits.relay_sessions", "reject_text") to its message.
	Errors map[string]string
	// New holds the add-relay form's values.
	New    config.Relay
	Limits limitsForm
	// Edit holds the posted values of a failed relay edit, by index.
	Edit map[int]config.Relay
}

// limitsForm is the limits form as text fields.
type limitsForm struct {
	RelayMessagesPerMinute  string
	SenderMessagesPerMinute string
	RecipientsPerMessage    string
	RelaySessions           string
	RelaySessionsPerMinute  string
	RemoteMXPerMinute       string
	Domains                 string
	BurstFactor             string
	BurstMinMessages        string
	BurstHold               bool
	BurstHoldFor            string
	RejectText              string
}

func limitsFormOf(c *config.Config) limitsForm {
	l := c.Limits
	itoa := strconv.Itoa
	var dom []string
	for _, k := range slices.Sorted(mapKeys(l.DomainMessagesPerMinute)) {
		dom = append(dom, fmt.Sprintf("%s: %d", k, l.DomainMessagesPerMinute[k]))
	}
	return limitsForm{
		RelayMessagesPerMinute: itoa(l.RelayMessagesPerMinute), SenderMessagesPerMinute: itoa(l.SenderMessagesPerMinute),
		RecipientsPerMessage: itoa(l.RecipientsPerMessage), RelaySessions: itoa(l.RelaySessions),
		RelaySessionsPerMinute: itoa(l.RelaySessionsPerMinute), RemoteMXPerMinute: itoa(l.RemoteMXPerMinute),
		Domains: strings.Join(dom, "\n"), BurstFactor: strconv.FormatFloat(l.Burst.Factor, 'f', -1, 64),
		BurstMinMessages: itoa(l.Burst.MinMessages), BurstHold: l.Burst.Hold, BurstHoldFor: l.Burst.HoldFor.String(),
		RejectText: c.RejectText,
	}
}

func mapKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (s *server) newPolicy(cfg *config.Config) *policyData {
	return &policyData{Config: cfg, Errors: map[string]string{}, New: config.Relay{TLS: config.TLSPassthrough},
		Limits: limitsFormOf(cfg), Edit: map[int]config.Relay{}}
}

func (s *server) pagePolicy(c *gin.Context) {
	cfg := s.config.Current()
	p := s.newPage(c, "policy.html", "policy")
	pd := s.newPolicy(cfg)
	pd.Welcome = c.Query("welcome") == "1"
	if c.Query("saved") == "1" {
		p.Notice = p.M["saved"]
	}
	p.Data = pd
	s.render(c, http.StatusOK, "policy.html", p)
}

// applyForm applies cfg for a browser form. On a validation error it
// fills pd.Errors (through fieldKey, which maps the config key to a form
// field; "" means a page-level error), renders the policy page with 400
// and returns false; nothing has changed then.
func (s *server) applyForm(c *gin.Context, p *pageData, pd *policyData, cfg *config.Config, fieldKey func(string) string) bool {
	err := cfg.Validate()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), applyTimeout)
		defer cancel()
		err = s.config.Apply(ctx, cfg, c.GetString(actorKey), remoteAddr(c))
	}
	if err == nil {
		return true
	}
	var fe *config.FieldError
	if errors.As(err, &fe) {
		if k := fieldKey(fe.Key); k != "" {
			pd.Errors[k] = fe.Msg
			p.Error = p.M["err_form"]
		} else {
			p.Error = p.M["err_form"] + " " + err.Error()
		}
		p.Data = pd
		s.render(c, http.StatusBadRequest, "policy.html", p)
		return false
	}
	s.log.Error("apply config", "err", err, "actor", c.GetString(actorKey))
	p.Error = fmt.Sprintf("%v (the previous configuration stays in force)", err)
	p.Data = pd
	s.render(c, http.StatusInternalServerError, "policy.html", p)
	return false
}

// relayField maps "relays[3].address" to "relays.<form>.address".
func relayField(index int, form string) func(string) string {
	prefix := fmt.Sprintf("relays[%d].", index)
	return func(key string) string {
		if f, ok := strings.CutPrefix(key, prefix); ok {
			return "relays." + form + "." + f
		}
		return ""
	}
}

func (s *server) editableConfig(c *gin.Context) (*config.Config, bool) {
	cur := s.config.Current()
	if cur == nil {
		s.pageError(c, http.StatusInternalServerError, "current config", errors.New("no configuration loaded"))
		return nil, false
	}
	cfg, err := cloneConfig(cur)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "clone config", err)
		return nil, false
	}
	return cfg, true
}

func relayFromForm(c *gin.Context) config.Relay {
	r := config.Relay{Name: strings.TrimSpace(c.PostForm("name")), Address: strings.TrimSpace(c.PostForm("address")),
		TLS: c.PostForm("tls")}
	if r.TLS == "" {
		r.TLS = config.TLSPassthrough
	}
	return r
}

// postRelayAdd adds a relay.
func (s *server) postRelayAdd(c *gin.Context) {
	cfg, ok := s.editableConfig(c)
	if !ok {
		return
	}
	p := s.newPage(c, "policy.html", "policy")
	pd := s.newPolicy(s.config.Current())
	r := relayFromForm(c)
	pd.New = r
	cfg.Relays = append(cfg.Relays, r)
	if !s.applyForm(c, p, pd, cfg, relayField(len(cfg.Relays)-1, "new")) {
		return
	}
	s.audit(c, "", "relay.add", fmt.Sprintf("%s %s", r.Name, r.Address))
	c.Redirect(http.StatusSeeOther, "/policy?saved=1")
}

// relayIndex finds the relay named by the form's "orig" field.
func relayIndex(cfg *config.Config, name string) int {
	return slices.IndexFunc(cfg.Relays, func(r config.Relay) bool { return r.Name == name })
}

// formRelay returns an editable copy of the configuration and the index of
// the relay the form names ("orig"); it answers the request itself (and
// returns false) when there is none.
func (s *server) formRelay(c *gin.Context) (*config.Config, int, bool) {
	cfg, ok := s.editableConfig(c)
	if !ok {
		return nil, 0, false
	}
	i := relayIndex(cfg, c.PostForm("orig"))
	if i < 0 {
		s.renderMessage(c, http.StatusNotFound, "err_not_found")
		return nil, 0, false
	}
	return cfg, i, true
}

// postRelayUpdate changes a relay's name, address or TLS policy.
func (s *server) postRelayUpdate(c *gin.Context) {
	cfg, i, ok := s.formRelay(c)
	if !ok {
		return
	}
	p := s.newPage(c, "policy.html", "policy")
	pd := s.newPolicy(s.config.Current())
	old, r := cfg.Relays[i], relayFromForm(c)
	cfg.Relays[i] = r
	pd.Edit[i] = r
	if !s.applyForm(c, p, pd, cfg, relayField(i, strconv.Itoa(i))) {
		return
	}
	s.audit(c, "", "relay.update", fmt.Sprintf("%s %s -> %s %s (tls %s)", old.Name, old.Address, r.Name, r.Address, r.TLS))
	c.Redirect(http.StatusSeeOther, "/policy?saved=1")
}

// postRelayDelete removes a relay.
func (s *server) postRelayDelete(c *gin.Context) {
	cfg, i, ok := s.formRelay(c)
	if !ok {
		return
	}
	old := cfg.Relays[i]
	cfg.Relays = slices.Delete(cfg.Relays, i, i+1)
	p := s.newPage(c, "policy.html", "policy")
	pd := s.newPolicy(s.config.Current())
	if !s.applyForm(c, p, pd, cfg, func(string) string { return "" }) {
		return
	}
	s.audit(c, "", "relay.remove", fmt.Sprintf("%s %s", old.Name, old.Address))
	c.Redirect(http.StatusSeeOther, "/policy?saved=1")
}

// pageModeConfirm is the confirmation before a mode switch: for enforce
// it lists the hosts the switch would block.
func (s *server) pageModeConfirm(c *gin.Context) {
	to := config.Mode(c.Query("to"))
	if to != config.Monitor && to != config.Enforce {
		c.Redirect(http.StatusSeeOther, "/policy")
		return
	}
	cfg := s.config.Current()
	ctx, cancel := s.ctx(c)
	defer cancel()
	hosts, err := s.modePreview(ctx, cfg, previewDays)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "mode preview", err)
		return
	}
	p := s.newPage(c, "mode.html", "policy")
	p.Data = gin.H{"To": string(to), "Hosts": hosts, "Days": previewDays, "Relays": cfg.Relays}
	s.render(c, http.StatusOK, "mode.html", p)
}

// postMode switches the mode.
func (s *server) postMode(c *gin.Context) {
	to := config.Mode(c.PostForm("mode"))
	cfg, ok := s.editableConfig(c)
	if !ok {
		return
	}
	from := cfg.Mode
	cfg.Mode = to
	p := s.newPage(c, "policy.html", "policy")
	pd := s.newPolicy(s.config.Current())
	if !s.applyForm(c, p, pd, cfg, func(string) string { return "" }) {
		return
	}
	s.audit(c, "", "mode.switch", fmt.Sprintf("%s -> %s", from, to))
	c.Redirect(http.StatusSeeOther, "/policy?saved=1")
}

// postLimits sets the limits and the reject text.
func (s *server) postLimits(c *gin.Context) {
	cfg, ok := s.editableConfig(c)
	if !ok {
		return
	}
	p := s.newPage(c, "policy.html", "policy")
	pd := s.newPolicy(s.config.Current())
	f := limitsForm{
		RelayMessagesPerMinute: c.PostForm("relay_messages_per_minute"), SenderMessagesPerMinute: c.PostForm("sender_messages_per_minute"),
		RecipientsPerMessage: c.PostForm("recipients_per_message"), RelaySessions: c.PostForm("relay_sessions"),
		RelaySessionsPerMinute: c.PostForm("relay_sessions_per_minute"), RemoteMXPerMinute: c.PostForm("remote_mx_per_minute"),
		Domains: c.PostForm("domain_messages_per_minute"), BurstFactor: c.PostForm("burst_factor"),
		BurstMinMessages: c.PostForm("burst_min_messages"), BurstHold: c.PostForm("burst_hold") != "",
		BurstHoldFor: c.PostForm("burst_hold_for"), RejectText: c.PostForm("reject_text"),
	}
	pd.Limits = f
	l := &cfg.Limits
	for _, v := range []struct {
		key string
		in  string
		dst *int
	}{
		{"relay_messages_per_minute", f.RelayMessagesPerMinute, &l.RelayMessagesPerMinute},
		{"sender_messages_per_minute", f.SenderMessagesPerMinute, &l.SenderMessagesPerMinute},
		{"recipients_per_message", f.RecipientsPerMessage, &l.RecipientsPerMessage},
		{"relay_sessions", f.RelaySessions, &l.RelaySessions},
		{"relay_sessions_per_minute", f.RelaySessionsPerMinute, &l.RelaySessionsPerMinute},
		{"remote_mx_per_minute", f.RemoteMXPerMinute, &l.RemoteMXPerMinute},
		{"burst.min_messages", f.BurstMinMessages, &l.Burst.MinMessages},
	} {
		n, err := strconv.Atoi(strings.TrimSpace(v.in))
		if err != nil || n < 0 {
			pd.Errors["limits."+v.key] = p.M["err_number"]
			continue
		}
		*v.dst = n
	}
	if x, err := strconv.ParseFloat(strings.TrimSpace(f.BurstFactor), 64); err != nil || x < 0 {
		pd.Errors["limits.burst.factor"] = p.M["err_number"]
	} else {
		l.Burst.Factor = x
	}
	if d, err := time.ParseDuration(strings.TrimSpace(f.BurstHoldFor)); err != nil || d < 0 {
		pd.Errors["limits.burst.hold_for"] = p.M["err_duration"]
	} else {
		l.Burst.HoldFor = config.Duration(d)
	}
	l.Burst.Hold = f.BurstHold
	l.DomainMessagesPerMinute = nil
	for i, line := range strings.Split(f.Domains, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		dom, num, ok := strings.Cut(line, ":")
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if !ok || err != nil || n < 0 || strings.TrimSpace(dom) == "" {
			pd.Errors["limits.domain_messages_per_minute"] = fmt.Sprintf(p.M["err_domain_line"], i+1)
			break
		}
		if l.DomainMessagesPerMinute == nil {
			l.DomainMessagesPerMinute = map[string]int{}
		}
		l.DomainMessagesPerMinute[strings.ToLower(strings.TrimSpace(dom))] = n
	}
	cfg.RejectText = strings.TrimSpace(f.RejectText)
	if len(pd.Errors) > 0 {
		p.Error = p.M["err_form"]
		p.Data = pd
		s.render(c, http.StatusBadRequest, "policy.html", p)
		return
	}
	fieldKey := func(key string) string {
		if key == "reject_text" {
			return key
		}
		if strings.HasPrefix(key, "limits.domain_messages_per_minute") {
			return "limits.domain_messages_per_minute"
		}
		if strings.HasPrefix(key, "limits.") {
			return key
		}
		return ""
	}
	if !s.applyForm(c, p, pd, cfg, fieldKey) {
		return
	}
	s.audit(c, "", "limits.update", "limits and reject text")
	c.Redirect(http.StatusSeeOther, "/policy?saved=1")
}

// pageSystem shows interfaces, version, uptime, backup and restore,
// reboot and the firmware placeholder.
func (s *server) pageSystem(c *gin.Context) {
	s.systemPage(c, http.StatusOK, nil)
}

// systemPage renders the system page with status; extra carries a
// form's error ("RestoreError", "CertError", "UpdateError", "NetworkError")
// and what the network form held ("NetworkForm", "NetworkErrors").
func (s *server) systemPage(c *gin.Context, status int, extra gin.H) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	p := s.newPage(c, "system.html", "system")
	switch {
	case c.Query("restored") == "1":
		p.Notice = p.M["restored"]
	case c.Query("cert") == "1":
		p.Notice = p.M["cert_replaced"]
	case c.Query("updating") == "1":
		p.Notice = p.M["firmware_started"]
	case c.Query("network") == "applied":
		p.Notice = p.M["net_applied"]
	case c.Query("network") == "saved":
		p.Notice = p.M["net_saved"]
	}
	data := gin.H{"Status": s.statusNow(ctx), "Config": s.config.Current(), "CanReboot": s.system != nil,
		"CanUpdate": s.update != nil, "RestoreError": "", "CertError": "", "UpdateError": "", "Cert": nil,
		"CanNetwork": s.network != nil, "NetworkError": "", "NetworkErrors": map[string]string{}, "NetworkForm": networkForm{Mode: "dhcp"}}
	if s.certs != nil {
		data["Cert"] = s.certs.info()
	}
	if s.network != nil {
		// The form starts from the settings in force.
		if st, err := s.network.Load(); err != nil {
			s.log.Error("load management network", "err", err)
		} else {
			data["NetworkForm"] = networkForm{Mode: string(st.Mode), Address: st.Address, Gateway: st.Gateway, DNS: st.DNS}
		}
	}
	for k, v := range extra {
		data[k] = v
		if e, ok := v.(string); ok && e != "" {
			p.Error = p.M["err_form"]
		}
	}
	p.Data = data
	s.render(c, status, "system.html", p)
}

// getBackup downloads the running configuration as YAML.
func (s *server) getBackup(c *gin.Context) {
	cfg := s.config.Current()
	if cfg == nil {
		s.internalError(c, "current config", errors.New("no configuration loaded"))
		return
	}
	b, err := cfg.Marshal()
	if err != nil {
		s.internalError(c, "marshal config", err)
		return
	}
	name := "relaygate-config-" + s.now().UTC().Format("20060102-150405") + ".yaml"
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	s.audit(c, "", "config.backup", "configuration downloaded")
	c.Data(http.StatusOK, "application/yaml; charset=utf-8", b)
}

// restore validates and applies an uploaded configuration. It returns the
// HTTP status and, on failure, the message.
func (s *server) restore(c *gin.Context, body []byte) (int, string) {
	cfg, err := config.Parse(body)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), applyTimeout)
	defer cancel()
	if err := s.config.Apply(ctx, cfg, c.GetString(actorKey), remoteAddr(c)); err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			return http.StatusBadRequest, err.Error()
		}
		s.log.Error("restore config", "err", err)
		return http.StatusInternalServerError, fmt.Sprintf("apply config: %v (the previous configuration stays in force)", err)
	}
	s.audit(c, "", "config.restore", fmt.Sprintf("configuration restored: mode %s, %d relays", cfg.Mode, len(cfg.Relays)))
	return http.StatusOK, ""
}

// postRestore is the restore upload form (multipart field "config").
func (s *server) postRestore(c *gin.Context) {
	show := func(status int, msg string) {
		s.systemPage(c, status, gin.H{"RestoreError": msg})
	}
	fh, err := c.FormFile("config")
	if err != nil {
		show(http.StatusBadRequest, "no file uploaded (field \"config\")")
		return
	}
	if fh.Size > MaxConfigBytes {
		show(http.StatusRequestEntityTooLarge, fmt.Sprintf("config larger than %d bytes", MaxConfigBytes))
		return
	}
	f, err := fh.Open()
	if err != nil {
		show(http.StatusBadRequest, fmt.Sprintf("read upload: %v", err))
		return
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		show(http.StatusBadRequest, fmt.Sprintf("read upload: %v", err))
		return
	}
	if status, msg := s.restore(c, body); msg != "" {
		show(status, msg)
		return
	}
	c.Redirect(http.StatusSeeOther, "/system?restored=1")
}

// postReboot reboots the appliance when a System is wired.
func (s *server) postReboot(c *gin.Context) {
	if s.system == nil {
		s.renderMessage(c, http.StatusNotImplemented, "reboot_none")
		return
	}
	s.audit(c, "", "system.reboot", "reboot requested")
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.system.Reboot(ctx); err != nil {
		s.pageError(c, http.StatusInternalServerError, "reboot", err)
		return
	}
	p := s.newPage(c, "message.html", "system")
	p.Notice = p.M["rebooting"]
	s.render(c, http.StatusAccepted, "message.html", p)
}

// auditPageLimit is how many entries the audit page shows.
const auditPageLimit = 500

func (s *server) pageAudit(c *gin.Context) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	entries, err := s.auditLog.AuditLog(ctx, auditPageLimit)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "audit log", err)
		return
	}
	p := s.newPage(c, "audit.html", "audit")
	p.Data = gin.H{"Entries": entries}
	s.render(c, http.StatusOK, "audit.html", p)
}

func (s *server) tokensPage(c *gin.Context, status int, p *pageData, extra gin.H) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	toks, err := s.tokenAdmin.Tokens(ctx)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "list tokens", err)
		return
	}
	data := gin.H{"Tokens": toks, "Name": "", "NameError": "", "NewToken": ""}
	for k, v := range extra {
		data[k] = v
	}
	p.Data = data
	s.render(c, status, "tokens.html", p)
}

func (s *server) pageTokens(c *gin.Context) {
	s.tokensPage(c, http.StatusOK, s.newPage(c, "tokens.html", "tokens"), nil)
}

// validTokenName: 1-100 characters, one line.
func validTokenName(n string) bool {
	return n != "" && len([]rune(n)) <= 100 && !strings.ContainsAny(n, "\r\n\t")
}

// postTokenCreate creates a token and shows it once.
func (s *server) postTokenCreate(c *gin.Context) {
	p := s.newPage(c, "tokens.html", "tokens")
	name := strings.TrimSpace(c.PostForm("name"))
	if !validTokenName(name) {
		p.Error = p.M["err_form"]
		s.tokensPage(c, http.StatusBadRequest, p, gin.H{"NameError": p.M["err_token_name"], "Name": name})
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	tok, err := s.tokenAdmin.CreateToken(ctx, name)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "create token", err)
		return
	}
	s.audit(c, "", "token.create", name)
	s.tokensPage(c, http.StatusOK, p, gin.H{"NewToken": tok, "NewName": name})
}

// postTokenRevoke revokes a token by id.
func (s *server) postTokenRevoke(c *gin.Context) {
	id, err := strconv.ParseInt(c.PostForm("id"), 10, 64)
	if err != nil || id < 1 {
		s.renderMessage(c, http.StatusBadRequest, "err_not_found")
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.tokenAdmin.RevokeToken(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.renderMessage(c, http.StatusNotFound, "err_not_found")
			return
		}
		s.pageError(c, http.StatusInternalServerError, "revoke token", err)
		return
	}
	s.audit(c, "", "token.revoke", fmt.Sprintf("token %d", id))
	c.Redirect(http.StatusSeeOther, "/tokens")
}

func (s *server) pageAccount(c *gin.Context) {
	p := s.newPage(c, "account.html", "account")
	if c.Query("done") == "1" {
		p.Notice = p.M["password_changed"]
	}
	p.Data = gin.H{"Errors": map[string]string{}, "MinLen": MinPasswordLen}
	s.render(c, http.StatusOK, "account.html", p)
}
