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

// getTokens answers GET /api/v1/tokens (names and dates, never tokens).
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

// apiTokenCreate answers POST /api/v1/tokens {"name": "..."} with
// {"name", "token"}; the token is shown this once.
func (s *server) apiTokenCreate(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if !decodeJSONBody(c, &req, 4096, `{"name": "..."}`) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if !validTokenName(req.Name) {
		abortError(c, http.StatusBadRequest, "invalid name (want 1 to 100 characters on one line)")
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	tok, err := s.tokenAdmin.CreateToken(ctx, req.Name)
	if err != nil {
		s.internalError(c, "create token", err)
		return
	}
	s.audit(c, "", "token.create", req.Name)
	c.JSON(http.StatusCreated, gin.H{"name": req.Name, "token": tok})
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
	data := gin.H{"Tokens": toks, "Name": "", "NameError": "", "NewToken": ""}
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

// postTokenCreate creates a token and shows it once.
func (s *server) postTokenCreate(c *gin.Context) {
	p := s.newPage(c, "tokens.html", "tokens")
	name := strings.TrimSpace(c.PostForm("name"))
	if !validTokenName(name) {
		p.Error = p.M["err_form"]
		s.tokensPage(c, http.StatusBadRequest, p, gin.H{"NameError": p.M["err_token_name"], "Name": name})
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	tok, err := s.tokenAdmin.CreateToken(ctx, name)
	if err != nil {
		s.pageError(c, http.StatusInternalServerError, "create token", err)
		return
	}
	s.audit(c, "", "token.create", name)
	s.tokensPage(c, http.StatusOK, p, gin.H{"NewToken": tok, "NewName": name})
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
