package webui

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/store"
)

// auditRoutes registers the audit log.
func (s *server) auditRoutes(ui, api *gin.RouterGroup) {
	ui.GET("/audit", s.pageAudit)
	api.GET("/audit", s.getAudit)
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

// audit writes an audit entry for the request's actor and client; a
// failure is logged (the change itself has happened).
func (s *server) audit(c *gin.Context, actor, action, detail string) {
	if actor == "" {
		actor = c.GetString(actorKey)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.storeTimeout)
	defer cancel()
	if err := s.auditLog.Audit(ctx, store.AuditEntry{Time: s.now(), Actor: actor, Action: action, Detail: detail, Remote: remoteAddr(c)}); err != nil {
		s.log.Error("audit log", "err", err, "action", action)
	}
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
