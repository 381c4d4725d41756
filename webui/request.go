package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// limitOnly parses a query that may hold only "limit" (default DefaultLimit);
// on a bad query it answers 400 and returns false.
func limitOnly(c *gin.Context) (int, bool) {
	p, msg := queryParams(c.Request.URL.RawQuery, "limit")
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return 0, false
	}
	limit := DefaultLimit
	if v := p["limit"]; v != "" {
		if limit, msg = parseLimit(v); msg != "" {
			abortError(c, http.StatusBadRequest, msg)
			return 0, false
		}
	}
	return limit, true
}

// queryParams parses a query string that may hold only the allowed
// parameters, each at most once, so that a typo ("clinet=") is an error
// rather than a silently ignored filter.
func queryParams(raw string, allowed ...string) (map[string]string, string) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, "malformed query string"
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Sprintf("unknown parameter %q (want %s)", k, strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return nil, fmt.Sprintf("parameter %q given %d times", k, len(v))
		}
		out[k] = v[0]
	}
	return out, ""
}

func parseLimit(v string) (int, string) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fmt.Sprintf("invalid limit %q (want a number from 1 to %d)", v, MaxLimit)
	}
	return n, ""
}

// decodeJSONBody decodes a request body of at most limit octets into v,
// refusing unknown fields; on failure it answers 400 with want (an example
// body) and reports false.
func decodeJSONBody(c *gin.Context, v any, limit int64, want string) bool {
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid JSON body (want %s): %v", want, err))
		return false
	}
	return true
}

func (s *server) ctx(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request.Context(), s.storeTimeout)
}

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

// remoteAddr is the TCP peer's address, unmapped, without port.
func remoteAddr(c *gin.Context) string {
	if ap, err := netip.ParseAddrPort(c.Request.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	return c.Request.RemoteAddr
}
