package webui

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/store"
)

// tokenKey is the gin context key holding the store.TokenInfo of a
// token-authenticated request.
const tokenKey = "relaygate.token"

// tokenActor is how a token appears as the actor in the audit log and the
// access log: "token:" and its name. Usernames cannot hold a colon
// (validUsername), so a token never passes for an administrator.
func tokenActor(name string) string { return "token:" + name }

// scopeNeeded is the least token scope that may make the request: reading
// /metrics needs metrics, reading anything else read, and every other
// method admin. route is the matched route (gin's FullPath), so that no
// spelling of a path reaches another route's rights.
func scopeNeeded(method, route string) store.Scope {
	if method != http.MethodGet && method != http.MethodHead {
		return store.ScopeAdmin
	}
	if route == "/metrics" {
		return store.ScopeMetrics
	}
	return store.ScopeRead
}

// scopeAllows reports whether a token of scope have may do what need
// allows. An unknown scope allows nothing.
func scopeAllows(have, need store.Scope) bool {
	h, n := slices.Index(store.Scopes, have), slices.Index(store.Scopes, need)
	return h >= 0 && n >= 0 && h >= n
}

// scopeError is the answer to a request outside its token's scope.
type scopeError struct {
	Error         string      `json:"error"`
	ScopeRequired store.Scope `json:"scope_required"`
}

// abortScope answers 403 for a request that needs scope need, naming it.
func abortScope(c *gin.Context, tok store.TokenInfo, need store.Scope) {
	c.AbortWithStatusJSON(http.StatusForbidden, scopeError{
		Error: fmt.Sprintf("token %q has scope %s; %s %s needs scope %s",
			tok.Name, tok.Scope, c.Request.Method, c.Request.URL.Path, need),
		ScopeRequired: need,
	})
}

// requestToken returns the token of a token-authenticated request.
func requestToken(c *gin.Context) (store.TokenInfo, bool) {
	v, ok := c.Get(tokenKey)
	if !ok {
		return store.TokenInfo{}, false
	}
	return v.(store.TokenInfo), true
}
