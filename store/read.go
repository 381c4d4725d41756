package store

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/relaygate/relaygate/event"
)

// Reading back is bounded like writing: a reader gets a page (at most
// maxLimit events), walks the events a chunk at a time (EachEvent), or
// gets aggregates computed by SQLite (Offenders, HostByAddr); nothing here
// loads every stored event into memory.

// eachChunk is how many events EachEvent holds at once. Between chunks no
// database connection or read transaction is held, so that a slow client
// of a download neither starves the writer of connections nor keeps the
// write-ahead log from being checkpointed.
const eachChunk = 64

// Cursor is a position in the newest-first order of events: the time and
// ID of the last event of a page. Query.Before = CursorOf(last) selects
// the events after it, whether or not that event still exists.
type Cursor struct {
	Time time.Time
	ID   int64
}

// CursorOf returns the position of e.
func CursorOf(e event.Event) Cursor { return Cursor{Time: e.Time, ID: e.ID} }

// IsZero reports whether c is no position (the start).
func (c Cursor) IsZero() bool { return c.ID == 0 }

// String is the cursor's text form, e.g. "1735732800000000000.42" (unix
// nanoseconds, a dot, the event ID), as the API's before= parameter.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	return strconv.FormatInt(nanos(c.Time), 10) + "." + strconv.FormatInt(c.ID, 10)
}

// ParseCursor parses the text form of a cursor (see Cursor.String).
func ParseCursor(s string) (Cursor, error) {
	t, id, ok := strings.Cut(s, ".")
	if !ok {
		return Cursor{}, fmt.Errorf("cursor %q: want NANOSECONDS.ID", s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("cursor %q: time: %w", s, err)
	}
	i, err := strconv.ParseInt(id, 10, 64)
	if err != nil || i < 1 {
		return Cursor{}, fmt.Errorf("cursor %q: want an event ID of at least 1", s)
	}
	return Cursor{Time: time.Unix(0, n).UTC(), ID: i}, nil
}

// eventsWhere is the WHERE clause (empty or starting with " WHERE") of q
// and its arguments.
func eventsWhere(q Query) (string, []any) {
	var where []string
	var args []any
	if q.Kind != "" {
		where = append(where, "kind = ?")
		args = append(args, string(q.Kind))
	}
	if q.Client.IsValid() {
		where = append(where, "client = ?")
		args = append(args, addrString(q.Client))
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, nanos(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, nanos(q.Until))
	}
	if q.Text != "" {
		cols := []string{"helo", "mail_from", "rcpt", "detail", "reply"}
		conds := make([]string, len(cols))
		pat := "%" + escapeLike(q.Text) + "%"
		for i, col := range cols {
			conds[i] = col + ` LIKE ? ESCAPE '\'`
			args = append(args, pat)
		}
		where = append(where, "("+strings.Join(conds, " OR ")+")")
	}
	if q.BeforeID > 0 {
		// A pruned anchor yields nothing, which is right: pruning removes
		// the oldest events, so nothing older than the anchor is left.
		where = append(where, "(time, id) < (SELECT time, id FROM events WHERE id = ?)")
		args = append(args, q.BeforeID)
	}
	if !q.Before.IsZero() {
		where = append(where, "(time, id) < (?, ?)")
		args = append(args, nanos(q.Before.Time), q.Before.ID)
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// Events returns the events matching q, newest first (by time, then by
// ID), at most q.Limit (default 100, at most 10000).
func (s *Store) Events(ctx context.Context, q Query) ([]event.Event, error) {
	out := []event.Event{}
	err := s.eventsPage(ctx, q, clampLimit(q.Limit), func(e event.Event) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachEvent calls fn with each event matching q, newest first, at most
// q.Limit (default 100, at most 10000), holding at most a small chunk of
// events in memory whatever the limit: it is for exports and streamed
// answers. more reports that further events match after the last one
// passed to fn (continue with Query.Before = CursorOf(it)). An error of fn
// stops the walk and is returned as it is.
func (s *Store) EachEvent(ctx context.Context, q Query, fn func(event.Event) error) (more bool, err error) {
	limit := clampLimit(q.Limit)
	chunk := make([]event.Event, 0, eachChunk+1)
	for n := 0; ; {
		want := min(eachChunk, limit-n)
		chunk = chunk[:0]
		// One more than wanted tells whether anything follows.
		if err := s.eventsPage(ctx, q, want+1, func(e event.Event) error {
			chunk = append(chunk, e)
			return nil
		}); err != nil {
			return false, err
		}
		// The rows are read and the connection is back in the pool
		// before fn writes to a client that may be slow.
		for _, e := range chunk[:min(len(chunk), want)] {
			if err := fn(e); err != nil {
				return false, err
			}
		}
		if len(chunk) <= want {
			return false, nil
		}
		n += want
		if n >= limit {
			return true, nil
		}
		q.Before = CursorOf(chunk[want-1])
		clear(chunk) // release the recipients of the chunk before the next
	}
}

// eventsPage runs the query of q with the given LIMIT and calls fn for
// each row, newest first.
func (s *Store) eventsPage(ctx context.Context, q Query, limit int, fn func(event.Event) error) error {
	where, args := eventsWhere(q)
	query := "SELECT " + eventColumns + " FROM events" + where + " ORDER BY time DESC, id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("query events: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query events: %w", err)
	}
	return nil
}

// Offender sums up one client's events of some kinds (the mode preview:
// who enforce mode would block).
type Offender struct {
	Addr     netip.Addr
	Attempts int64
	LastSeen time.Time
	// Senders are up to three envelope senders, Servers up to three
	// destination addresses, the most recently used first.
	Senders, Servers []string
}

// offenderValues bounds Offender.Senders and Offender.Servers.
const offenderValues = 3

// Offenders returns, per client address with events of one of kinds since
// the given time, how many there were, the last time and its most recent
// senders and servers; most attempts first, at most limit (default 100, at
// most 10000) clients. SQLite aggregates: the events are not loaded.
func (s *Store) Offenders(ctx context.Context, kinds []event.Kind, since time.Time, limit int) ([]Offender, error) {
	if len(kinds) == 0 {
		return []Offender{}, nil
	}
	cond := "kind IN (?" + strings.Repeat(", ?", len(kinds)-1) + ") AND time >= ? AND client != ''"
	args := make([]any, 0, len(kinds)+2)
	for _, k := range kinds {
		args = append(args, string(k))
	}
	args = append(args, nanos(since))

	rows, err := s.db.QueryContext(ctx, `SELECT client, COUNT(*), MAX(time) FROM events WHERE `+cond+`
		GROUP BY client ORDER BY COUNT(*) DESC, client LIMIT ?`, append(args, clampLimit(limit))...)
	if err != nil {
		return nil, fmt.Errorf("query offenders: %w", err)
	}
	out := []Offender{}
	index := map[string]int{}
	for rows.Next() {
		var o Offender
		var client string
		var last int64
		if err := rows.Scan(&client, &o.Attempts, &last); err != nil {
			rows.Close()
			return nil, fmt.Errorf("query offenders: %w", err)
		}
		if o.Addr, err = parseAddr(client); err != nil {
			rows.Close()
			return nil, fmt.Errorf("query offenders: client %q: %w", client, err)
		}
		o.LastSeen, o.Senders, o.Servers = fromNanos(last), []string{}, []string{}
		index[client] = len(out)
		out = append(out, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query offenders: %w", err)
	}

	for _, f := range []struct {
		col string
		dst func(o *Offender) *[]string
	}{
		{"mail_from", func(o *Offender) *[]string { return &o.Senders }},
		{"server", func(o *Offender) *[]string { return &o.Servers }},
	} {
		// The newest distinct values of each client, ranked in SQL so that
		// only offenderValues of them per client come back.
		rows, err := s.db.QueryContext(ctx, `SELECT client, v FROM (
				SELECT client, v, ROW_NUMBER() OVER (PARTITION BY client ORDER BY last DESC, v) AS n FROM (
					SELECT client, `+f.col+` AS v, MAX(time) AS last FROM events
					WHERE `+cond+` AND `+f.col+` != '' GROUP BY client, `+f.col+`))
			WHERE n <= ? ORDER BY client, n`, append(args, offenderValues)...)
		if err != nil {
			return nil, fmt.Errorf("query offenders' %s: %w", f.col, err)
		}
		for rows.Next() {
			var client, v string
			if err := rows.Scan(&client, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("query offenders' %s: %w", f.col, err)
			}
			if i, ok := index[client]; ok {
				p := f.dst(&out[i])
				*p = append(*p, v)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("query offenders' %s: %w", f.col, err)
		}
	}
	return out, nil
}
