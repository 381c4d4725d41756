package webui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
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
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/internal/atomicfile"
	"github.com/relaygate/relaygate/store"
)

// loginRoutes registers first-start setup and login (no session yet) and
// the account page.
func (s *server) loginRoutes(public, ui *gin.RouterGroup) {
	public.GET("/setup", s.getSetup)
	public.POST("/setup", s.postSetup)
	public.GET("/login", s.getLogin)
	public.POST("/login", s.postLogin)
	ui.GET("/account", s.pageAccount)
	ui.POST("/account/password", s.postPassword)
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
		if err := atomicfile.Write(path, []byte(token+"\n"), 0o600); err != nil {
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

// safeNext keeps only a local path (with its query) as the post-login
// target, and "/" for anything else, so that the login form is no open
// redirect. Browsers drop tabs and newlines from URLs and read a
// backslash as a slash (WHATWG URL standard), so "/\t/evil.example" and
// "/\\evil" reach another host: control characters and backslashes are
// refused outright, also percent-encoded (a target is decoded once more
// when the redirect is followed by some clients), and what remains must
// parse as a path without scheme or host.
func safeNext(n string) string {
	if n == "" || len(n) > 2048 || n[0] != '/' || strings.HasPrefix(n, "//") {
		return "/"
	}
	dec, err := url.PathUnescape(n)
	if err != nil {
		return "/"
	}
	for _, v := range []string{n, dec} {
		if strings.ContainsRune(v, '\\') || strings.HasPrefix(v, "//") || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return "/"
		}
	}
	u, err := url.Parse(n)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	return n
}

// postLogin checks username and password (form fields) and starts a
// session. Every attempt counts as a failure of the username from the
// client's source and of the source, before the password is hashed, and
// is given back when it succeeds; a locked-out attempt gets 429 with
// Retry-After whatever the password, and so does one that gets no
// hashing slot (nothing counted then).
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
	att, ok := s.beginAttempt(c, username, true, p)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	ok = false
	if validUsername(username) && len(password) <= maxPasswordLen {
		hash, found, err := s.passwordHash(ctx, username)
		if err != nil {
			att.cancel()
			s.pageError(c, http.StatusInternalServerError, "password hash", err)
			return
		}
		var match bool
		busy := s.hashes.run(ctx, func() {
			if !found {
				// Same work for an unknown user, so that timing does
				// not tell which usernames exist.
				if hash, err = s.dummyHash(); err != nil {
					return
				}
			}
			var cerr error
			if match, cerr = checkPassword(hash, password); cerr != nil {
				s.log.Error("check password", "err", cerr, "username", username)
			}
		})
		if busy != nil {
			att.cancel()
			s.hashBusy(c, p, busy)
			return
		}
		if err != nil {
			att.cancel()
			s.pageError(c, http.StatusInternalServerError, "password hash", err)
			return
		}
		ok = match && found
	}
	if !ok {
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
	att.ok()
	if err := s.startSession(c, username); err != nil {
		s.pageError(c, http.StatusInternalServerError, "start session", err)
		return
	}
	s.audit(c, username, "login", "")
	s.log.Info("login", "username", username, "remote", remoteAddr(c))
	s.pruneSessions(ctx)
	c.Redirect(http.StatusSeeOther, next)
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
	// A wrong token counts toward the source's lockout, before anything
	// is hashed; a right one is given back.
	att, ok := s.beginAttempt(c, "", true, p)
	if !ok {
		return
	}
	ok, err = s.checkSetupToken(ctx, c.PostForm("token"))
	if err != nil {
		att.cancel()
		s.pageError(c, http.StatusInternalServerError, "check setup token", err)
		return
	}
	if ok {
		att.ok()
	} else {
		s.audit(c, "setup", "setup.failed", "wrong setup token")
		errs["token"] = p.M["err_setup_token"]
	}
	if !validUsername(username) {
		errs["username"] = p.M["err_username"]
	}
	checkNewPassword(p, username, password, password2, errs)
	if len(errs) > 0 {
		p.Error = p.M["err_form"]
		s.render(c, http.StatusBadRequest, "setup.html", p)
		return
	}
	var hash string
	if busy := s.hashes.run(ctx, func() { hash, err = hashPassword(s.argon, password) }); busy != nil {
		s.hashBusy(c, p, busy)
		return
	}
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
	// A wrong current password counts toward the lockout of the username
	// from this source, before anything is hashed.
	att, ok := s.beginAttempt(c, se.Username, false, p)
	if !ok {
		return
	}
	hash, found, err := s.passwordHash(ctx, se.Username)
	if err != nil {
		att.cancel()
		s.pageError(c, http.StatusInternalServerError, "password hash", err)
		return
	}
	cur, next, next2 := c.PostForm("current"), c.PostForm("password"), c.PostForm("password2")
	var nh string
	busy := s.hashes.run(ctx, func() {
		if ok, _ := checkPassword(hash, cur); !ok || !found {
			errs["current"] = p.M["err_current_password"]
			return
		}
		att.ok()
		checkNewPassword(p, se.Username, next, next2, errs)
		if len(errs) == 0 {
			nh, err = hashPassword(s.argon, next)
		}
	})
	if busy != nil {
		att.cancel()
		s.hashBusy(c, p, busy)
		return
	}
	if len(errs) > 0 {
		p.Error = p.M["err_form"]
		s.render(c, http.StatusBadRequest, "account.html", p)
		return
	}
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

func (s *server) pageAccount(c *gin.Context) {
	p := s.newPage(c, "account.html", "account")
	if c.Query("done") == "1" {
		p.Notice = p.M["password_changed"]
	}
	p.Data = gin.H{"Errors": map[string]string{}, "MinLen": MinPasswordLen}
	s.render(c, http.StatusOK, "account.html", p)
}

// checkNewPassword adds to errs what is wrong with a new password or its
// repetition: setup and the password change ask the same.
func checkNewPassword(p *pageData, username, password, password2 string, errs map[string]string) {
	if prob := passwordProblem(username, password); prob != "" {
		errs["password"] = fmt.Sprintf(p.M[prob], MinPasswordLen)
	} else if password != password2 {
		errs["password2"] = p.M["err_password_mismatch"]
	}
}
