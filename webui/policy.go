package webui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/policy"
)

// policyRoutes registers relays, mode and limits, and the configuration
// itself with its backup and restore.
func (s *server) policyRoutes(ui, api *gin.RouterGroup) {
	ui.GET("/policy", s.pagePolicy)
	ui.POST("/policy/relays/add", s.postRelayAdd)
	ui.POST("/policy/relays/update", s.postRelayUpdate)
	ui.POST("/policy/relays/delete", s.postRelayDelete)
	ui.GET("/policy/mode", s.pageModeConfirm)
	ui.POST("/policy/mode", s.postMode)
	ui.POST("/policy/limits", s.postLimits)
	ui.GET("/system/backup", s.getBackup)
	ui.POST("/system/restore", s.postRestore)
	api.GET("/config", s.getConfig)
	api.PUT("/config", s.putConfig)
	api.GET("/config/backup", s.getBackup)
	api.POST("/config/restore", s.apiRestore)
	api.GET("/mode-preview", s.getModePreview)
}

// applyTimeout bounds one ConfigManager.Apply.
const applyTimeout = 2 * time.Minute

// getConfig answers GET /api/v1/config with the running configuration.
func (s *server) getConfig(c *gin.Context) {
	cfg := s.config.Current()
	if cfg == nil {
		s.internalError(c, "current config", errors.New("no configuration loaded"))
		return
	}
	etag := s.setConfigETag(c, cfg)
	if etag == "" {
		return
	}
	if inm := c.GetHeader("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		c.Status(http.StatusNotModified)
		return
	}
	c.JSON(http.StatusOK, redactSecrets(cfg))
}

// putConfig answers PUT /api/v1/config: the body (JSON or YAML, the same
// schema as the file) replaces the configuration. Validation errors are
// 400 naming the key; on success the answer is the new configuration with
// its ETag. An If-Match that names another version than the running one
// is 412 and changes nothing; without If-Match (or with "*") the PUT
// replaces whatever runs, as it did before versions existed.
//
// The Content-Type is not checked (curl --data-binary sends a form type):
// JSON is YAML, so config.Parse reads both. That is safe from cross-site
// requests once cookies are accepted, because browsers preflight every
// cross-origin PUT and the API sends no CORS headers.
func (s *server) putConfig(c *gin.Context) {
	tooLarge := fmt.Sprintf("config larger than %d bytes", MaxConfigBytes)
	if c.Request.ContentLength > MaxConfigBytes {
		abortError(c, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxConfigBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			abortError(c, http.StatusRequestEntityTooLarge, tooLarge)
			return
		}
		abortError(c, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
		return
	}
	s.cfgVersion.write.Lock()
	defer s.cfgVersion.write.Unlock()
	cur := s.config.Current()
	if !s.checkIfMatch(c, cur) {
		return
	}
	cfg, err := config.ParseWith(body, func(c *config.Config) { keepSecrets(c, cur) })
	if err != nil {
		abortError(c, http.StatusBadRequest, err.Error())
		return
	}
	actor, remote := c.GetString(actorKey), remoteAddr(c)
	// A client that hangs up must not cut an apply short: the manager
	// would roll back and nobody would learn of it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), applyTimeout)
	defer cancel()
	if err := s.config.Apply(ctx, cfg, actor, remote); err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			abortError(c, http.StatusBadRequest, err.Error())
			return
		}
		s.log.Error("apply config", "err", err, "actor", actor, "remote", remote)
		abortError(c, http.StatusInternalServerError,
			fmt.Sprintf("apply config: %v (the previous configuration stays in force)", err))
		return
	}
	s.log.Info("config applied", "actor", actor, "remote", remote, "mode", cfg.Mode)
	if s.setConfigETag(c, s.config.Current()) == "" {
		return
	}
	c.JSON(http.StatusOK, redactSecrets(cfg))
}

// apiRestore answers POST /api/v1/config/restore: like PUT /api/v1/config
// (If-Match included), recorded in the audit log as a restore.
func (s *server) apiRestore(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxConfigBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			abortError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("config larger than %d bytes", MaxConfigBytes))
			return
		}
		abortError(c, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
		return
	}
	s.cfgVersion.write.Lock()
	defer s.cfgVersion.write.Unlock()
	if !s.checkIfMatch(c, s.config.Current()) {
		return
	}
	if status, msg := s.restore(c, body); msg != "" {
		abortError(c, status, msg)
		return
	}
	cur := s.config.Current()
	if s.setConfigETag(c, cur) == "" {
		return
	}
	c.JSON(http.StatusOK, redactSecrets(cur))
}

// modePreviewResponse is the answer of GET /api/v1/mode-preview.
type modePreviewResponse struct {
	Mode  config.Mode   `json:"mode"`
	Days  int           `json:"days"`
	Hosts []PreviewHost `json:"hosts"`
}

// getModePreview answers GET /api/v1/mode-preview?mode=enforce&days=7:
// the sources that are not relays and tried SMTP in the last days, which
// enforce mode would block. For mode=monitor the list is empty.
func (s *server) getModePreview(c *gin.Context) {
	p, msg := queryParams(c.Request.URL.RawQuery, "mode", "days")
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return
	}
	mode := config.Mode(p["mode"])
	if mode == "" {
		mode = config.Enforce
	}
	if mode != config.Enforce && mode != config.Monitor {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("unknown mode %q (want monitor or enforce)", mode))
		return
	}
	days := previewDays
	if v := p["days"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 90 {
			abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid days %q (want 1 to 90)", v))
			return
		}
		days = n
	}
	resp := modePreviewResponse{Mode: mode, Days: days, Hosts: []PreviewHost{}}
	if mode == config.Enforce {
		ctx, cancel := s.ctx(c)
		defer cancel()
		hosts, err := s.modePreview(ctx, s.config.Current(), days)
		if err != nil {
			s.internalError(c, "mode preview", err)
			return
		}
		resp.Hosts = hosts
	}
	c.JSON(http.StatusOK, resp)
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
	// Location is where the switches last found it, when known.
	Location *LocationBrief `json:"location,omitempty"`
}

// modePreview lists the non-relay sources (for cfg's relays) that tried
// SMTP in the last days: what enforce mode would block.
func (s *server) modePreview(ctx context.Context, cfg *config.Config, days int) ([]PreviewHost, error) {
	since := s.now().Add(-time.Duration(days) * 24 * time.Hour)
	relays := relayPolicy(cfg)
	byAddr := map[netip.Addr]*PreviewHost{}
	// Counted by the store: the events themselves are not loaded.
	offenders, err := s.events.Offenders(ctx, []event.Kind{event.WouldBlock, event.Blocked, event.Refused}, since, MaxLimit)
	if err != nil {
		return nil, fmt.Errorf("offenders since %s: %w", since.Format(time.RFC3339), err)
	}
	for _, o := range offenders {
		a := o.Addr.Unmap().WithZone("")
		if !a.IsValid() || isRelay(relays, a) {
			continue
		}
		// The store keeps addresses unmapped: one row per address.
		byAddr[a] = &PreviewHost{Addr: a, Attempts: int(o.Attempts), LastSeen: o.LastSeen.UTC(), Senders: o.Senders, Servers: o.Servers}
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
	return out, s.addPreviewLocations(ctx, out)
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

// policyData is the relays-and-policy page.
type policyData struct {
	Config  *config.Config
	Welcome bool
	// Errors maps a form field ("relays.new.address", "relays.2.name",
	// "limits.relay_sessions", "reject_text") to its message.
	Errors map[string]string
	// New holds the add-relay form's values.
	New    relayForm
	Limits limitsForm
	// Edit holds the posted values of a failed relay edit, by index.
	Edit map[int]relayForm
}

// relayForm is the relay form as text fields, so that a bad address is
// shown back as typed.
type relayForm struct{ Name, Address, TLS string }

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
	return &policyData{Config: cfg, Errors: map[string]string{}, New: relayForm{TLS: config.TLSPassthrough},
		Limits: limitsFormOf(cfg), Edit: map[int]relayForm{}}
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
	s.formError(c, p, pd, err, fieldKey)
	return false
}

// formError renders the policy page with err: 400 for a *config.FieldError
// (on its form field, through fieldKey), else 500.
func (s *server) formError(c *gin.Context, p *pageData, pd *policyData, err error, fieldKey func(string) string) {
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
		return
	}
	s.log.Error("apply config", "err", err, "actor", c.GetString(actorKey))
	p.Error = fmt.Sprintf("%v (the previous configuration stays in force)", err)
	p.Data = pd
	s.render(c, http.StatusInternalServerError, "policy.html", p)
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

// relayFromForm reads the relay form for the relay at index; an address
// that does not parse is a FieldError for relays[index].address.
func relayFromForm(c *gin.Context, index int) (relayForm, config.Relay, error) {
	f := relayForm{Name: strings.TrimSpace(c.PostForm("name")), Address: strings.TrimSpace(c.PostForm("address")),
		TLS: c.PostForm("tls")}
	if f.TLS == "" {
		f.TLS = config.TLSPassthrough
	}
	r := config.Relay{Name: f.Name, TLS: f.TLS}
	var err error
	if f.Address != "" {
		if r.Address, err = config.ParsePrefix(f.Address); err != nil {
			err = &config.FieldError{Key: fmt.Sprintf("relays[%d].address", index), Msg: err.Error()}
		}
	}
	return f, r, err
}

// postRelayAdd adds a relay.
func (s *server) postRelayAdd(c *gin.Context) {
	cfg, ok := s.editableConfig(c)
	if !ok {
		return
	}
	p := s.newPage(c, "policy.html", "policy")
	pd := s.newPolicy(s.config.Current())
	f, r, err := relayFromForm(c, len(cfg.Relays))
	pd.New = f
	cfg.Relays = append(cfg.Relays, r)
	if err != nil {
		s.formError(c, p, pd, err, relayField(len(cfg.Relays)-1, "new"))
		return
	}
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
	old := cfg.Relays[i]
	f, r, err := relayFromForm(c, i)
	cfg.Relays[i] = r
	pd.Edit[i] = f
	if err != nil {
		s.formError(c, p, pd, err, relayField(i, strconv.Itoa(i)))
		return
	}
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

// getBackup downloads the running configuration as YAML. The switches'
// SNMP secrets are masked unless ?secrets=1 asks for them (an
// administrator's session or token, like every backup).
func (s *server) getBackup(c *gin.Context) {
	cfg := s.config.Current()
	if cfg == nil {
		s.internalError(c, "current config", errors.New("no configuration loaded"))
		return
	}
	if s.setConfigETag(c, cfg) == "" {
		return
	}
	secrets := c.Query("secrets") == "1"
	if !secrets {
		cfg = redactSecrets(cfg)
	}
	b, err := cfg.Marshal()
	if err != nil {
		s.internalError(c, "marshal config", err)
		return
	}
	name := "relaygate-config-" + s.now().UTC().Format("20060102-150405") + ".yaml"
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	detail := "configuration downloaded"
	if secrets {
		detail += " with the switches' secrets"
	}
	s.audit(c, "", "config.backup", detail)
	c.Data(http.StatusOK, "application/yaml; charset=utf-8", b)
}

// restore validates and applies an uploaded configuration. It returns the
// HTTP status and, on failure, the message.
func (s *server) restore(c *gin.Context, body []byte) (int, string) {
	cur := s.config.Current()
	cfg, err := config.ParseWith(body, func(c *config.Config) { keepSecrets(c, cur) })
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

// relayPolicy is the relay matcher of cfg, built as the daemon builds the
// proxy's and inspection's (policy.New), so that the relay the UI names
// for an address is the one the data path, the events and the series
// name: the longest prefix wins, whatever the order in the file. A nil cfg
// has no relays.
func relayPolicy(cfg *config.Config) *policy.Policy {
	if cfg == nil {
		return nil
	}
	return policy.New(cfg)
}

// isRelay reports whether p (nil: no relays) makes addr a relay.
func isRelay(p *policy.Policy, addr netip.Addr) bool {
	_, ok := p.Relay(addr)
	return ok
}

// relayName returns the name of the relay p matches addr to, and whether
// there is one.
func relayName(p *policy.Policy, addr netip.Addr) (string, bool) {
	r, ok := p.Relay(addr)
	return r.Name, ok
}
