package webui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/store"
)

// Session and login policy, in one place.
const (
	// SessionIdleTimeout ends a session nobody used for this long.
	SessionIdleTimeout = 30 * time.Minute
	// SessionMaxLifetime ends every session this long after login.
	SessionMaxLifetime = 12 * time.Hour
	// sessionTouchEvery limits last_seen writes to one per minute.
	sessionTouchEvery = time.Minute

	// Failed logins: after userMaxFails failures for one username (or
	// ipMaxFails from one client address) within failWindow, further
	// attempts are refused with 429 for lockoutFor.
	userMaxFails = 5
	ipMaxFails   = 20
	failWindow   = 15 * time.Minute
	lockoutFor   = 15 * time.Minute
	// maxThrottleKeys bounds the throttle's memory under a spray of
	// usernames or addresses.
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

// throttle counts failures per key and locks a key out after too many.
type throttle struct {
	mu      sync.Mutex
	now     func() time.Time
	max     int
	window  time.Duration
	lockout time.Duration
	m       map[string]*throttleEntry
}

type throttleEntry struct {
	fails  []time.Time
	locked time.Time // locked until
}

func newThrottle(now func() time.Time, max int, window, lockout time.Duration) *throttle {
	return &throttle{now: now, max: max, window: window, lockout: lockout, m: map[string]*throttleEntry{}}
}

// retryAfter returns how long key is still locked out, or 0.
func (t *throttle) retryAfter(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[key]
	if e == nil {
		return 0
	}
	return max(e.locked.Sub(t.now()), 0)
}

// fail records a failure of key; when it reaches the maximum the key is
// locked out.
func (t *throttle) fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.m) >= maxThrottleKeys {
		t.pruneLocked(now)
	}
	e := t.m[key]
	if e == nil {
		e = &throttleEntry{}
		t.m[key] = e
	}
	keep := e.fails[:0]
	for _, f := range e.fails {
		if now.Sub(f) < t.window {
			keep = append(keep, f)
		}
	}
	e.fails = append(keep, now)
	if len(e.fails) >= t.max {
		e.locked = now.Add(t.lockout)
		e.fails = nil
	}
}

// reset forgets key's failures (after a successful login).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}

func (t *throttle) pruneLocked(now time.Time) {
	for k, e := range t.m {
		if now.After(e.locked) && (len(e.fails) == 0 || now.Sub(e.fails[len(e.fails)-1]) >= t.window) {
			delete(t.m, k)
		}
	}
	if len(t.m) >= maxThrottleKeys {
		// Still full of live entries: an attack; forget the oldest half
		// rather than grow without bound. Lockouts of addresses stay.
		n := 0
		for k, e := range t.m {
			if now.After(e.locked) {
				delete(t.m, k)
				if n++; n >= maxThrottleKeys/2 {
					break
				}
			}
		}
	}
}

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

// normalizeSetupToken lets the admin type the token with or without the
// dashes, in any case, with stray spaces, and with the digits that look
// like base32 letters (0 for O, 1 for I, 8 for B: base32 has no 0, 1, 8).
func normalizeSetupToken(s string) string {
	s = strings.ToUpper(s)
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t':
			return -1
		case '0':
			return 'O'
		case '1':
			return 'I'
		case '8':
			return 'B'
		}
		return r
	}, s)
}

// PrepareSetup makes sure a first administrator can be created: when
// there is none, it creates a one-time setup token, keeps its SHA-256 in
// the settings, writes it to dataDir/setup-token (mode 0600), logs it and
// prints it on console. It returns the token, or "" when an administrator
// exists (a stale setup-token file is then removed). Serve calls it
// before listening; a restart before setup makes a new token.
func PrepareSetup(ctx context.Context, d Deps, dataDir string, console io.Writer) (string, error) {
	if d.Admins == nil {
		return "", errors.New("webui: Deps.Admins is nil")
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "webui")
	path := filepath.Join(dataDir, SetupTokenFile)
	n, err := d.Admins.UserCount(ctx)
	if err != nil {
		return "", fmt.Errorf("prepare setup: %w", err)
	}
	if n > 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("remove used setup token: %w", err)
		}
		return "", nil
	}
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("setup token: %w", err)
	}
	raw := base32.StdEncoding.EncodeToString(b) // 24 characters, no padding
	var groups []string
	for i := 0; i < len(raw); i += 4 {
		groups = append(groups, raw[i:i+4])
	}
	token := strings.Join(groups, "-")
	sum := sha256.Sum256([]byte(normalizeSetupToken(token)))
	if err := d.Admins.SetSetting(ctx, setupTokenKey, hex.EncodeToString(sum[:])); err != nil {
		return "", fmt.Errorf("prepare setup: %w", err)
	}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return "", fmt.Errorf("create data_dir: %w", err)
		}
		if err := config.WriteFileAtomic(path, []byte(token+"\n"), false); err != nil {
			return "", fmt.Errorf("write setup token: %w", err)
		}
	}
	log.Warn("no administrator yet: open the web UI and enter the one-time setup token",
		"setup_token", token, "file", path)
	if console == nil {
		console = os.Stderr
	}
	fmt.Fprintf(console, "\n*** relaygate first start: open the web UI (/setup) and enter the one-time setup token: %s (also in %s) ***\n\n", token, path)
	return token, nil
}

// checkSetupToken compares token with the stored hash in constant time.
func (s *server) checkSetupToken(ctx context.Context, token string) (bool, error) {
	stored, ok, err := s.admins.Setting(ctx, setupTokenKey)
	if err != nil || !ok {
		return false, err
	}
	want, err := hex.DecodeString(stored)
	if err != nil {
		return false, fmt.Errorf("stored setup token hash: %w", err)
	}
	got := sha256Sum(normalizeSetupToken(token))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
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
// cookie and records the actor's name in the context. A request with an
// Authorization header is judged by it alone. Cookie-authenticated
// state changes need the CSRF token; bearer tokens are not ambient
// credentials, so they do not.
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

// dataDir is the running configuration's data directory.
func (s *server) dataDir() string {
	if cfg := s.config.Current(); cfg != nil {
		return cfg.DataDir
	}
	return ""
}

func (s *server) needsSetup(ctx context.Context) (bool, error) {
	n, err := s.admins.UserCount(ctx)
	if err != nil {
		return false, err
	}
	return n == 0, nil
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

// setRetryAfter sets Retry-After in whole seconds, rounded up.
func setRetryAfter(c *gin.Context, d time.Duration) {
	c.Header("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}

// loginThrottled answers 429 when the client address or the username is
// locked out; it reports whether it did.
func (s *server) loginThrottled(c *gin.Context, username string, p *pageData) bool {
	wait := max(s.ipThrottle.retryAfter(remoteAddr(c)), s.userThrottle.retryAfter(strings.ToLower(username)))
	if wait <= 0 {
		return false
	}
	setRetryAfter(c, wait)
	p.Error = fmt.Sprintf(p.M["err_throttled"], int((wait+time.Minute-1)/time.Minute))
	s.render(c, http.StatusTooManyRequests, p.page, p)
	return true
}

// getLogin shows the login form.
func (s *server) getLogin(c *gin.Context) {
	if need, err := s.needsSetup(c.Request.Context()); err != nil {
		s.pageError(c, http.StatusInternalServerError, "user count", err)
		return
	} else if need {
		c.Redirect(http.StatusSeeOther, "/setup")
		return
	}
	p := s.newPage(c, "login.html", "login")
	p.Data = gin.H{"Next": safeNext(c.Query("next")), "Username": ""}
	s.render(c, http.StatusOK, "login.html", p)
}

// safeNext keeps only local paths as a post-login target (no open redirect).
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") || strings.ContainsAny(n, "\r\n") {
		return "/"
	}
	return n
}

// postLogin checks username and password (form fields) and starts a
// session. Failures count toward the per-username and per-address
// lockouts; a locked-out attempt gets 429 with Retry-After whatever the
// password.
func (s *server) postLogin(c *gin.Context) {
	username := strings.TrimSpace(c.PostForm("username"))
	password := c.PostForm("password")
	next := safeNext(c.PostForm("next"))
	p := s.newPage(c, "login.html", "login")
	p.Data = gin.H{"Next": next, "Username": username}
	if !sameOrigin(c.Request) {
		s.renderMessage(c, http.StatusForbidden, "err_csrf")
		return
	}
	if s.loginThrottled(c, username, p) {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	ok := false
	if validUsername(username) && len(password) <= maxPasswordLen {
		hash, found, err := s.passwordHash(ctx, username)
		if err != nil {
			s.pageError(c, http.StatusInternalServerError, "password hash", err)
			return
		}
		if !found {
			// Same work for an unknown user, so that timing does not
			// tell which usernames exist.
			if hash, err = s.dummyHash(); err != nil {
				s.pageError(c, http.StatusInternalServerError, "password hash", err)
				return
			}
		}
		match, err := checkPassword(hash, password)
		if err != nil {
			s.log.Error("check password", "err", err, "username", username)
		}
		ok = match && found
	}
	if !ok {
		s.ipThrottle.fail(remoteAddr(c))
		if username != "" && validUsername(username) {
			s.userThrottle.fail(strings.ToLower(username))
		}
		// The name is the client's: bounded and quoted in the records.
		shown := username
		if len(shown) > 64 {
			shown = shown[:64] + "..."
		}
		shown = strconv.Quote(shown)
		s.audit(c, shown, "login.failed", "wrong username or password")
		s.log.Warn("login failed", "username", shown, "remote", remoteAddr(c))
		p.Error = p.M["err_login"]
		s.render(c, http.StatusUnauthorized, "login.html", p)
		return
	}
	s.userThrottle.reset(strings.ToLower(username))
	if err := s.startSession(c, username); err != nil {
		s.pageError(c, http.StatusInternalServerError, "start session", err)
		return
	}
	s.audit(c, username, "login", "")
	s.log.Info("login", "username", username, "remote", remoteAddr(c))
	s.pruneSessions(ctx)
	c.Redirect(http.StatusSeeOther, next)
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

// getSetup shows the first-start form while no administrator exists.
func (s *server) getSetup(c *gin.Context) {
	need, err := s.needsSetup(c.Request.Context())
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "user count", err)
		return
	}
	if !need {
		c.Redirect(http.StatusSeeOther, "/login")
		return
	}
	p := s.newPage(c, "setup.html", "setup")
	p.Data = gin.H{"Username": "admin", "TokenFile": filepath.Join(s.dataDir(), SetupTokenFile), "MinLen": MinPasswordLen}
	s.render(c, http.StatusOK, "setup.html", p)
}

// postSetup creates the first administrator with the one-time token.
func (s *server) postSetup(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	need, err := s.needsSetup(ctx)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "user count", err)
		return
	}
	if !need {
		s.renderMessage(c, http.StatusConflict, "err_setup_done")
		return
	}
	username := strings.TrimSpace(c.PostForm("username"))
	password, password2 := c.PostForm("password"), c.PostForm("password2")
	p := s.newPage(c, "setup.html", "setup")
	errs := map[string]string{}
	p.Data = gin.H{"Username": username, "TokenFile": filepath.Join(s.dataDir(), SetupTokenFile), "MinLen": MinPasswordLen, "Errors": errs}
	if s.loginThrottled(c, "", p) {
		return
	}
	ok, err := s.checkSetupToken(ctx, c.PostForm("token"))
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "check setup token", err)
		return
	}
	if !ok {
		s.ipThrottle.fail(remoteAddr(c))
		s.audit(c, "setup", "setup.failed", "wrong setup token")
		errs["token"] = p.M["err_setup_token"]
	}
	if !validUsername(username) {
		errs["username"] = p.M["err_username"]
	}
	if prob := passwordProblem(username, password); prob != "" {
		errs["password"] = fmt.Sprintf(p.M[prob], MinPasswordLen)
	} else if password != password2 {
		errs["password2"] = p.M["err_password_mismatch"]
	}
	if len(errs) > 0 {
		p.Error = p.M["err_form"]
		s.render(c, http.StatusBadRequest, "setup.html", p)
		return
	}
	hash, err := hashPassword(s.argon, password)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "hash password", err)
		return
	}
	// One-time: of two concurrent setups only one takes the token.
	if _, took, err := s.admins.TakeSetting(ctx, setupTokenKey); err != nil {
		s.pageError(c, http.StatusInternalServerError, "take setup token", err)
		return
	} else if !took {
		s.renderMessage(c, http.StatusConflict, "err_setup_done")
		return
	}
	if err := s.admins.CreateFirstUser(ctx, username, hash); err != nil {
		if errors.Is(err, store.ErrExists) {
			s.renderMessage(c, http.StatusConflict, "err_setup_done")
			return
		}
		s.pageError(c, http.StatusInternalServerError, "create user", err)
		return
	}
	if err := os.Remove(filepath.Join(s.dataDir(), SetupTokenFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove setup token file", "err", err)
	}
	s.audit(c, username, "setup", "first administrator created")
	s.log.Info("first administrator created", "username", username, "remote", remoteAddr(c))
	if err := s.startSession(c, username); err != nil {
		s.pageError(c, http.StatusInternalServerError, "start session", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/policy?welcome=1")
}

// postPassword changes the logged-in administrator's password and ends
// their other sessions.
func (s *server) postPassword(c *gin.Context) {
	se := c.MustGet(sessionKey).(*store.Session)
	p := s.newPage(c, "account.html", "account")
	errs := map[string]string{}
	p.Data = gin.H{"Errors": errs, "MinLen": MinPasswordLen}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	if s.loginThrottled(c, se.Username, p) {
		return
	}
	hash, found, err := s.passwordHash(ctx, se.Username)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "password hash", err)
		return
	}
	cur, next, next2 := c.PostForm("current"), c.PostForm("password"), c.PostForm("password2")
	if ok, _ := checkPassword(hash, cur); !ok || !found {
		s.userThrottle.fail(strings.ToLower(se.Username))
		errs["current"] = p.M["err_current_password"]
	} else if prob := passwordProblem(se.Username, next); prob != "" {
		errs["password"] = fmt.Sprintf(p.M[prob], MinPasswordLen)
	} else if next != next2 {
		errs["password2"] = p.M["err_password_mismatch"]
	}
	if len(errs) > 0 {
		p.Error = p.M["err_form"]
		s.render(c, http.StatusBadRequest, "account.html", p)
		return
	}
	nh, err := hashPassword(s.argon, next)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "hash password", err)
		return
	}
	if err := s.admins.SetPasswordHash(ctx, se.Username, nh); err != nil {
		s.pageError(c, http.StatusInternalServerError, "set password", err)
		return
	}
	// Every session of the user ends (a thief's too); this one restarts.
	if err := s.admins.DeleteUserSessions(ctx, se.Username); err != nil {
		s.pageError(c, http.StatusInternalServerError, "end sessions", err)
		return
	}
	s.audit(c, "", "password.change", "password changed; other sessions ended")
	if err := s.startSession(c, se.Username); err != nil {
		s.pageError(c, http.StatusInternalServerError, "start session", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/account?done=1")
}

// passwordHash returns the user's password hash; found is false for an
// unknown user.
func (s *server) passwordHash(ctx context.Context, username string) (hash string, found bool, err error) {
	u, err := s.admins.User(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return u.PasswordHash, true, nil
}
