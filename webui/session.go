package webui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/store"
)

// sessionRoutes registers logout.
func (s *server) sessionRoutes(ui *gin.RouterGroup) {
	ui.POST("/logout", s.postLogout)
}

// Session and login policy, in one place.
const (
	// SessionIdleTimeout ends a session nobody used for this long.
	SessionIdleTimeout = 30 * time.Minute
	// SessionMaxLifetime ends every session this long after login.
	SessionMaxLifetime = 12 * time.Hour
	// sessionTouchEvery limits last_seen writes to one per minute.
	sessionTouchEvery = time.Minute

	// Failed logins: after pairMaxFails failures for one username from
	// one source (sourcekey: an IPv4 address, an IPv6 /64), or
	// sourceMaxFails from one source whatever the username, within
	// failWindow, further attempts of that pair or source are refused
	// with 429 for lockoutFor. Other sources are not affected.
	pairMaxFails   = 5
	sourceMaxFails = 20
	failWindow     = 15 * time.Minute
	lockoutFor     = 15 * time.Minute
	// maxThrottleKeys bounds the throttle's memory under a spray of
	// usernames or sources.
	maxThrottleKeys = 10000

	// SessionCookie holds the session id. The __Host- prefix makes
	// browsers insist on Secure, Path=/ and no Domain (RFC 6265bis 4.1.3.2).
	SessionCookie = "__Host-relaygate_session"
	// langCookie remembers the chosen language.
	langCookie = "relaygate_lang"
	// csrfHeader and csrfField carry the session's CSRF token.
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf_token"

	// SetupTokenFile is written to data_dir while no administrator exists.
	SetupTokenFile = "setup-token"
	// setupTokenKey is the settings key holding the setup token's SHA-256.
	setupTokenKey = "setup_token_sha256"
)

// Gin context keys set by the authentication middleware.
const (
	sessionKey = "relaygate.session" // *store.Session for cookie-authenticated requests
)

// randomToken returns n random bytes in unpadded base64url.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// sessionFromCookie returns the valid session of the request, or nil. An
// expired session is deleted.
func (s *server) sessionFromCookie(c *gin.Context) (*store.Session, error) {
	ck, err := c.Request.Cookie(SessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return nil, nil
	}
	id := sha256Sum(ck.Value)
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	se, err := s.admins.Session(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up session: %w", err)
	}
	if subtle.ConstantTimeCompare(se.IDHash, id) != 1 {
		return nil, nil
	}
	now := s.now()
	if now.Sub(se.LastSeen) > SessionIdleTimeout || now.Sub(se.Created) > SessionMaxLifetime {
		if err := s.admins.DeleteSession(ctx, id); err != nil {
			return nil, fmt.Errorf("delete expired session: %w", err)
		}
		return nil, nil
	}
	if now.Sub(se.LastSeen) >= sessionTouchEvery {
		if err := s.admins.TouchSession(ctx, id, now); err != nil {
			s.log.Warn("touch session", "err", err)
		}
		se.LastSeen = now
	}
	return &se, nil
}

// stateChanging reports whether the method changes state (and so needs
// the CSRF token when the credential is a cookie).
func stateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// csrfOK checks the request's CSRF token (header or form field) against
// the session's, and the Origin header when the browser sent one.
func csrfOK(c *gin.Context, se *store.Session) bool {
	tok := c.GetHeader(csrfHeader)
	if tok == "" {
		tok = c.PostForm(csrfField)
	}
	return csrfTokenOK(c.Request, se, tok)
}

// csrfTokenOK checks tok, the CSRF token a request carried, against the
// session's, and the Origin header when the browser sent one.
func csrfTokenOK(r *http.Request, se *store.Session, tok string) bool {
	if !sameOrigin(r) || tok == "" || se.CSRF == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(tok), []byte(se.CSRF)) == 1
}

// streamedForm reports whether r is the firmware form, whose handler
// reads the multipart body as a stream and checks the CSRF token itself,
// from the form's first field, before it reads a byte of the file
// (postUpdate). Checking it here would parse the whole form first, which
// spools a bundle of hundreds of MiB to a temporary file (RAM on the
// appliance, whose /tmp is a tmpfs).
func streamedForm(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/system/update"
}

// sameOrigin rejects requests whose Origin header names another site.
// Browsers send Origin on every cross-origin POST; its absence is not
// proof of anything, so the CSRF token stays the real check.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// requireAuth admits requests that carry a valid bearer token or session
// cookie and records the actor's name in the context ("token:<name>" for
// a token). A request with an Authorization header is judged by it alone.
// Cookie-authenticated state changes need the CSRF token; bearer tokens
// are not ambient credentials, so they do not. A token's request outside
// its scope gets 403 naming the scope needed, before any handler runs.
func (s *server) requireAuth(c *gin.Context) {
	if len(c.Request.Header.Values("Authorization")) == 0 {
		se, err := s.sessionFromCookie(c)
		if err != nil {
			s.internalError(c, "check session", err)
			return
		}
		if se != nil {
			if stateChanging(c.Request.Method) && !csrfOK(c, se) {
				abortError(c, http.StatusForbidden, "missing or wrong CSRF token (send the session's token in the X-CSRF-Token header)")
				return
			}
			c.Set(actorKey, se.Username)
			c.Set(sessionKey, se)
			c.Next()
			return
		}
	}
	tok, ok, msg, err := s.bearerToken(c)
	if err != nil {
		s.internalError(c, "check token", err)
		return
	}
	if !ok {
		c.Header("WWW-Authenticate", bearerRealm)
		abortError(c, http.StatusUnauthorized, msg)
		return
	}
	c.Set(actorKey, tokenActor(tok.Name))
	c.Set(tokenKey, tok)
	if need := scopeNeeded(c.Request.Method, c.FullPath()); !scopeAllows(tok.Scope, need) {
		abortScope(c, tok, need)
		return
	}
	c.Next()
}

// requireLogin guards the browser pages: without a session the browser
// goes to the login page (or to setup while there is no administrator);
// state changes need the CSRF token.
func (s *server) requireLogin(c *gin.Context) {
	se, err := s.sessionFromCookie(c)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "check session", err)
		return
	}
	if se == nil {
		if len(c.Request.Header.Values("Authorization")) > 0 {
			// No token's scope covers the pages: they are for people,
			// with a session and its CSRF token.
			abortError(c, http.StatusForbidden, "the web pages need a browser session; bearer tokens are accepted under /api/v1 and on /metrics")
			return
		}
		if stateChanging(c.Request.Method) {
			s.renderMessage(c, http.StatusUnauthorized, "err_session_expired")
			return
		}
		target := "/login"
		if need, _ := s.needsSetup(c.Request.Context()); need {
			target = "/setup"
		} else if c.Request.URL.Path != "/" {
			target += "?next=" + url.QueryEscape(c.Request.URL.RequestURI())
		}
		c.Redirect(http.StatusSeeOther, target)
		c.Abort()
		return
	}
	if stateChanging(c.Request.Method) && !streamedForm(c.Request) && !csrfOK(c, se) {
		s.renderMessage(c, http.StatusForbidden, "err_csrf")
		return
	}
	c.Set(actorKey, se.Username)
	c.Set(sessionKey, se)
	c.Next()
}

// startSession creates a session for username and sets its cookie.
func (s *server) startSession(c *gin.Context, username string) error {
	id, err := randomToken(32)
	if err != nil {
		return err
	}
	csrf, err := randomToken(32)
	if err != nil {
		return err
	}
	now := s.now()
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	if err := s.admins.CreateSession(ctx, store.Session{IDHash: sha256Sum(id), Username: username, CSRF: csrf,
		Created: now, LastSeen: now, Remote: remoteAddr(c)}); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode,
		// A session cookie (no Max-Age): the browser forgets it when
		// closed; the server enforces idle and absolute limits.
	})
	return nil
}

func clearSessionCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// sessionPruner is implemented by stores that can delete expired
// sessions in bulk (expired sessions are also deleted when presented).
type sessionPruner interface {
	PruneSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error)
}

// pruneSessions deletes expired sessions, best effort, at each login.
func (s *server) pruneSessions(ctx context.Context) {
	p, ok := s.admins.(sessionPruner)
	if !ok {
		return
	}
	now := s.now()
	if _, err := p.PruneSessions(ctx, now.Add(-SessionIdleTimeout), now.Add(-SessionMaxLifetime)); err != nil {
		s.log.Warn("prune sessions", "err", err)
	}
}

// postLogout ends the session.
func (s *server) postLogout(c *gin.Context) {
	se := c.MustGet(sessionKey).(*store.Session)
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	if err := s.admins.DeleteSession(ctx, se.IDHash); err != nil {
		s.pageError(c, http.StatusInternalServerError, "delete session", err)
		return
	}
	clearSessionCookie(c)
	s.audit(c, "", "logout", "")
	c.Redirect(http.StatusSeeOther, "/login")
}

// actorKey is the gin context key holding the authenticated actor's name.
const actorKey = "relaygate.actor"

// bearerRealm is the challenge of every 401. It is the same for a missing,
// malformed, unknown or revoked token, so that answers never tell whether
// a token exists.
const bearerRealm = `Bearer realm="relaygate"`

// bearerToken checks the Authorization header (RFC 6750 section 2.1). On
// rejection msg says why without telling whether a token exists, except
// that an expired token is told so: only its holder can present it.
func (s *server) bearerToken(c *gin.Context) (tok store.TokenInfo, ok bool, msg string, err error) {
	vals := c.Request.Header.Values("Authorization")
	if len(vals) == 0 {
		return tok, false, "missing bearer token (want header \"Authorization: Bearer <token>\")", nil
	}
	const malformed = "malformed Authorization header (want \"Bearer <token>\")"
	if len(vals) > 1 {
		return tok, false, malformed, nil
	}
	scheme, token, found := strings.Cut(vals[0], " ")
	// The scheme is case-insensitive (RFC 9110 section 11.1).
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return tok, false, malformed, nil
	}
	token = strings.TrimLeft(token, " ")
	if !validToken(token) {
		return tok, false, malformed, nil
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	tok, ok, err = s.tokens.CheckToken(ctx, token)
	if err != nil {
		return store.TokenInfo{}, false, "", fmt.Errorf("CheckToken: %w", err)
	}
	if !ok {
		if tok.Expires != nil {
			return store.TokenInfo{}, false, fmt.Sprintf("token expired at %s", tok.Expires.UTC().Format(time.RFC3339)), nil
		}
		return store.TokenInfo{}, false, "invalid token", nil
	}
	return tok, true, "", nil
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
