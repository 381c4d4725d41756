package webui

import (
	"cmp"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Security headers sent with every response. The CSP allows only the
// appliance's own embedded assets: no inline script or style, no framing.
const (
	contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
	// One year, no includeSubDomains: the appliance is usually reached by
	// IP address or a name in someone else's domain.
	strictTransportSecurity = "max-age=31536000"
)

// server holds the dependencies of the handlers.
type server struct {
	log          *slog.Logger
	events       Events
	tokens       Tokens
	config       ConfigManager
	status       StatusSource
	metrics      http.Handler
	now          func() time.Time
	storeTimeout time.Duration

	admins     Admins
	auditLog   AuditLog
	tokenAdmin TokenManager
	series     SeriesSource
	evidence   Evidence
	system     System
	inventory  Inventory
	neighbors  Neighbors
	export     ExportStatus
	reputation Reputation
	alerts     AlertTester
	update     http.Handler
	network    ManagementNetwork
	certs      *certStore
	// reputationHistory reads stored blocklist checks; nil answers 501.
	reputationHistory ReputationHistory
	// locations and locator: where hosts are on the switched network,
	// and "locate now"; nil shows no location.
	locations Locations
	locator   Locator

	argon     argonParams
	dummyHash func() (string, error) // checked for unknown usernames (equal timing)
	// pairThrottle counts failures per username and source,
	// sourceThrottle per source (sourcekey).
	pairThrottle   *throttle
	sourceThrottle *throttle
	// hashes bounds the password hashes computed at once (argon2id
	// takes 64 MiB each).
	hashes    *hashGate
	templates map[string]*template.Template
	catalog   map[string]map[string]string
	// cfgVersion is the running configuration's ETag.
	cfgVersion configVersion
}

// NewRouter returns the HTTP handler of the management interface.
//
// Browser pages (session cookie; state changes are POST with the CSRF
// token): /setup and /login (no session), / (dashboard), /hosts,
// /hosts/{addr}, /events, /policy (relays, mode, limits), /system (backup,
// restore, reboot, management address, firmware), /audit, /tokens,
// /account; static assets under /static and /vendor.
//
// JSON API under /api/v1 (bearer token or session cookie plus
// X-CSRF-Token for changes):
//
//	GET    /status, /events, /events.csv, /hosts, /hosts/{addr}, /hosts/{addr}/pcap
//	GET    /config, /config/backup      PUT /config      POST /config/restore
//	GET    /series, /dashboard, /mode-preview, /audit, /tokens
//	POST   /tokens                      DELETE /tokens/{id}
//	POST   /system/reboot, /system/certificate
//	GET    /system/update               POST /system/update (firmware bundle)
//	GET    /system/network              PUT /system/network (management address)
//	GET    /neighbors (LLDP/CDP neighbours of the bridge ports)
//	GET    /export (syslog collectors: connected, spool, oldest unsent)
//	GET    /reputation, /reputation/history?address=&zone=&limit=
//	POST   /reputation/check, /alerts/test?channel=
//	GET    /metrics (outside /api/v1, same credentials)
//
// A token's scope limits it (scopes.go): metrics reads /metrics only, read
// makes GET and HEAD requests only, admin everything but creating tokens;
// token creation and firmware install with a session need the password
// again (reauth.go).
//
// /metrics takes the same token as the API: Prometheus sends it with
// `authorization: {credentials_file: ...}` (or `bearer_token_file`) in the
// scrape config, so no unauthenticated port is needed.
//
// It sets gin's process-wide mode to release (gin only prints debug noise
// otherwise). It panics when a required dependency is missing, which is a
// wiring bug.
func NewRouter(d Deps) *gin.Engine {
	if err := d.check(); err != nil {
		panic(err)
	}
	s := &server{
		log:          d.Logger,
		events:       d.Events,
		tokens:       d.Tokens,
		config:       d.Config,
		status:       d.Status,
		metrics:      d.Metrics,
		now:          d.Now,
		storeTimeout: storeTimeout,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "webui")
	if s.now == nil {
		s.now = time.Now
	}
	s.admins, s.auditLog, s.tokenAdmin, s.series = d.Admins, d.Audit, d.TokenAdmin, d.Series
	s.evidence, s.system, s.inventory, s.certs = d.Evidence, d.System, d.Inventory, d.certs
	s.neighbors = d.Neighbors
	s.export = d.Export
	s.reputation, s.alerts, s.update, s.network = d.Reputation, d.Alerts, d.Update, d.Network
	s.reputationHistory = d.ReputationHistory
	s.locations, s.locator = d.Locations, d.Locator
	s.argon = defaultArgon
	if d.argon != nil {
		s.argon = *d.argon
	}
	// Computed at the first login with an unknown name, not at start: an
	// argon2id hash takes its 64 MiB and a fraction of a second of CPU.
	argon := s.argon
	s.dummyHash = sync.OnceValues(func() (string, error) {
		return hashPassword(argon, "relaygate dummy password for unknown users")
	})
	s.pairThrottle = newThrottle(s.now, pairMaxFails, failWindow, lockoutFor)
	s.sourceThrottle = newThrottle(s.now, sourceMaxFails, failWindow, lockoutFor)
	s.hashes = newHashGate(cmp.Or(d.hashSlots, maxConcurrentHashes), cmp.Or(d.hashWait, hashWait), d.hashHook)
	var err error
	if s.templates, err = parseTemplates(); err != nil {
		panic(err)
	}
	if s.catalog, err = loadCatalog(); err != nil {
		panic(err)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// The management port is reached directly, never through a proxy:
	// ClientIP is the TCP peer, whatever X-Forwarded-For says.
	if err := r.SetTrustedProxies(nil); err != nil {
		panic(fmt.Errorf("SetTrustedProxies(nil): %w", err))
	}
	r.ForwardedByClientIP = false
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	// Logging outermost, so that a recovered panic is logged as its 500.
	r.Use(s.logRequests, s.recovery, securityHeaders, limitBody)
	// Uploads (a configuration restore) are small; keep them in memory.
	r.MaxMultipartMemory = maxBodyBytes
	r.NoRoute(notFound)
	r.NoMethod(methodNotAllowed)

	// Each feature registers its pages (ui: session cookie) and its API
	// (api: bearer token or session cookie) in its own file.
	public := &r.RouterGroup
	ui := r.Group("/", s.requireLogin)
	api := r.Group("/api/v1", s.requireAuth)
	s.assetRoutes(public)
	s.loginRoutes(public, ui)
	s.sessionRoutes(ui)
	s.dashboardRoutes(ui, api)
	s.hostsRoutes(ui, api)
	s.locationRoutes(ui, api)
	s.eventsRoutes(ui, api)
	s.policyRoutes(ui, api)
	s.systemRoutes(ui, api)
	s.neighborRoutes(ui, api)
	s.exportRoutes(api)
	s.updateRoutes(ui, api)
	s.reputationRoutes(ui, api)
	s.auditRoutes(ui, api)
	s.tokensRoutes(ui, api)

	if s.metrics != nil {
		r.GET("/metrics", s.requireAuth, gin.WrapH(s.metrics))
	}
	return r
}

// securityHeaders sets the headers every response carries.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Strict-Transport-Security", strictTransportSecurity)
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, which the CSRF origin check refuses.
	// Nothing leaks to other sites either way.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !strings.HasPrefix(c.Request.URL.Path, "/static/") && !strings.HasPrefix(c.Request.URL.Path, "/vendor/") {
		// Pages and API answers hold live state and addresses.
		h.Set("Cache-Control", "no-store")
	}
	c.Next()
}

// maxBodyBytes bounds every request body: the largest legitimate one is
// a configuration (MaxConfigBytes) in a multipart form.
const maxBodyBytes = MaxConfigBytes + 64<<10

// limitBody caps request bodies, so that no form or upload can exhaust
// memory; handlers with a tighter limit set their own.
func limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		limit := int64(maxBodyBytes)
		if c.Request.URL.Path == updatePath || c.Request.URL.Path == "/system/update" {
			// A firmware bundle is streamed to the inactive slot, never held.
			limit = maxBundleBytes
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
	c.Next()
}

// recovery turns a panic in a handler into a logged 500.
func (s *server) recovery(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
		s.log.Error("panic in handler", "method", c.Request.Method, "path", c.Request.URL.Path,
			"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		if c.Writer.Written() {
			c.Abort()
			return
		}
		abortError(c, http.StatusInternalServerError, "internal error")
	}()
	c.Next()
}

// logRequests writes one access-log line per request. Successful scrapes
// of /metrics log at debug level: Prometheus comes every few seconds.
func (s *server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case status < 400 && c.Request.URL.Path == "/metrics":
		level = slog.LevelDebug
	}
	attrs := []slog.Attr{
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Int("bytes", max(c.Writer.Size(), 0)),
		slog.Duration("duration", time.Since(start)),
		slog.String("remote", remoteAddr(c)),
	}
	if a := c.GetString(actorKey); a != "" {
		attrs = append(attrs, slog.String("actor", a))
	}
	s.log.LogAttrs(c.Request.Context(), level, "http request", attrs...)
}
