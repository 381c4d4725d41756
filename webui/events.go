package webui

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
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

// getEvents answers GET /api/v1/events?kind=&client=&since=&until=&q=&limit=&before=
// with {"events": [...], "next": "..."}. An empty parameter is the same as
// a missing one. The events are written as the store yields them, a chunk
// at a time, so that a page of large events is never held in memory; next
// (the same query with before= the last event's cursor) is there when
// more events match.
func (s *server) getEvents(c *gin.Context) {
	q, msg := parseEventQuery(c.Request.URL.RawQuery)
	if msg != "" {
		abortError(c, http.StatusBadRequest, msg)
		return
	}
	ctx, progress, cancel := streamCtx(c.Request.Context(), s.storeTimeout)
	defer cancel()
	bw := bufio.NewWriterSize(c.Writer, streamBuffer)
	n := 0
	var last event.Event
	more, err := s.events.EachEvent(ctx, q, func(e event.Event) error {
		progress()
		if n == 0 {
			c.Header("Content-Type", "application/json; charset=utf-8")
			c.Status(http.StatusOK)
			bw.WriteString(`{"events":[`)
		} else {
			bw.WriteByte(',')
		}
		n++
		// The contract holds whatever the store does: plain unmapped
		// addresses, rcpt a list.
		e.Normalize()
		last = e
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %d: %w", e.ID, err)
		}
		_, err = bw.Write(b)
		return err
	})
	if err != nil {
		s.streamError(c, bw, "query events", fmt.Errorf("EachEvent(%+v): %w", q, err))
		return
	}
	if n == 0 {
		c.Header("Content-Type", "application/json; charset=utf-8")
		c.Status(http.StatusOK)
		bw.WriteString(`{"events":[`)
	}
	bw.WriteString("]")
	if more {
		next, _ := json.Marshal(nextLink(c.Request.URL, store.CursorOf(last)))
		bw.WriteString(`,"next":`)
		bw.Write(next)
	}
	bw.WriteString("}\n")
	if err := bw.Flush(); err != nil {
		s.log.Debug("write events", "err", err)
	}
}

// streamCtx bounds a streamed read by its progress rather than its length:
// ctx ends when progress was not called for d (a stuck store, or a client
// that stopped reading), while a long download that keeps moving goes on
// (the server's write timeout bounds it as a whole).
func streamCtx(parent context.Context, d time.Duration) (ctx context.Context, progress func(), cancel context.CancelFunc) {
	ctx, cancelCtx := context.WithCancel(parent)
	t := time.AfterFunc(d, cancelCtx)
	return ctx, func() { t.Reset(d) }, func() {
		t.Stop()
		cancelCtx()
	}
}

// streamBuffer is the write buffer of streamed answers (events, CSV).
const streamBuffer = 32 << 10

// streamError handles a failure while an answer is streamed: before
// anything reached the client, a plain 500; after, the connection is cut
// (http.ErrAbortHandler), so that the client sees a broken transfer rather
// than an answer that looks complete.
func (s *server) streamError(c *gin.Context, bw *bufio.Writer, op string, err error) {
	if !c.Writer.Written() {
		bw.Reset(io.Discard)
		c.Writer.Header().Del("Content-Type")
		c.Writer.Header().Del("Content-Disposition")
		s.internalError(c, op, err)
		return
	}
	if errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil {
		s.log.Debug("request canceled", "op", op, "err", err)
	} else {
		s.log.Error(op, "err", err, "path", c.Request.URL.Path, "streamed", true)
	}
	panic(http.ErrAbortHandler)
}

// nextLink is u with before= set to cur: the next page of the same query.
func nextLink(u *url.URL, cur store.Cursor) string {
	q := u.Query()
	q.Set("before", cur.String())
	return u.Path + "?" + q.Encode()
}

// parseEventQuery validates the query string of GET /api/v1/events. On
// failure msg is the one-line reason for the client.
func parseEventQuery(raw string) (q store.Query, msg string) {
	p, msg := queryParams(raw, "kind", "client", "since", "until", "q", "limit", "before")
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
		// A larger limit is a page of MaxLimit: next leads on.
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) || n < 1 {
			return q, fmt.Sprintf("invalid limit %q (want a number of at least 1; above %d it is %d)", v, MaxLimit, MaxLimit)
		}
		q.Limit = int(min(n, MaxLimit))
	}
	if v := p["before"]; v != "" {
		cur, err := store.ParseCursor(v)
		if err != nil {
			return q, fmt.Sprintf("invalid before %q (want the cursor of a next link, e.g. 1735732800000000000.42)", v)
		}
		q.Before = cur
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
	ctx, progress, cancel := streamCtx(c.Request.Context(), s.storeTimeout)
	defer cancel()
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="relaygate-events-`+s.now().UTC().Format("20060102-150405")+`.csv"`)
	c.Status(http.StatusOK)
	bw := bufio.NewWriterSize(c.Writer, streamBuffer)
	w := csv.NewWriter(bw)
	// New columns go at the end: scripts read the first ones by position.
	w.Write([]string{"time", "kind", "client", "server", "server_port", "relay", "helo", "mail_from", "rcpt", "code", "detail", "bytes",
		"messages", "size", "reply", "tls", "encrypted"})
	n := 0
	_, err := s.events.EachEvent(ctx, q, func(e event.Event) error {
		progress()
		e.Normalize()
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
		// Out to the client every few rows: a download shows progress
		// and the rows do not pile up in buffers.
		if n++; n%csvFlushRows == 0 {
			w.Flush()
			if err := bw.Flush(); err != nil {
				return err
			}
			c.Writer.Flush()
		}
		return w.Error()
	})
	if err != nil {
		s.streamError(c, bw, "query events", fmt.Errorf("EachEvent(%+v): %w", q, err))
		return
	}
	w.Flush()
	if err := bw.Flush(); err != nil {
		s.log.Debug("write events csv", "err", err)
	}
}

// csvFlushRows is how often the CSV export flushes to the client.
const csvFlushRows = 64

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

// maxPageEvents bounds the events of one events page (the API pages up to
// MaxLimit, streamed; a page is rendered in memory).
const maxPageEvents = 500

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
	for _, k := range []string{"kind", "client", "since", "until", "q", "limit", "before"} {
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
	nextURL := ""
	if msg != "" {
		p.Error, status = msg, http.StatusBadRequest
	} else {
		ctx, cancel := s.ctx(c)
		defer cancel()
		// The page is rendered in memory: at most maxPageEvents of it,
		// the rest behind the next link.
		eq.Limit = min(eq.Limit, maxPageEvents)
		evs = []event.Event{}
		more, err := s.events.EachEvent(ctx, eq, func(e event.Event) error {
			e.Normalize()
			evs = append(evs, e)
			return nil
		})
		if err != nil {
			s.pageError(c, http.StatusInternalServerError, "events", err)
			return
		}
		if more {
			next := url.Values{}
			for k, v := range q {
				next[k] = v
			}
			next.Set("before", store.CursorOf(evs[len(evs)-1]).String())
			nextURL = "/events?" + next.Encode()
		}
	}
	kinds := make([]string, len(event.Kinds))
	for i, k := range event.Kinds {
		kinds[i] = string(k)
	}
	form := map[string]string{}
	for _, k := range []string{"kind", "client", "q", "limit", "since", "until"} {
		form[k] = in.Get(k)
	}
	p.Data = gin.H{"Events": evs, "Kinds": kinds, "Form": form, "CSV": "/api/v1/events.csv?" + q.Encode(), "Next": nextURL,
		"MaxLimit": maxPageEvents}
	s.render(c, status, "events.html", p)
}
