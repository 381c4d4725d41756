package webui

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/store"
)

// getEventsCSV answers GET /api/v1/events.csv with the same parameters as
// GET /api/v1/events: a spreadsheet of the selection, newest first.
func (s *server) getEventsCSV(c *gin.Context) {
	q, msg := parseEventQuery(c.Request.URL.RawQuery)
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	evs, err := s.events.Events(ctx, q)
	if err != nil {
		s.internalError(c, "query events", fmt.Errorf("Events(%+v): %w", q, err))
		return
	}
	evs = normalizeEvents(evs, q.Limit)
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="relaygate-events-`+s.now().UTC().Format("20060102-150405")+`.csv"`)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	// New columns go at the end: scripts read the first ones by position.
	w.Write([]string{"time", "kind", "client", "server", "server_port", "relay", "helo", "mail_from", "rcpt", "code", "detail", "bytes",
		"messages", "size", "reply", "tls", "encrypted"})
	for _, e := range evs {
		client, server := "", ""
		if e.Client.IsValid() {
			client = e.Client.String()
		}
		if e.Server.IsValid() {
			server = e.Server.String()
		}
		rcpt := make([]string, len(e.Rcpt))
		for i, r := range e.Rcpt {
			rcpt[i] = csvCell(r)
		}
		w.Write([]string{e.Time.Format(time.RFC3339), string(e.Kind), client, server, strconv.Itoa(int(e.ServerPort)),
			csvCell(e.Relay), csvCell(e.Helo), csvCell(e.MailFrom), strings.Join(rcpt, " "), strconv.Itoa(e.Code),
			csvCell(e.Detail), strconv.FormatInt(e.Bytes, 10),
			strconv.Itoa(e.Messages), strconv.FormatInt(e.Size, 10), csvCell(e.Reply), e.TLS, strconv.FormatBool(e.Encrypted)})
	}
	w.Flush()
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

// apiRestore answers POST /api/v1/config/restore: like PUT /api/v1/config,
// recorded in the audit log as a restore.
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
	if status, msg := s.restore(c, body); msg != "" {
		abortError(c, status, msg)
		return
	}
	c.JSON(http.StatusOK, s.config.Current())
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

// getAudit answers GET /api/v1/audit?limit=.
func (s *server) getAudit(c *gin.Context) {
	limit, ok := limitOnly(c)
	if !ok {
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	entries, err := s.auditLog.AuditLog(ctx, limit)
	if err != nil {
		s.internalError(c, "audit log", err)
		return
	}
	if entries == nil {
		entries = []store.AuditEntry{}
	}
	for i := range entries {
		entries[i].Time = entries[i].Time.UTC()
	}
	c.JSON(http.StatusOK, gin.H{"entries": entries})
}

// getTokens answers GET /api/v1/tokens (names and dates, never tokens).
func (s *server) getTokens(c *gin.Context) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	toks, err := s.tokenAdmin.Tokens(ctx)
	if err != nil {
		s.internalError(c, "list tokens", err)
		return
	}
	if toks == nil {
		toks = []store.TokenInfo{}
	}
	c.JSON(http.StatusOK, gin.H{"tokens": toks})
}

// decodeJSONBody decodes a request body of at most limit octets into v,
// refusing unknown fields; on failure it answers 400 with want (an example
// body) and reports false.
func decodeJSONBody(c *gin.Context, v any, limit int64, want string) bool {
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid JSON body (want %s): %v", want, err))
		return false
	}
	return true
}

// apiTokenCreate answers POST /api/v1/tokens {"name": "..."} with
// {"name", "token"}; the token is shown this once.
func (s *server) apiTokenCreate(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if !decodeJSONBody(c, &req, 4096, `{"name": "..."}`) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if !validTokenName(req.Name) {
		abortError(c, http.StatusBadRequest, "invalid name (want 1 to 100 characters on one line)")
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	tok, err := s.tokenAdmin.CreateToken(ctx, req.Name)
	if err != nil {
		s.internalError(c, "create token", err)
		return
	}
	s.audit(c, "", "token.create", req.Name)
	c.JSON(http.StatusCreated, gin.H{"name": req.Name, "token": tok})
}

// apiTokenRevoke answers DELETE /api/v1/tokens/{id}.
func (s *server) apiTokenRevoke(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid token id %q", c.Param("id")))
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.tokenAdmin.RevokeToken(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			abortError(c, http.StatusNotFound, fmt.Sprintf("no token %d", id))
			return
		}
		s.internalError(c, "revoke token", err)
		return
	}
	s.audit(c, "", "token.revoke", fmt.Sprintf("token %d", id))
	c.Status(http.StatusNoContent)
}

// apiReboot answers POST /api/v1/system/reboot.
func (s *server) apiReboot(c *gin.Context) {
	if s.system == nil {
		abortError(c, http.StatusNotImplemented, "reboot is not available on this installation (it comes with the appliance image)")
		return
	}
	s.audit(c, "", "system.reboot", "reboot requested")
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.system.Reboot(ctx); err != nil {
		s.internalError(c, "reboot", err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"rebooting": true})
}
