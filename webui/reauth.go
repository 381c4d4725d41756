package webui

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/store"
)

// reauthHeader carries the administrator's password on API requests that
// need it again (firmware install, token creation), for clients whose
// body is not a form: the firmware bundle is the whole body.
const reauthHeader = "X-Relaygate-Password"

// reauthFailure is why re-authentication failed: the status to answer and
// the catalog key of the message.
type reauthFailure struct {
	status int
	key    string
	wait   time.Duration // lockout left (429 err_throttled)
}

// reauth checks that the administrator of the request's session typed
// their password again, for an action a stolen session alone must not
// take (installing firmware, creating tokens). A wrong password counts
// toward the lockout of the username from this source, as a wrong current
// password does on the account page, and is audited; a missing one counts
// nothing (no guess was made). Hashing takes one of the bounded slots.
// It returns nil when the password is right; on 429 Retry-After is set.
func (s *server) reauth(c *gin.Context, action, password string) *reauthFailure {
	se, ok := c.Get(sessionKey)
	if !ok {
		// Token-authenticated: there is no password to check. Callers
		// decide before calling whether a token may act at all.
		return &reauthFailure{status: http.StatusForbidden, key: "err_reauth_session"}
	}
	username := se.(*store.Session).Username
	if password == "" {
		return &reauthFailure{status: http.StatusForbidden, key: "err_reauth"}
	}
	att, wait := s.chargeAttempt(c, username, false)
	if att == nil {
		setRetryAfter(c, wait)
		return &reauthFailure{status: http.StatusTooManyRequests, key: "err_throttled", wait: wait}
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	hash, found, err := s.passwordHash(ctx, username)
	if err != nil {
		att.cancel()
		s.log.Error("re-authentication: password hash", "err", err, "username", username)
		return &reauthFailure{status: http.StatusInternalServerError, key: "err_internal"}
	}
	var match bool
	busy := s.hashes.run(ctx, func() {
		if !found || len(password) > maxPasswordLen {
			return
		}
		var cerr error
		if match, cerr = checkPassword(hash, password); cerr != nil {
			s.log.Error("re-authentication: check password", "err", cerr, "username", username)
		}
	})
	if busy != nil {
		att.cancel()
		s.log.Warn("password hashing busy: request refused", "err", busy, "path", c.Request.URL.Path, "remote", remoteAddr(c))
		setRetryAfter(c, s.hashes.wait)
		return &reauthFailure{status: http.StatusTooManyRequests, key: "err_hash_busy"}
	}
	if !match {
		s.audit(c, "", "reauth.failed", action)
		s.log.Warn("re-authentication failed", "username", username, "action", action, "remote", remoteAddr(c))
		return &reauthFailure{status: http.StatusForbidden, key: "err_reauth"}
	}
	att.ok()
	return nil
}

// message is the failure's text in the catalog lang.
func (f *reauthFailure) message(m map[string]string) string {
	if f.key == "err_throttled" {
		return fmt.Sprintf(m[f.key], int((f.wait+time.Minute-1)/time.Minute))
	}
	return m[f.key]
}

// abortReauth answers an API request whose re-authentication failed, in
// English like every API error, with "reauth_required": true so that a
// client can tell it from a scope refusal.
func (s *server) abortReauth(c *gin.Context, f *reauthFailure) {
	if f.status == http.StatusForbidden {
		c.AbortWithStatusJSON(f.status, gin.H{"error": f.message(s.catalog["en"]), "reauth_required": true})
		return
	}
	abortError(c, f.status, f.message(s.catalog["en"]))
}
