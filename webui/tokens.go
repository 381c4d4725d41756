package webui

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/store"
)

// tokensRoutes registers API token management.
func (s *server) tokensRoutes(ui, api *gin.RouterGroup) {
	ui.GET("/tokens", s.pageTokens)
	ui.POST("/tokens", s.postTokenCreate)
	ui.POST("/tokens/revoke", s.postTokenRevoke)
	api.GET("/tokens", s.getTokens)
	api.POST("/tokens", s.apiTokenCreate)
	api.DELETE("/tokens/:id", s.apiTokenRevoke)
}

// getTokens answers GET /api/v1/tokens: names, scopes, dates and expiry,
// never tokens.
func (s *server) getTokens(c *gin.Context) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	toks, err := s.tokenAdmin.Tokens(ctx)
	if err != nil {
		s.internalError(c, "list tokens", err)
		return
	}
	if toks == nil {
		toks = []store.TokenInfo{}
	}
	c.JSON(http.StatusOK, gin.H{"tokens": toks})
}

// tokenRequest is a token to create, as the API and the page take it.
type tokenRequest struct {
	Name    string `json:"name"`
	Scope   string `json:"scope"`   // metrics, read or admin; "" means admin
	Expires string `json:"expires"` // e.g. "90d", "12h"; "" or "never": no expiry
	// Password is the administrator's, again (re-authentication); the
	// X-Relaygate-Password header may carry it instead.
	Password string `json:"password"`
}

// validate checks r and returns what it will create, or the
// catalog key of the problem per field ("name", "scope", "expires").
func (r *tokenRequest) validate() (store.NewToken, map[string]string) {
	errs := map[string]string{}
	nt := store.NewToken{Name: strings.TrimSpace(r.Name), Scope: store.ScopeAdmin}
	if !validTokenName(nt.Name) {
		errs["name"] = "err_token_name"
	}
	if r.Scope != "" {
		sc, err := store.ParseScope(r.Scope)
		if err != nil {
			errs["scope"] = "err_token_scope"
		}
		nt.Scope = sc
	}
	d, err := store.ParseTokenLifetime(r.Expires)
	if err != nil {
		errs["expires"] = "err_token_expires"
	}
	nt.Lifetime = d
	return nt, errs
}

// tokenFieldProblems are the API's messages for tokenRequest's fields.
var tokenFieldProblems = map[string]string{
	"name":    "invalid name (want 1 to 100 characters on one line)",
	"scope":   "invalid scope (want metrics, read or admin)",
	"expires": "invalid expires (want a whole number of hours, days or weeks, e.g. 12h, 90d, 2w, or never)",
}

// apiTokenCreate answers POST /api/v1/tokens {"name", "scope", "expires",
// "password"} with {"name", "scope", "expires", "token"}; the token is
// shown this once. It needs the administrator's password again: a token
// never creates tokens (docs/threat-model.md).
func (s *server) apiTokenCreate(c *gin.Context) {
	var req tokenRequest
	if !decodeJSONBody(c, &req, 4096, `{"name": "...", "scope": "metrics|read|admin", "expires": "90d", "password": "..."}`) {
		return
	}
	nt, errs := req.validate()
	for _, f := range []string{"name", "scope", "expires"} {
		if _, bad := errs[f]; bad {
			abortError(c, http.StatusBadRequest, tokenFieldProblems[f])
			return
		}
	}
	if req.Password == "" {
		req.Password = c.GetHeader(reauthHeader)
	}
	if f := s.reauth(c, "token.create", req.Password); f != nil {
		s.abortReauth(c, f)
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	tok, err := s.tokenAdmin.CreateScopedToken(ctx, nt)
	if err != nil {
		s.internalError(c, "create token", err)
		return
	}
	s.audit(c, "", "token.create", tokenDetail(nt))
	out := gin.H{"name": nt.Name, "scope": nt.Scope, "expires": nil, "token": tok}
	if nt.Lifetime > 0 {
		out["expires"] = s.now().Add(nt.Lifetime).UTC()
	}
	c.JSON(http.StatusCreated, out)
}

// tokenDetail is the audit log's detail of a created token.
func tokenDetail(nt store.NewToken) string {
	d := fmt.Sprintf("%s (scope %s", nt.Name, nt.Scope)
	if nt.Lifetime > 0 {
		d += fmt.Sprintf(", expires in %s", nt.Lifetime)
	}
	return d + ")"
}

// apiTokenRevoke answers DELETE /api/v1/tokens/{id}.
func (s *server) apiTokenRevoke(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid token id %q", c.Param("id")))
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.tokenAdmin.RevokeToken(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			abortError(c, http.StatusNotFound, fmt.Sprintf("no token %d", id))
			return
		}
		s.internalError(c, "revoke token", err)
		return
	}
	s.audit(c, "", "token.revoke", fmt.Sprintf("token %d", id))
	c.Status(http.StatusNoContent)
}

func (s *server) tokensPage(c *gin.Context, status int, p *pageData, extra gin.H) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	toks, err := s.tokenAdmin.Tokens(ctx)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "list tokens", err)
		return
	}
	data := gin.H{"Tokens": toks, "Now": s.now(), "Scopes": store.Scopes, "Name": "", "Scope": string(store.ScopeMetrics),
		"Expires": "", "Errors": map[string]string{}, "NewToken": ""}
	for k, v := range extra {
		data[k] = v
	}
	p.Data = data
	s.render(c, status, "tokens.html", p)
}

func (s *server) pageTokens(c *gin.Context) {
	s.tokensPage(c, http.StatusOK, s.newPage(c, "tokens.html", "tokens"), nil)
}

// validTokenName: 1-100 characters, one line.
func validTokenName(n string) bool {
	return n != "" && len([]rune(n)) <= 100 && !strings.ContainsAny(n, "\r\n\t")
}

// postTokenCreate creates a token and shows it once. The form asks for
// the administrator's password again.
func (s *server) postTokenCreate(c *gin.Context) {
	p := s.newPage(c, "tokens.html", "tokens")
	req := tokenRequest{Name: c.PostForm("name"), Scope: c.PostForm("scope"), Expires: c.PostForm("expires"),
		Password: c.PostForm("password")}
	nt, keys := req.validate()
	errs := map[string]string{}
	for f, k := range keys {
		errs[f] = p.M[k]
	}
	form := gin.H{"Name": strings.TrimSpace(req.Name), "Scope": req.Scope, "Expires": req.Expires, "Errors": errs}
	if len(errs) > 0 {
		p.Error = p.M["err_form"]
		s.tokensPage(c, http.StatusBadRequest, p, form)
		return
	}
	if f := s.reauth(c, "token.create", req.Password); f != nil {
		if f.status == http.StatusInternalServerError {
			s.renderMessage(c, f.status, f.key)
			return
		}
		errs["password"] = f.message(p.M)
		p.Error = errs["password"]
		s.tokensPage(c, f.status, p, form)
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	tok, err := s.tokenAdmin.CreateScopedToken(ctx, nt)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "create token", err)
		return
	}
	s.audit(c, "", "token.create", tokenDetail(nt))
	s.tokensPage(c, http.StatusOK, p, gin.H{"NewToken": tok, "NewName": nt.Name})
}

// postTokenRevoke revokes a token by id.
func (s *server) postTokenRevoke(c *gin.Context) {
	id, err := strconv.ParseInt(c.PostForm("id"), 10, 64)
	if err != nil || id < 1 {
		s.renderMessage(c, http.StatusBadRequest, "err_not_found")
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.tokenAdmin.RevokeToken(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.renderMessage(c, http.StatusNotFound, "err_not_found")
			return
		}
		s.pageError(c, http.StatusInternalServerError, "revoke token", err)
		return
	}
	s.audit(c, "", "token.revoke", fmt.Sprintf("token %d", id))
	c.Redirect(http.StatusSeeOther, "/tokens")
}
