package webui

import (
	"cmp"
	"context"
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
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// applyTimeout bounds one ConfigManager.Apply.
const applyTimeout = 2 * time.Minute

// eventsResponse is the answer of GET /api/v1/events.
type eventsResponse struct {
	Events []event.Event `json:"events"`
}

// hostsResponse is the answer of GET /api/v1/hosts.
type hostsResponse struct {
	Hosts []hostRow `json:"hosts"`
}

// getStatus answers GET /api/v1/status.
func (s *server) getStatus(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	c.JSON(http.StatusOK, s.statusNow(ctx))
}

// getEvents answers GET /api/v1/events?kind=&client=&since=&until=&q=&limit=.
// An empty parameter is the same as a missing one.
func (s *server) getEvents(c *gin.Context) {
	q, msg := parseEventQuery(c.Request.URL.RawQuery)
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	evs, err := s.events.Events(ctx, q)
	if err != nil {
		s.internalError(c, "query events", fmt.Errorf("Events(%+v): %w", q, err))
		return
	}
	// The contract holds whatever the store does: newest first, at most
	// limit, plain unmapped addresses, rcpt a list.
	slices.SortStableFunc(evs, func(a, b event.Event) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(b.ID, a.ID))
	})
	if len(evs) > q.Limit {
		evs = evs[:q.Limit]
	}
	out := make([]event.Event, len(evs))
	for i, e := range evs {
		e.Normalize()
		out[i] = e
	}
	c.JSON(http.StatusOK, eventsResponse{Events: out})
}

// parseEventQuery validates the query string of GET /api/v1/events. On
// failure msg is the one-line reason for the client.
func parseEventQuery(raw string) (q store.Query, msg string) {
	p, msg := queryParams(raw, "kind", "client", "since", "until", "q", "limit")
	if msg != "" {
		return q, msg
	}
	q.Limit = DefaultLimit
	if v := p["kind"]; v != "" {
		if !event.Kind(v).Valid() {
			names := make([]string, len(event.Kinds))
			for i, k := range event.Kinds {
				names[i] = string(k)
			}
			return q, fmt.Sprintf("unknown kind %q (want one of %s)", v, strings.Join(names, ", "))
		}
		q.Kind = event.Kind(v)
	}
	if v := p["client"]; v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return q, fmt.Sprintf("invalid client %q (want an IP address, e.g. 192.0.2.7 or 2001:db8::7)", v)
		}
		q.Client = a.Unmap()
	}
	for _, t := range []struct {
		key string
		dst *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		v := p[t.key]
		if v == "" {
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return q, fmt.Sprintf("invalid %s %q (want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z)", t.key, v)
		}
		*t.dst = tm.UTC()
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Since.After(q.Until) {
		return q, "since is after until"
	}
	if v := p["q"]; v != "" {
		if len(v) > maxTextQuery || !utf8.ValidString(v) {
			return q, fmt.Sprintf("invalid q (want UTF-8 text of at most %d bytes)", maxTextQuery)
		}
		q.Text = v
	}
	if v := p["limit"]; v != "" {
		n, msg := parseLimit(v)
		if msg != "" {
			return q, msg
		}
		q.Limit = n
	}
	return q, ""
}

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

// getHosts answers GET /api/v1/hosts?limit=.
func (s *server) getHosts(c *gin.Context) {
	limit, ok := limitOnly(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	rows, err := s.hostRows(ctx)
	if err != nil {
		s.internalError(c, "query hosts", err)
		return
	}
	// Most recently seen first, as the hosts page by default.
	slices.SortStableFunc(rows, func(a, b hostRow) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), a.Addr.Compare(b.Addr))
	})
	if len(rows) > limit {
		rows = rows[:limit]
	}
	c.JSON(http.StatusOK, hostsResponse{Hosts: rows})
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

// getConfig answers GET /api/v1/config with the running configuration.
func (s *server) getConfig(c *gin.Context) {
	cfg := s.config.Current()
	if cfg == nil {
		s.internalError(c, "current config", errors.New("no configuration loaded"))
		return
	}
	c.JSON(http.StatusOK, cfg)
}

// putConfig answers PUT /api/v1/config: the body (JSON or YAML, the same
// schema as the file) replaces the configuration. Validation errors are
// 400 naming the key; on success the answer is the new configuration.
//
// The Content-Type is not checked (curl --data-binary sends a form type):
// JSON is YAML, so config.Parse reads both. That is safe from cross-site
// requests once cookies are accepted, because browsers preflight every
// cross-origin PUT and the API sends no CORS headers.
func (s *server) putConfig(c *gin.Context) {
	tooLarge := fmt.Sprintf("config larger than %d bytes", MaxConfigBytes)
	if c.Request.ContentLength > MaxConfigBytes {
		abortError(c, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxConfigBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			abortError(c, http.StatusRequestEntityTooLarge, tooLarge)
			return
		}
		abortError(c, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
		return
	}
	cfg, err := config.Parse(body)
	if err != nil {
		abortError(c, http.StatusBadRequest, err.Error())
		return
	}
	actor, remote := c.GetString(actorKey), remoteAddr(c)
	// A client that hangs up must not cut an apply short: the manager
	// would roll back and nobody would learn of it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), applyTimeout)
	defer cancel()
	if err := s.config.Apply(ctx, cfg, actor, remote); err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			abortError(c, http.StatusBadRequest, err.Error())
			return
		}
		s.log.Error("apply config", "err", err, "actor", actor, "remote", remote)
		abortError(c, http.StatusInternalServerError,
			fmt.Sprintf("apply config: %v (the previous configuration stays in force)", err))
		return
	}
	s.log.Info("config applied", "actor", actor, "remote", remote, "mode", cfg.Mode)
	c.JSON(http.StatusOK, cfg)
}
