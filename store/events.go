package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/relaygate/relaygate/event"
)

// Record queues e for writing. It implements event.Recorder: it normalizes
// e, clips it to the bounds of one event (event.Event.Clip: no writer
// stores more), stamps it with the store's clock when its Time is zero, and
// never blocks: when the write queue is full, or the store is closed, the
// event is dropped and counted (see Dropped). An event of a source over
// its per-minute budget is counted in the series but not stored (see
// OverBudget).
func (s *Store) Record(e event.Event) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.ID = 0
	e.Clip()
	// The caller may reuse its slice after Record returns.
	e.Rcpt = slices.Clone(e.Rcpt)
	e.Normalize()
	// Counted even when the queue drops it: the series count attempts,
	// the events are their evidence.
	s.tally(&e)
	if s.holdBack(&e) {
		return
	}
	s.observeEvent(e)

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.dropped.Add(1)
		return
	}
	s.queueMu.Lock()
	if len(s.queue) >= s.queueCap {
		s.queueMu.Unlock()
		s.dropped.Add(1)
		return
	}
	s.queue = append(s.queue, e)
	full := len(s.queue) == batchSize
	s.queueMu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// queued returns how many events wait for the writer.
func (s *Store) queued() int {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	return len(s.queue)
}

// takeQueue returns every queued event and leaves spare, emptied, as the
// new queue: the writer and Record swap two slices instead of allocating.
func (s *Store) takeQueue(spare []event.Event) []event.Event {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	q := s.queue
	s.queue = spare[:0]
	return q
}

// Recorded returns how many events were committed to the database by this
// Store since Open.
func (s *Store) Recorded() uint64 { return s.recorded.Load() }

// Dropped returns how many events were lost since Open: the write queue was
// full, the store was closed, or their batch failed to commit.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }

// Flush waits until every event recorded before the call is committed, and
// returns the error of any failed commit since the previous Flush.
func (s *Store) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.flushReq <- reply:
	case <-s.writerDone:
		return fmt.Errorf("flush: %w", ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("flush: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flush: %w", ctx.Err())
	}
}

// writer owns all event inserts: it commits the queued events in
// transactions of up to batchSize events, every batchInterval or as soon
// as a batch is full.
func (s *Store) writer() {
	ticker := time.NewTicker(batchInterval)
	defer ticker.Stop()
	var spare []event.Event
	var failed []error // commit errors not yet reported to a Flush
	var loggedDropped uint64
	commit := func() {
		if err := s.writeSeries(); err != nil {
			s.log.Error("writing series failed", "err", err)
			failed = append(failed, err)
		}
		q := s.takeQueue(spare)
		for batch := q; len(batch) > 0; {
			n := min(len(batch), batchSize)
			if added, err := s.insert(batch[:n]); err != nil {
				s.dropped.Add(uint64(n))
				s.log.Error("writing events failed; events dropped", "events", n, "err", err)
				failed = append(failed, err)
			} else {
				s.recorded.Add(uint64(n))
				if s.evBytes.Add(added) > s.maxBytes.Load() {
					s.kickPrune()
				}
			}
			batch = batch[n:]
		}
		clear(q) // release Rcpt slices
		spare = q[:0]
	}
	for {
		select {
		case <-s.kick:
			commit()
		case <-ticker.C:
			commit()
			if d := s.dropped.Load(); d != loggedDropped {
				s.log.Warn("events dropped", "dropped_total", d, "new", d-loggedDropped)
				loggedDropped = d
			}
		case reply := <-s.flushReq:
			// Everything recorded before Flush was called is queued now;
			// the commit takes exactly that (and what came since).
			commit()
			reply <- errors.Join(failed...)
			failed = nil
		case <-s.stop:
			// Close set closed first: nothing is queued after this commit.
			commit()
			return
		}
	}
}

const insertEvent = `INSERT INTO events
	(time, kind, client, server, server_port, relay, helo, mail_from, rcpt, code, detail, bytes,
	 messages, size, reply, tls, encrypted, rcpt_dropped, stored_bytes)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insert writes batch in one transaction and returns the bytes it added
// (the events' stored_bytes).
func (s *Store) insert(batch []event.Event) (added int64, err error) {
	// Not cancelled by Close: the final batch must still be written.
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("insert events: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	stmt, err := tx.PrepareContext(ctx, insertEvent)
	if err != nil {
		return 0, fmt.Errorf("insert events: prepare: %w", err)
	}
	defer stmt.Close()
	for _, e := range batch {
		size := s.storedBytes(&e)
		added += size
		rcpt, err := marshalRcpt(e.Rcpt)
		if err != nil {
			return 0, fmt.Errorf("insert events: %w", err)
		}
		if _, err := stmt.ExecContext(ctx, nanos(e.Time), string(e.Kind), addrString(e.Client), addrString(e.Server),
			int64(e.ServerPort), e.Relay, e.Helo, e.MailFrom, rcpt, int64(e.Code), e.Detail, e.Bytes,
			int64(e.Messages), e.Size, e.Reply, e.TLS, e.Encrypted, int64(e.RcptDropped), size); err != nil {
			return 0, fmt.Errorf("insert events: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("insert events: commit: %w", err)
	}
	return added, nil
}

// marshalRcpt encodes recipients as a JSON array without HTML escaping, so
// that a substring search for "<" or "&" finds them.
func marshalRcpt(rcpt []string) (string, error) {
	if rcpt == nil {
		rcpt = []string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rcpt); err != nil {
		return "", fmt.Errorf("encode rcpt: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().WithZone("").String()
}

func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(s)
}

// Query selects events. Zero fields do not filter.
type Query struct {
	// Kind selects one kind of event.
	Kind event.Kind
	// Client selects events from one client address (IPv4-mapped addresses
	// match their IPv4 form).
	Client netip.Addr
	// Since (inclusive) and Until (exclusive) bound the event time.
	Since, Until time.Time
	// Text matches a substring, case-insensitive for ASCII, of helo,
	// mail_from, any recipient, detail or reply.
	Text string
	// Limit caps the result: default 100, at most 10000.
	Limit int
	// BeforeID pages: only events that come after the event with this ID in
	// newest-first order. Pass the ID of the last event of the previous page.
	BeforeID int64
	// Before pages like BeforeID, by the position itself (see Cursor), so
	// that paging goes on when the anchor event was deleted meanwhile.
	Before Cursor
}

const eventColumns = `id, time, kind, client, server, server_port, relay, helo, mail_from, rcpt, code, detail, bytes, messages, size, reply, tls, encrypted, rcpt_dropped`

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func scanEvent(rows *sql.Rows) (event.Event, error) {
	var (
		e                    event.Event
		t, port, code        int64
		kind, client, server string
		rcpt                 string
	)
	if err := rows.Scan(&e.ID, &t, &kind, &client, &server, &port, &e.Relay, &e.Helo, &e.MailFrom, &rcpt, &code, &e.Detail, &e.Bytes,
		&e.Messages, &e.Size, &e.Reply, &e.TLS, &e.Encrypted, &e.RcptDropped); err != nil {
		return e, err
	}
	e.Time = fromNanos(t)
	e.Kind = event.Kind(kind)
	e.ServerPort = uint16(port)
	e.Code = int(code)
	var err error
	if e.Client, err = parseAddr(client); err != nil {
		return e, fmt.Errorf("event %d: client: %w", e.ID, err)
	}
	if e.Server, err = parseAddr(server); err != nil {
		return e, fmt.Errorf("event %d: server: %w", e.ID, err)
	}
	if rcpt != "" {
		if err := json.Unmarshal([]byte(rcpt), &e.Rcpt); err != nil {
			return e, fmt.Errorf("event %d: rcpt: %w", e.ID, err)
		}
	}
	if e.Rcpt == nil {
		e.Rcpt = []string{}
	}
	return e, nil
}

// Host aggregates the events of one client address.
type Host struct {
	Addr netip.Addr `json:"addr"`
	// Attempts counts everything the address tried: sessions refused,
	// blocked or seen (would_block), messages and sessions relayed,
	// deferrals and upstream errors.
	Attempts int64 `json:"attempts"`
	// Blocked counts blocked, would_block and refused attempts (the
	// dashboard's "Blocked" and its top offending hosts count the same).
	Blocked    int64     `json:"blocked"`
	Relayed    int64     `json:"relayed"`
	Deferred   int64     `json:"deferred"`
	Refused    int64     `json:"refused"`
	WouldBlock int64     `json:"would_block"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
}

// hostsQuery aggregates the outcome series per client (the counts) and the
// stored events (the exact first and last time; the series' minutes where
// an address has no stored event left).
const hostsQuery = `WITH s AS (
		SELECT key AS client, SUM(value) AS attempts,
			SUM(CASE WHEN metric IN (?, ?, ?) THEN value ELSE 0 END) AS blocked,
			SUM(CASE WHEN metric = ? THEN value ELSE 0 END) AS relayed,
			SUM(CASE WHEN metric = ? THEN value ELSE 0 END) AS deferred,
			SUM(CASE WHEN metric = ? THEN value ELSE 0 END) AS refused,
			SUM(CASE WHEN metric = ? THEN value ELSE 0 END) AS would_block,
			MIN(minute) * 1000000000 AS first_min, MAX(minute) * 1000000000 AS last_min
		FROM series WHERE metric IN (?, ?, ?, ?, ?, ?) AND key != '' %s GROUP BY key
	), e AS (
		SELECT client, MIN(time) AS first, MAX(time) AS last FROM events
		WHERE client != '' AND kind != ? %s GROUP BY client
	)
	SELECT s.client, attempts, blocked, relayed, deferred, refused, would_block,
		CASE WHEN e.first / 60000000000 * 60000000000 <= first_min THEN e.first ELSE first_min END AS first_seen,
		CASE WHEN e.last >= last_min THEN e.last ELSE last_min END AS last_seen
	FROM s LEFT JOIN e ON e.client = s.client
	ORDER BY last_seen DESC, s.client LIMIT ?`

func hostsArgs(client string, limit int) []any {
	args := []any{
		AttemptsSeries(event.Blocked), AttemptsSeries(event.Refused), AttemptsSeries(event.WouldBlock),
		AttemptsSeries(event.Relayed), AttemptsSeries(event.Deferred), AttemptsSeries(event.Refused), AttemptsSeries(event.WouldBlock),
		AttemptsSeries(event.Blocked), AttemptsSeries(event.Refused), AttemptsSeries(event.WouldBlock),
		AttemptsSeries(event.Relayed), AttemptsSeries(event.Deferred), AttemptsSeries(event.UpstreamError),
	}
	if client != "" {
		args = append(args, client)
	}
	args = append(args, string(event.Alert))
	if client != "" {
		args = append(args, client)
	}
	return append(args, limit)
}

// Hosts returns per client address what it attempted, from the outcome
// series (outcomes.go), most recently seen first. limit defaults to 100
// and is at most 10000.
func (s *Store) Hosts(ctx context.Context, limit int) ([]Host, error) {
	return s.hosts(ctx, "", clampLimit(limit))
}

// HostByAddr returns the counts of one address; it wraps ErrNotFound when
// the address attempted nothing within the retention.
func (s *Store) HostByAddr(ctx context.Context, addr netip.Addr) (Host, error) {
	hs, err := s.hosts(ctx, addrString(addr), 1)
	if err != nil {
		return Host{}, err
	}
	if len(hs) == 0 {
		return Host{}, fmt.Errorf("host %s: %w", addr, ErrNotFound)
	}
	return hs[0], nil
}

func (s *Store) hosts(ctx context.Context, client string, limit int) ([]Host, error) {
	where := ""
	if client != "" {
		where = "AND key = ?"
	}
	whereEv := ""
	if client != "" {
		whereEv = "AND client = ?"
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(hostsQuery, where, whereEv), hostsArgs(client, limit)...)
	if err != nil {
		return nil, fmt.Errorf("query hosts: %w", err)
	}
	defer rows.Close()
	out := []Host{}
	for rows.Next() {
		var h Host
		var addr string
		var first, last int64
		if err := rows.Scan(&addr, &h.Attempts, &h.Blocked, &h.Relayed, &h.Deferred, &h.Refused, &h.WouldBlock, &first, &last); err != nil {
			return nil, fmt.Errorf("query hosts: %w", err)
		}
		if h.Addr, err = parseAddr(addr); err != nil {
			return nil, fmt.Errorf("query hosts: client %q: %w", addr, err)
		}
		h.FirstSeen, h.LastSeen = fromNanos(first), fromNanos(last)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query hosts: %w", err)
	}
	return out, nil
}

// pruneChunk bounds each delete transaction, so that the write lock is
// never held long enough to stall the writer or another process.
const pruneChunk = 5000

// Prune deletes events older than the retention and the oldest events beyond
// the event cap, and returns how many it deleted. Open runs it in the
// background every PruneInterval.
func (s *Store) Prune(ctx context.Context) (int64, error) {
	retention, maxEvents := s.limits()
	var total int64
	cutoff := nanos(s.now().Add(-retention))
	n, err := s.deleteChunks(ctx, `DELETE FROM events WHERE id IN
		(SELECT id FROM events WHERE time < ? LIMIT ?)`, cutoff)
	total += n
	if err != nil {
		return total, fmt.Errorf("prune by age: %w", err)
	}

	// The newest event that is over the cap, and everything older, goes.
	var t, id int64
	err = s.db.QueryRowContext(ctx, `SELECT time, id FROM events
		ORDER BY time DESC, id DESC LIMIT 1 OFFSET ?`, maxEvents).Scan(&t, &id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return total, fmt.Errorf("prune by count: %w", err)
	default:
		n, err := s.deleteChunks(ctx, `DELETE FROM events WHERE id IN
			(SELECT id FROM events WHERE time <= ?1 AND (time < ?1 OR id <= ?2) LIMIT ?3)`, t, id)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune by count: %w", err)
		}
	}
	n, err = s.pruneBytes(ctx)
	total += n
	s.pruned.Add(uint64(total))
	if err != nil {
		return total, fmt.Errorf("prune by bytes: %w", err)
	}
	// Series follow the same age limit; they are not counted as events.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM series WHERE minute < ?`, s.now().Add(-retention).Unix()); err != nil {
		return total, fmt.Errorf("prune series: %w", err)
	}
	if err := s.pruneInventory(ctx, s.now().Add(-retention)); err != nil {
		return total, err
	}
	if err := s.pruneLocations(ctx, s.now().Add(-retention)); err != nil {
		return total, err
	}
	s.reclaim(ctx)
	return total, nil
}

// kickPrune asks the background pruner to run now: the byte quota is
// reached long before the next PruneInterval when a host floods.
func (s *Store) kickPrune() {
	select {
	case s.pruneNow <- struct{}{}:
	default:
	}
}

// deleteChunks runs query (whose last parameter is the chunk size) until it
// deletes nothing.
func (s *Store) deleteChunks(ctx context.Context, query string, args ...any) (int64, error) {
	args = append(args, pruneChunk)
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, query, args...)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

func (s *Store) pruner(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("pruning events failed", "err", err)
		case n > 0:
			s.log.Info("pruned events", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.pruneNow:
		}
	}
}
