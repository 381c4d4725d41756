package webui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/store"
)

func TestPasswordChange(t *testing.T) {
	h, b := loggedIn(t)
	other := h.browser(t)
	other.login(adminUser, adminPass)
	const newPass = "a much better passphrase 2026"
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"current": {"wrong"}, "password": {newPass}, "password2": {newPass}}, "Wrong current password."},
		{url.Values{"current": {adminPass}, "password": {"short"}, "password2": {"short"}}, "Too short"},
		{url.Values{"current": {adminPass}, "password": {newPass}, "password2": {"other"}}, "The two passwords differ."},
	} {
		if w := b.post("/account/password", tc.form); w.Code != 400 || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("password change = %d, want 400 with %q", w.Code, tc.want)
		}
	}
	if w := b.post("/account/password", url.Values{"current": {adminPass}, "password": {newPass}, "password2": {newPass}}); w.Code != http.StatusSeeOther {
		t.Fatalf("password change = %d %s", w.Code, w.Body)
	}
	if e := h.auditLast(t); e.Action != "password.change" {
		t.Errorf("audit %+v", e)
	}
	// The other session ended; this one continues with a new cookie.
	if w := other.do("GET", "/", nil, nil); w.Code != http.StatusSeeOther {
		t.Errorf("other session after password change = %d, want 303", w.Code)
	}
	if w := b.do("GET", "/", nil, nil); w.Code != 200 {
		t.Errorf("own session after password change = %d, want 200", w.Code)
	}
	if w := h.browser(t).login(adminUser, newPass); w.Code != http.StatusSeeOther {
		t.Errorf("login with the new password = %d", w.Code)
	}
}

func TestPasswordHash(t *testing.T) {
	hash, err := hashPassword(testArgon, "pässwörd 🔑")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q", hash)
	}
	for pw, want := range map[string]bool{"pässwörd 🔑": true, "pässwörd": false, "": false} {
		if ok, err := checkPassword(hash, pw); ok != want || err != nil {
			t.Errorf("checkPassword(%q) = %v, %v, want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$a2V5"} {
		if ok, err := checkPassword(bad, "x"); ok || err == nil {
			t.Errorf("checkPassword(%q) = %v, %v, want an error", bad, ok, err)
		}
	}
}

func TestSetupFlow(t *testing.T) {
	d, h := testDeps(t)
	dir := t.TempDir()
	h.config.cur.DataDir = dir
	h.router = NewRouter(d)
	tok, err := PrepareSetup(context.Background(), d, dir, io.Discard)
	if err != nil || tok == "" {
		t.Fatalf("PrepareSetup() = %q, %v", tok, err)
	}
	st, err := os.Stat(filepath.Join(dir, SetupTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("setup token file: %v, %v, want mode 0600", st, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, SetupTokenFile)); strings.TrimSpace(string(data)) != tok {
		t.Errorf("setup token file = %q, want %q", data, tok)
	}
	b := h.browser(t)
	// Without an administrator every page leads to setup, and login too.
	for _, p := range []string{"/", "/hosts", "/login"} {
		if w := b.do("GET", p, nil, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/setup" {
			t.Errorf("GET %s = %d %s, want 303 to /setup", p, w.Code, w.Header().Get("Location"))
		}
	}
	if w := b.do("GET", "/setup", nil, nil); w.Code != 200 || !strings.Contains(w.Body.String(), SetupTokenFile) {
		t.Errorf("GET /setup = %d, want 200 naming the token file", w.Code)
	}
	form := func(token, user, pw, pw2 string) url.Values {
		return url.Values{"token": {token}, "username": {user}, "password": {pw}, "password2": {pw2}}
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"wrong token", form("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF", "admin", adminPass, adminPass), "Wrong or already used setup token."},
		{"short password", form(tok, "admin", "short", "short"), "Too short: use at least 12 characters."},
		{"common password", form(tok, "admin", "password1234", "password1234"), "Too easy to guess"},
		{"repetitive", form(tok, "admin", "aaaaaaaaaaaaaa", "aaaaaaaaaaaaaa"), "Too repetitive"},
		{"sequence", form(tok, "admin", "123456789012", "123456789012"), "Too easy to guess"},
		{"contains user", form(tok, "hiroshi", "hiroshi-at-the-office", "hiroshi-at-the-office"), "Must not contain the username."},
		{"mismatch", form(tok, "admin", adminPass, adminPass+"x"), "The two passwords differ."},
		{"bad username", form(tok, "ad min", adminPass, adminPass), "1 to 64 letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := b.do("POST", "/setup", tc.form, nil)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("POST /setup = %d, want 400 with %q:\n%s", w.Code, tc.want, w.Body)
			}
			if n, _ := h.store.UserCount(context.Background()); n != 0 {
				t.Errorf("%d users after a failed setup, want 0", n)
			}
		})
	}
	// Lower case, spaces for dashes and 0 for O work too.
	typed := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(tok, "-", " "), "O", "0"))
	w := b.do("POST", "/setup", form(typed, "admin", adminPass, adminPass), nil)
	if w.Code != http.StatusSeeOther || b.cookie == "" {
		t.Fatalf("POST /setup = %d %s, want 303 with a session", w.Code, w.Body)
	}
	if _, err := os.Stat(filepath.Join(dir, SetupTokenFile)); !os.IsNotExist(err) {
		t.Errorf("setup token file after setup: %v, want deleted", err)
	}
	if got := h.auditLast(t); got.Action != "setup" || got.Actor != "admin" || got.Remote != "192.0.2.1" {
		t.Errorf("audit = %+v, want setup by admin from 192.0.2.1", got)
	}
	// One-time: the token does not work again, setup is closed.
	b2 := h.browser(t)
	if w := b2.do("POST", "/setup", form(tok, "evil", adminPass, adminPass), nil); w.Code != http.StatusConflict {
		t.Errorf("second POST /setup = %d, want 409", w.Code)
	}
	if w := b2.do("GET", "/setup", nil, nil); w.Code != http.StatusSeeOther {
		t.Errorf("GET /setup after setup = %d, want 303 to login", w.Code)
	}
	if _, err := h.store.User(context.Background(), "evil"); !errors.Is(err, store.ErrNotFound) {
		t.Error("second setup created a user")
	}
	// The new session works.
	if w := b.do("GET", "/", nil, nil); w.Code != 200 {
		t.Errorf("GET / after setup = %d, want 200", w.Code)
	}
	// A restart with an administrator removes a stale file and makes no token.
	os.WriteFile(filepath.Join(dir, SetupTokenFile), []byte("stale\n"), 0o600)
	if tok, err := PrepareSetup(context.Background(), d, dir, io.Discard); tok != "" || err != nil {
		t.Errorf("PrepareSetup() with an admin = %q, %v, want none", tok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, SetupTokenFile)); !os.IsNotExist(err) {
		t.Errorf("stale setup token file: %v, want removed", err)
	}
}

func TestLogin(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	if w := b.do("GET", "/hosts", nil, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Fhosts" {
		t.Errorf("GET /hosts without session = %d %q, want 303 to login", w.Code, w.Header().Get("Location"))
	}
	w := b.login(adminUser, "wrong password here")
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Wrong username or password.") || b.cookie != "" {
		t.Fatalf("login with a wrong password = %d, cookie %q", w.Code, b.cookie)
	}
	if w := b.login("nobody", adminPass); w.Code != http.StatusUnauthorized {
		t.Errorf("login as unknown user = %d, want 401", w.Code)
	}
	w = b.do("POST", "/login", url.Values{"username": {adminUser}, "password": {adminPass}, "next": {"/events"}}, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/events" {
		t.Fatalf("login = %d to %q, want 303 to /events", w.Code, w.Header().Get("Location"))
	}
	ck := w.Result().Cookies()[0]
	if ck.Name != SessionCookie || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Errorf("session cookie %+v, want HttpOnly, Secure, SameSite=Strict, Path=/", ck)
	}
	// Only the hash of the cookie is stored.
	for _, f := range []string{h.store.Path(), h.store.Path() + "-wal"} {
		if db, err := os.ReadFile(f); err != nil || bytes.Contains(db, []byte(ck.Value)) {
			t.Errorf("session id stored in clear in %s (read: %v)", f, err)
		}
	}
	if _, err := h.store.Session(context.Background(), sha256Sum(ck.Value)); err != nil {
		t.Errorf("session by the hash of the cookie: %v", err)
	}
	if got := h.auditActions(t); strings.Join(got, ",") != "login.failed,login.failed,login" {
		t.Errorf("audit actions = %v", got)
	}
	// No open redirect.
	b2 := h.browser(t)
	w = b2.do("POST", "/login", url.Values{"username": {adminUser}, "password": {adminPass}, "next": {"//evil.example/"}}, nil)
	if w.Header().Get("Location") != "/" {
		t.Errorf("login with next=//evil.example/ redirects to %q, want /", w.Header().Get("Location"))
	}
	// Logout ends the session server-side.
	b.refreshCSRF()
	if w := b.post("/logout", nil); w.Code != http.StatusSeeOther {
		t.Errorf("logout = %d", w.Code)
	}
	old := b.cookie
	if w := b.do("GET", "/", nil, nil); w.Code != http.StatusSeeOther {
		t.Errorf("GET / after logout = %d, want 303", w.Code)
	}
	b.cookie = old
	if w := b.do("GET", "/api/v1/status", nil, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("API with the logged-out cookie = %d, want 401", w.Code)
	}
}

func TestPasswordProblem(t *testing.T) {
	for _, tc := range []struct{ user, pw, want string }{
		{"admin", "correct horse battery staple", ""},
		{"admin", "Tr0ub4dor&3xyz", ""},
		{"admin", "short", "pw_short"},
		{"admin", "ééééééééééééé", "pw_repetitive"},
		{"admin", "abababababababab", "pw_repetitive"},
		{"admin", "Password2026!!", "pw_common"},
		{"admin", "qwertyuiop[]", "pw_common"},
		{"admin", "890123456789", "pw_common"},
		{"admin", "zyxwvutsrqpo", "pw_common"},
		{"kenji", "kenji-the-admin-2026", "pw_username"},
		{"admin", "tab\tinside-password", "pw_control"},
	} {
		if got := passwordProblem(tc.user, tc.pw); got != tc.want {
			t.Errorf("passwordProblem(%q, %q) = %q, want %q", tc.user, tc.pw, got, tc.want)
		}
	}
}
