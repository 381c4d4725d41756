package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// assets are the embedded pages, styles and scripts: the appliance serves
// everything itself (no CDN), which also lets the CSP stay at 'self'.
//
//go:embed assets
var assets embed.FS

// Limits and timeouts of the API, in one place.
const (
	// DefaultLimit is the number of events or hosts returned without ?limit=.
	DefaultLimit = 100
	// MaxLimit is the largest accepted ?limit=.
	MaxLimit = 10000
	// MaxConfigBytes bounds a PUT /api/v1/config body.
	MaxConfigBytes = 1 << 20
	// maxTextQuery bounds ?q=.
	maxTextQuery = 256
	// maxTokenLen bounds a bearer token; longer ones are not looked up.
	maxTokenLen = 512
	// storeTimeout bounds one store or token look-up.
	storeTimeout = 30 * time.Second
)

// Security headers sent with every response. The CSP allows only the
// appliance's own embedded assets: no inline script or style, no framing.
const (
	contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
	// One year, no includeSubDomains: the appliance is usually reached by
	// IP address or a name in someone else's domain.
	strictTransportSecurity = "max-age=31536000"
)

// actorKey is the gin context key holding the authenticated actor's name.
const actorKey = "relaygate.actor"

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
	reputation Reputation
	alerts     AlertTester
	update     http.Handler
	network    ManagementNetwork
	certs      *certStore
	// reputationHistory reads stored blocklist checks; nil answers 501.
	reputationHistory ReputationHistory

	argon        argonParams
	dummyHash    func() (string, error) // checked for unknown usernames (equal timing)
	userThrottle *throttle
	ipThrottle   *throttle
	templates    map[string]*template.Template
	catalog      map[string]map[string]string
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
//	GET    /reputation, /reputation/history?address=&zone=&limit=
//	POST   /reputation/check, /alerts/test?channel=
//	GET    /metrics (outside /api/v1, same credentials)
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
	s.reputation, s.alerts, s.update, s.network = d.Reputation, d.Alerts, d.Update, d.Network
	s.reputationHistory = d.ReputationHistory
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
	s.userThrottle = newThrottle(s.now, userMaxFails, failWindow, lockoutFor)
	s.ipThrottle = newThrottle(s.now, ipMaxFails, failWindow, lockoutFor)
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

	r.GET("/static/*file", s.static)
	r.GET("/vendor/*file", s.vendor)
	r.GET("/setup", s.getSetup)
	r.POST("/setup", s.postSetup)
	r.GET("/login", s.getLogin)
	r.POST("/login", s.postLogin)

	ui := r.Group("/", s.requireLogin)
	ui.POST("/logout", s.postLogout)
	ui.GET("/", s.pageDashboard)
	ui.GET("/hosts", s.pageHosts)
	ui.GET("/hosts/:addr", s.pageHost)
	ui.GET("/events", s.pageEvents)
	ui.GET("/policy", s.pagePolicy)
	ui.POST("/policy/relays/add", s.postRelayAdd)
	ui.POST("/policy/relays/update", s.postRelayUpdate)
	ui.POST("/policy/relays/delete", s.postRelayDelete)
	ui.GET("/policy/mode", s.pageModeConfirm)
	ui.POST("/policy/mode", s.postMode)
	ui.POST("/policy/limits", s.postLimits)
	ui.GET("/system", s.pageSystem)
	ui.GET("/system/backup", s.getBackup)
	ui.POST("/system/restore", s.postRestore)
	ui.POST("/system/reboot", s.postReboot)
	ui.POST("/system/certificate", s.postCertificate)
	ui.POST("/system/update", s.postUpdate)
	ui.POST("/system/network", s.postNetwork)
	ui.GET("/reputation", s.pageReputation)
	ui.POST("/reputation/check", s.postReputationCheck)
	ui.POST("/reputation/alerts/test", s.postAlertTest)
	ui.GET("/audit", s.pageAudit)
	ui.GET("/tokens", s.pageTokens)
	ui.POST("/tokens", s.postTokenCreate)
	ui.POST("/tokens/revoke", s.postTokenRevoke)
	ui.GET("/account", s.pageAccount)
	ui.POST("/account/password", s.postPassword)

	api := r.Group("/api/v1", s.requireAuth)
	api.GET("/status", s.getStatus)
	api.GET("/events", s.getEvents)
	api.GET("/events.csv", s.getEventsCSV)
	api.GET("/hosts", s.getHosts)
	api.GET("/hosts/:addr", s.getHost)
	api.GET("/hosts/:addr/pcap", s.getHostPcap)
	api.GET("/config", s.getConfig)
	api.PUT("/config", s.putConfig)
	api.GET("/config/backup", s.getBackup)
	api.POST("/config/restore", s.apiRestore)
	api.GET("/series", s.getSeries)
	api.GET("/dashboard", s.getDashboard)
	api.GET("/mode-preview", s.getModePreview)
	api.GET("/reputation", s.getReputation)
	api.GET("/reputation/history", s.getReputationHistory)
	api.POST("/reputation/check", s.apiReputationCheck)
	api.POST("/alerts/test", s.apiAlertTest)
	api.GET("/audit", s.getAudit)
	api.GET("/tokens", s.getTokens)
	api.POST("/tokens", s.apiTokenCreate)
	api.DELETE("/tokens/:id", s.apiTokenRevoke)
	api.POST("/system/reboot", s.apiReboot)
	api.GET("/system/update", s.apiUpdate)
	api.POST("/system/update", s.apiUpdate)
	api.POST("/system/certificate", s.apiCertificate)
	api.GET("/system/network", s.getNetwork)
	api.PUT("/system/network", s.putNetwork)

	if s.metrics != nil {
		r.GET("/metrics", s.requireAuth, gin.WrapH(s.metrics))
	}
	return r
}

// errorBody is every error answer: {"error": "one line"}.
type errorBody struct {
	Error string `json:"error"`
}

func abortError(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Error: msg})
}

// internalError logs err once, here, and answers a generic 500: store and
// kernel details are not for the client.
func (s *server) internalError(c *gin.Context, op string, err error) {
	if errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil {
		s.log.Debug("request canceled", "op", op, "err", err)
	} else {
		s.log.Error(op, "err", err, "path", c.Request.URL.Path)
	}
	abortError(c, http.StatusInternalServerError, "internal error")
}

// isAPI reports whether the path belongs to the machine interface, which
// answers JSON errors and must never be cached.
func isAPI(p string) bool {
	return p == "/api" || strings.HasPrefix(p, "/api/") || p == "/metrics"
}

func notFound(c *gin.Context) {
	if isAPI(c.Request.URL.Path) {
		abortError(c, http.StatusNotFound, "not found")
		return
	}
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.String(http.StatusNotFound, "404 page not found\n")
}

func methodNotAllowed(c *gin.Context) {
	// gin has set the Allow header already.
	if isAPI(c.Request.URL.Path) {
		abortError(c, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", c.Request.Method))
		return
	}
	c.String(http.StatusMethodNotAllowed, "405 method not allowed\n")
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

const (
	updatePath     = "/api/v1/system/update"
	maxBundleBytes = 2 << 30
)

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

// remoteAddr is the TCP peer's address, unmapped, without port.
func remoteAddr(c *gin.Context) string {
	if ap, err := netip.ParseAddrPort(c.Request.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	return c.Request.RemoteAddr
}

// bearerRealm is the challenge of every 401. It is the same for a missing,
// malformed, unknown or revoked token, so that answers never tell whether
// a token exists.
const bearerRealm = `Bearer realm="relaygate"`

// bearerActor checks the Authorization header (RFC 6750 section 2.1). On
// rejection msg says why without telling whether a token exists.
func (s *server) bearerActor(c *gin.Context) (actor string, ok bool, msg string, err error) {
	vals := c.Request.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", false, "missing bearer token (want header \"Authorization: Bearer <token>\")", nil
	}
	const malformed = "malformed Authorization header (want \"Bearer <token>\")"
	if len(vals) > 1 {
		return "", false, malformed, nil
	}
	scheme, token, found := strings.Cut(vals[0], " ")
	// The scheme is case-insensitive (RFC 9110 section 11.1).
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false, malformed, nil
	}
	token = strings.TrimLeft(token, " ")
	if !validToken(token) {
		return "", false, malformed, nil
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	name, ok, err := s.tokens.CheckToken(ctx, token)
	if err != nil {
		return "", false, "", fmt.Errorf("CheckToken: %w", err)
	}
	if !ok {
		return "", false, "invalid token", nil
	}
	return name, true, "", nil
}

// validToken reports whether t is a b64token (RFC 6750 section 2.1) of
// sensible length.
func validToken(t string) bool {
	if t == "" || len(t) > maxTokenLen {
		return false
	}
	t = strings.TrimRight(t, "=")
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		b := t[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '-', b == '.', b == '_', b == '~', b == '+', b == '/':
		default:
			return false
		}
	}
	return true
}

// static serves embedded files under assets/static, never directory
// listings.
func (s *server) static(c *gin.Context) {
	name := path.Clean("/" + c.Param("file"))
	name = "assets/static" + name
	st, err := fs.Stat(assets, name)
	if err != nil || st.IsDir() {
		notFound(c)
		return
	}
	http.ServeFileFS(c.Writer, c.Request, assets, name)
}

// vendor serves the embedded third-party assets (uPlot), never
// directory listings.
func (s *server) vendor(c *gin.Context) {
	name := "assets/vendor" + path.Clean("/"+c.Param("file"))
	st, err := fs.Stat(assets, name)
	if err != nil || st.IsDir() {
		notFound(c)
		return
	}
	http.ServeFileFS(c.Writer, c.Request, assets, name)
}
