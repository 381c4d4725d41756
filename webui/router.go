package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"runtime/debug"
	"strings"
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
}

// NewRouter returns the HTTP handler of the management interface:
//
//	GET  /                 embedded start page
//	GET  /static/*file     embedded assets
//	GET  /api/v1/status    Status
//	GET  /api/v1/events    {"events": [...]}, newest first
//	GET  /api/v1/hosts     {"hosts": [...]}
//	GET  /api/v1/config    the running configuration
//	PUT  /api/v1/config    replace the configuration (JSON or YAML body)
//	GET  /metrics          Prometheus text format
//
// Everything under /api/v1 and /metrics requires a bearer token. /metrics
// takes the same token as the API: Prometheus sends it with
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
	r.Use(s.logRequests, s.recovery, securityHeaders)
	r.NoRoute(notFound)
	r.NoMethod(methodNotAllowed)

	r.GET("/", s.index)
	r.GET("/static/*file", s.static)

	// Later: the browser pages go beside the API, behind the same
	// requireAuth (which will accept a session cookie) plus CSRF checks on
	// POST.
	api := r.Group("/api/v1", s.requireAuth)
	api.GET("/status", s.getStatus)
	api.GET("/events", s.getEvents)
	api.GET("/hosts", s.getHosts)
	api.GET("/config", s.getConfig)
	api.PUT("/config", s.putConfig)

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
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !strings.HasPrefix(c.Request.URL.Path, "/static/") {
		// Pages and API answers hold live state and addresses.
		h.Set("Cache-Control", "no-store")
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

// requireAuth admits requests that carry a valid credential and records
// the actor's name in the context. The browser UI will add a session
// cookie here, tried when there is no Authorization header.
func (s *server) requireAuth(c *gin.Context) {
	actor, ok, msg, err := s.bearerActor(c)
	if err != nil {
		s.internalError(c, "check token", err)
		return
	}
	if !ok {
		c.Header("WWW-Authenticate", bearerRealm)
		abortError(c, http.StatusUnauthorized, msg)
		return
	}
	c.Set(actorKey, actor)
	c.Next()
}

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

// index serves the start page.
func (s *server) index(c *gin.Context) {
	http.ServeFileFS(c.Writer, c.Request, assets, "assets/index.html")
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
