package webui

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/reputation"
	"github.com/relaygate/relaygate/store"
)

// reputationRoutes registers the reputation watch and its test alerts.
func (s *server) reputationRoutes(ui, api *gin.RouterGroup) {
	ui.GET("/reputation", s.pageReputation)
	ui.POST("/reputation/check", s.postReputationCheck)
	ui.POST("/reputation/alerts/test", s.postAlertTest)
	api.GET("/reputation", s.getReputation)
	api.GET("/reputation/history", s.getReputationHistory)
	api.POST("/reputation/check", s.apiReputationCheck)
	api.POST("/alerts/test", s.apiAlertTest)
}

// Reputation is the reputation watch (blocklists, SPF, open-relay
// self-test). Optional: without it the page says it is not running.
type Reputation interface {
	// Snapshot returns the latest results.
	Snapshot() reputation.Snapshot
	// RunOnce runs every check now and returns the new results.
	RunOnce(ctx context.Context) reputation.Snapshot
}

// ReputationHistory reads the stored blocklist checks (*store.Store
// satisfies it). Optional: without it GET /api/v1/reputation/history
// answers 501.
type ReputationHistory interface {
	// ReputationHistory returns stored checks, newest first, at most
	// limit; address and zone filter when not empty.
	ReputationHistory(ctx context.Context, address, zone string, limit int) ([]store.ReputationCheck, error)
}

// AlertTester sends a test alert on one channel (email, syslog, webhook).
type AlertTester interface {
	Test(ctx context.Context, channel string) error
}

const reputationCheckTimeout = 5 * time.Minute

func (s *server) getReputation(c *gin.Context) {
	if s.reputation == nil {
		abortError(c, http.StatusNotImplemented, "the reputation watch is not running")
		return
	}
	c.JSON(http.StatusOK, s.reputation.Snapshot())
}

// reputationHistoryResponse is the answer of GET /api/v1/reputation/history.
type reputationHistoryResponse struct {
	Checks []store.ReputationCheck `json:"checks"`
}

// maxZoneLen is the longest DNS name.
const maxZoneLen = 253

// validZone reports whether z looks like a DNS zone (the letters of a
// host name; the store compares it exactly).
func validZone(z string) bool {
	if z == "" || len(z) > maxZoneLen {
		return false
	}
	for i := 0; i < len(z); i++ {
		b := z[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '.', b == '-', b == '_':
		default:
			return false
		}
	}
	return true
}

// getReputationHistory answers GET /api/v1/reputation/history?address=&zone=&limit=:
// the stored blocklist checks, newest first. address is an IP address
// (any spelling; compared in its canonical form), zone a blocklist zone;
// empty ones do not filter. limit is 1 to MaxLimit, default DefaultLimit.
func (s *server) getReputationHistory(c *gin.Context) {
	p, msg := queryParams(c.Request.URL.RawQuery, "address", "zone", "limit")
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return
	}
	var address string
	if v := p["address"]; v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid address %q (want an IP address, e.g. 198.51.100.25 or 2001:db8::25)", v))
			return
		}
		address = a.Unmap().String()
	}
	zone := p["zone"]
	if zone != "" && !validZone(zone) {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid zone %q (want a DNS zone, e.g. zen.spamhaus.org)", zone))
		return
	}
	limit := DefaultLimit
	if v := p["limit"]; v != "" {
		if limit, msg = parseLimit(v); msg != "" {
			abortError(c, http.StatusBadRequest, msg)
			return
		}
	}
	if s.reputationHistory == nil {
		abortError(c, http.StatusNotImplemented, "no reputation history on this installation")
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	checks, err := s.reputationHistory.ReputationHistory(ctx, address, zone, limit)
	if err != nil {
		s.internalError(c, "reputation history", fmt.Errorf("ReputationHistory(%q, %q, %d): %w", address, zone, limit, err))
		return
	}
	if len(checks) > limit {
		checks = checks[:limit]
	}
	out := make([]store.ReputationCheck, len(checks))
	for i, ch := range checks {
		ch.Time = ch.Time.UTC()
		out[i] = ch
	}
	c.JSON(http.StatusOK, reputationHistoryResponse{Checks: out})
}

func (s *server) apiReputationCheck(c *gin.Context) {
	if s.reputation == nil {
		abortError(c, http.StatusNotImplemented, "the reputation watch is not running")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), reputationCheckTimeout)
	defer cancel()
	s.audit(c, "", "reputation.check", "checks run on demand")
	c.JSON(http.StatusOK, s.reputation.RunOnce(ctx))
}

// alertChannel validates the channel of a test alert.
func alertChannel(ch string) bool {
	switch ch {
	case reputation.ChannelEmail, reputation.ChannelSyslog, reputation.ChannelWebhook:
		return true
	}
	return false
}

func (s *server) apiAlertTest(c *gin.Context) {
	ch := c.Query("channel")
	if !alertChannel(ch) {
		abortError(c, http.StatusBadRequest, `channel: want email, syslog or webhook, got "`+ch+`"`)
		return
	}
	if s.alerts == nil {
		abortError(c, http.StatusNotImplemented, "alerts are not running")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 30*time.Second)
	defer cancel()
	s.audit(c, "", "alerts.test", ch)
	if err := s.alerts.Test(ctx, ch); err != nil {
		abortError(c, http.StatusBadGateway, err.Error())
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "sent", "channel": ch})
}

func (s *server) reputationPage(c *gin.Context, status int, notice, errMsg string, snap *reputation.Snapshot) {
	p := s.newPage(c, "reputation.html", "reputation")
	p.Notice, p.Error = notice, errMsg
	running := s.reputation != nil
	if snap == nil && running {
		v := s.reputation.Snapshot()
		snap = &v
	}
	cfg := s.config.Current()
	p.Data = gin.H{"Running": running, "Snap": snap, "Addresses": cfg.Reputation.Addresses,
		"Zones": cfg.Reputation.Zones, "Interval": cfg.Reputation.Interval.String(), "Alerts": cfg.Alerts}
	s.render(c, status, "reputation.html", p)
}

func (s *server) pageReputation(c *gin.Context) { s.reputationPage(c, http.StatusOK, "", "", nil) }

func (s *server) postReputationCheck(c *gin.Context) {
	if s.reputation == nil {
		s.reputationPage(c, http.StatusNotImplemented, "", s.msg(c, "reputation_not_running"), nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), reputationCheckTimeout)
	defer cancel()
	s.audit(c, "", "reputation.check", "checks run on demand")
	snap := s.reputation.RunOnce(ctx)
	s.reputationPage(c, http.StatusOK, s.msg(c, "reputation_checked"), "", &snap)
}

func (s *server) postAlertTest(c *gin.Context) {
	ch := c.PostForm("channel")
	if !alertChannel(ch) {
		s.reputationPage(c, http.StatusBadRequest, "", s.msg(c, "alert_bad_channel"), nil)
		return
	}
	if s.alerts == nil {
		s.reputationPage(c, http.StatusNotImplemented, "", s.msg(c, "reputation_not_running"), nil)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 30*time.Second)
	defer cancel()
	s.audit(c, "", "alerts.test", ch)
	if err := s.alerts.Test(ctx, ch); err != nil {
		s.reputationPage(c, http.StatusBadGateway, "", err.Error(), nil)
		return
	}
	s.reputationPage(c, http.StatusOK, s.msg(c, "alert_sent")+" ("+ch+")", "", nil)
}
