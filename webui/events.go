package webui

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// eventsRoutes registers the event search and its CSV export.
func (s *server) eventsRoutes(ui, api *gin.RouterGroup) {
	ui.GET("/events", s.pageEvents)
	api.GET("/events", s.getEvents)
	api.GET("/events.csv", s.getEventsCSV)
}

// eventsResponse is the answer of GET /api/v1/events.
type eventsResponse struct {
	Events []event.Event `json:"events"`
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

// getEventsCSV answers GET /api/v1/events.csv with the same parameters as
// GET /api/v1/events: a spreadsheet of the selection, newest first.
func (s *server) getEventsCSV(c *gin.Context) {
	q, msg := parseEventQuery(c.Request.URL.RawQuery)
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	evs, err := s.events.Events(ctx, q)
	if err != nil {
		s.internalError(c, "query events", fmt.Errorf("Events(%+v): %w", q, err))
		return
	}
	evs = normalizeEvents(evs, q.Limit)
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="relaygate-events-`+s.now().UTC().Format("20060102-150405")+`.csv"`)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	// New columns go at the end: scripts read the first ones by position.
	w.Write([]string{"time", "kind", "client", "server", "server_port", "relay", "helo", "mail_from", "rcpt", "code", "detail", "bytes",
		"messages", "size", "reply", "tls", "encrypted"})
	for _, e := range evs {
		client, server := "", ""
		if e.Client.IsValid() {
			client = e.Client.String()
		}
		if e.Server.IsValid() {
			server = e.Server.String()
		}
		rcpt := make([]string, len(e.Rcpt))
		for i, r := range e.Rcpt {
			rcpt[i] = csvCell(r)
		}
		w.Write([]string{e.Time.Format(time.RFC3339), string(e.Kind), client, server, strconv.Itoa(int(e.ServerPort)),
			csvCell(e.Relay), csvCell(e.Helo), csvCell(e.MailFrom), strings.Join(rcpt, " "), strconv.Itoa(e.Code),
			csvCell(e.Detail), strconv.FormatInt(e.Bytes, 10),
			strconv.Itoa(e.Messages), strconv.FormatInt(e.Size, 10), csvCell(e.Reply), e.TLS, strconv.FormatBool(e.Encrypted)})
	}
	w.Flush()
}

// normalizeEvents sorts newest first, cuts to limit and normalizes.
func normalizeEvents(evs []event.Event, limit int) []event.Event {
	slices.SortStableFunc(evs, func(a, b event.Event) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(b.ID, a.ID))
	})
	if len(evs) > limit {
		evs = evs[:limit]
	}
	out := make([]event.Event, len(evs))
	for i, e := range evs {
		e.Normalize()
		out[i] = e
	}
	return out
}

// csvCell defuses spreadsheet formulas (OWASP "CSV injection"): envelope
// senders and HELO names come from untrusted clients.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// formTime accepts the browser's datetime-local value (taken as UTC) or
// RFC 3339, and returns RFC 3339 for parseEventQuery.
func formTime(v string) string {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return v
}

// pageEvents lists events with the API's filters; the CSV link exports
// the same selection.
func (s *server) pageEvents(c *gin.Context) {
	in := c.Request.URL.Query()
	q := url.Values{}
	for _, k := range []string{"kind", "client", "since", "until", "q", "limit"} {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			if k == "since" || k == "until" {
				v = formTime(v)
			}
			q.Set(k, v)
		}
	}
	p := s.newPage(c, "events.html", "events")
	eq, msg := parseEventQuery(q.Encode())
	status := http.StatusOK
	var evs []event.Event
	if msg != "" {
		p.Error, status = msg, http.StatusBadRequest
	} else {
		ctx, cancel := s.ctx(c)
		defer cancel()
		var err error
		if evs, err = s.events.Events(ctx, eq); err != nil {
			s.pageError(c, http.StatusInternalServerError, "events", err)
			return
		}
		evs = normalizeEvents(evs, eq.Limit)
	}
	kinds := make([]string, len(event.Kinds))
	for i, k := range event.Kinds {
		kinds[i] = string(k)
	}
	form := map[string]string{}
	for _, k := range []string{"kind", "client", "q", "limit", "since", "until"} {
		form[k] = in.Get(k)
	}
	p.Data = gin.H{"Events": evs, "Kinds": kinds, "Form": form, "CSV": "/api/v1/events.csv?" + q.Encode()}
	s.render(c, status, "events.html", p)
}
