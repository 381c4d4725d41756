package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/sourcekey"
)

// Bounds of what one LAN host can make the store hold.
const (
	// DefaultMaxBytesCap is the largest default byte quota: the default is
	// DefaultMaxBytesShare of the data file system, at most this.
	DefaultMaxBytesCap = 1 << 30
	// DefaultMaxBytesShare is the share of the data file system (percent)
	// the store takes by default: the rest holds pcap evidence, the
	// configuration and the write-ahead log.
	DefaultMaxBytesShare = 40
	// MinMaxBytes is the smallest byte quota the store keeps to.
	MinMaxBytes = 8 << 20
	// DefaultEventsPerSourcePerMinute is how many events one client source
	// (an IPv4 address, an IPv6 /64) may store per minute.
	DefaultEventsPerSourcePerMinute = 60
	// MaxHostsSeen bounds the passive host inventory's rows; the hosts
	// seen longest ago go first.
	MaxHostsSeen = 65536
	// MaxSeriesAddresses bounds the addresses (keys) of the per-address
	// series; the rows of the addresses seen longest ago are folded into
	// the empty key, so that totals stay and the per-address rows go.
	MaxSeriesAddresses = 65536
	// quotaLowWater is where the byte quota's eviction stops, in percent
	// of the quota, so that it does not run on every batch.
	quotaLowWater = 80
	// walSizeLimit bounds the write-ahead log file left after a checkpoint.
	walSizeLimit = 16 << 20
	// maxBudgetSources bounds the per-source budget's table; sources
	// beyond it in one minute share one budget.
	maxBudgetSources = 65536
)

// SeriesOverBudget counts events not stored because their source was over
// its per-minute budget (they are counted in the outcome series all the
// same), key: the source (sourcekey), e.g. "10.20.0.50/32".
const SeriesOverBudget = "events_over_budget"

// perAddressSeries are the series keyed by client address (or source),
// which rotating IPv6 addresses would grow without end.
var perAddressSeries = []string{
	AttemptsSeries(event.Blocked), AttemptsSeries(event.WouldBlock), AttemptsSeries(event.Refused),
	AttemptsSeries(event.Relayed), AttemptsSeries(event.Deferred), AttemptsSeries(event.UpstreamError),
	SeriesBlocked, SeriesInspectMessages, SeriesInspectFlows, SeriesOverBudget,
}

// AutoMaxBytes is the default byte quota for a store in dir:
// DefaultMaxBytesShare percent of its file system, at most
// DefaultMaxBytesCap, at least MinMaxBytes.
func AutoMaxBytes(dir string) int64 {
	size, err := fsSize(dir)
	if err != nil || size <= 0 {
		return DefaultMaxBytesCap
	}
	return min(max(size*DefaultMaxBytesShare/100, MinMaxBytes), DefaultMaxBytesCap)
}

// SetQuota changes the byte quota and the per-source event budget of a
// running store. maxBytes zero or negative means AutoMaxBytes of the data
// directory (below MinMaxBytes: MinMaxBytes); perMinute zero means
// DefaultEventsPerSourcePerMinute, negative switches the budget off.
func (s *Store) SetQuota(maxBytes int64, perMinute int) {
	if maxBytes <= 0 {
		maxBytes = AutoMaxBytes(s.dir)
	}
	maxBytes = max(maxBytes, MinMaxBytes)
	if perMinute == 0 {
		perMinute = DefaultEventsPerSourcePerMinute
	}
	s.maxBytes.Store(maxBytes)
	s.budget.set(perMinute)
}

// MaxBytes returns the byte quota in force.
func (s *Store) MaxBytes() int64 { return s.maxBytes.Load() }

// OverBudget returns how many events were not stored since Open because
// their source was over its per-minute budget.
func (s *Store) OverBudget() uint64 { return s.overBudget.Load() }

// sourceBudget counts the events each source stored in the current minute.
type sourceBudget struct {
	mu        sync.Mutex
	perMinute int // negative: off
	minute    int64
	used      map[netip.Prefix]int
}

func (b *sourceBudget) set(perMinute int) {
	b.mu.Lock()
	b.perMinute = perMinute
	b.mu.Unlock()
}

// allow counts one event of src at now and reports whether it is within
// the budget.
func (b *sourceBudget) allow(src netip.Addr, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.perMinute < 0 {
		return true
	}
	if m := now.Unix() / 60; m != b.minute || b.used == nil {
		b.minute, b.used = m, map[netip.Prefix]int{}
	}
	key := sourcekey.Key(src)
	if _, ok := b.used[key]; !ok && len(b.used) >= maxBudgetSources {
		key = netip.Prefix{} // the overflow: every further source shares one budget
	}
	if b.used[key] >= b.perMinute {
		return false
	}
	b.used[key]++
	return true
}

// budgeted reports whether e counts against its source's budget: events of
// non-relay sources. A relay's events are bounded by its limits.
func budgeted(e *event.Event) bool {
	return e.Client.IsValid() && e.Relay == "" && e.Kind != event.Alert
}

// holdBack reports whether e must be held back, and counts it if so. e is
// normalized and already tallied.
func (s *Store) holdBack(e *event.Event) bool {
	if !budgeted(e) || s.budget.allow(e.Client, s.now()) {
		return false
	}
	s.overBudget.Add(1)
	s.AddSeries(SeriesOverBudget, sourcekey.Key(e.Client).String(), e.Time, 1)
	return true
}

// SQLite's table b-tree layout, for the estimate of a row's size in the file
// (https://www.sqlite.org/fileformat2.html#ovflpgs): a payload larger than
// the page's maximum local size spills into overflow pages of usable-4
// octets each, and every overflow page is a whole page in the file.
func rowBytes(payload, pageSize int64) int64 {
	u := pageSize
	maxLocal := u - 35
	if payload <= maxLocal {
		return payload
	}
	minLocal := (u-12)*32/255 - 23
	local := minLocal + (payload-minLocal)%(u-4)
	if local > maxLocal {
		local = minLocal
	}
	pages := (payload - local + u - 5) / (u - 4)
	return local + pages*u
}

// storedBytes is the estimate of what e costs in the file, kept in its
// stored_bytes column.
func (s *Store) storedBytes(e *event.Event) int64 {
	return rowBytes(int64(e.StoredBytes()), s.pageSize)
}

// dbBytes is the size of the database's pages in use (not on the free list).
func (s *Store) dbBytes(ctx context.Context) (int64, error) {
	var pages, free int64
	if err := s.db.QueryRowContext(ctx, `SELECT page_count, freelist_count FROM pragma_page_count(), pragma_freelist_count()`).Scan(&pages, &free); err != nil {
		return 0, fmt.Errorf("page count: %w", err)
	}
	return (pages - free) * s.pageSize, nil
}

// eventBytes is the sum of the events' estimated sizes.
func (s *Store) eventBytes(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(stored_bytes), 0) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("event bytes: %w", err)
	}
	return n, nil
}

// pruneBytes enforces the byte quota: when the events' estimate or the
// pages in use exceed it, events are evicted down to quotaLowWater percent
// of it. The biggest producers lose events first, down to a common level;
// of each host its oldest go first, and its first and latest event stay.
// Only when that is not enough do first and latest events go, oldest
// first. It returns how many events it deleted.
func (s *Store) pruneBytes(ctx context.Context) (int64, error) {
	quota := s.maxBytes.Load()
	total, err := s.eventBytes(ctx)
	if err != nil {
		return 0, err
	}
	s.evBytes.Store(total)
	used, err := s.dbBytes(ctx)
	if err != nil {
		return 0, err
	}
	if total <= quota && used <= quota {
		return 0, nil
	}
	target := quota * quotaLowWater / 100
	excess := max(total-target, used-target)
	deleted, freed, err := s.evictFair(ctx, excess)
	if err != nil {
		return deleted, err
	}
	if freed < excess {
		n, err := s.evictOldest(ctx, excess-freed)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	if total, err = s.eventBytes(ctx); err == nil {
		s.evBytes.Store(total)
	}
	return deleted, nil
}

// hostBytes is one client's evictable bytes: its events but the first and
// the latest.
type hostBytes struct {
	client string
	bytes  int64
}

// evictableQuery lists the clients by the bytes of their events but the
// first and latest, largest first.
const evictableQuery = `SELECT client, SUM(stored_bytes) AS b FROM (
		SELECT client, stored_bytes,
			ROW_NUMBER() OVER (PARTITION BY client ORDER BY time, id) AS first_rank,
			ROW_NUMBER() OVER (PARTITION BY client ORDER BY time DESC, id DESC) AS last_rank
		FROM events)
	WHERE first_rank > 1 AND last_rank > 1 GROUP BY client ORDER BY b DESC, client`

// evictFair frees about excess bytes by lowering the largest hosts'
// evictable bytes to one common level (water filling): with hosts sorted
// by bytes b0 >= b1 >= ..., the level L is where sum(max(0, bi-L)) =
// excess. Only the hosts above the level are read into memory.
func (s *Store) evictFair(ctx context.Context, excess int64) (deleted, freed int64, err error) {
	rows, err := s.db.QueryContext(ctx, evictableQuery)
	if err != nil {
		return 0, 0, fmt.Errorf("evict: list hosts: %w", err)
	}
	var top []hostBytes
	var sum, level int64
	found := false
	for rows.Next() {
		var h hostBytes
		if err := rows.Scan(&h.client, &h.bytes); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("evict: list hosts: %w", err)
		}
		// Lowering the hosts so far to this host's bytes frees enough:
		// the level lies between this host and the previous one.
		if len(top) > 0 && sum-int64(len(top))*h.bytes >= excess {
			found = true
			break
		}
		top = append(top, h)
		sum += h.bytes
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("evict: list hosts: %w", err)
	}
	if len(top) == 0 {
		return 0, 0, nil
	}
	if found || sum > excess {
		level = (sum - excess) / int64(len(top))
	}
	for _, h := range top {
		if h.bytes <= level {
			continue
		}
		n, f, err := s.evictHost(ctx, h.client, h.bytes-level)
		deleted += n
		freed += f
		if err != nil {
			return deleted, freed, err
		}
	}
	return deleted, freed, nil
}

// evictHost deletes the oldest events of client, but its first and latest,
// until at least need bytes are freed.
func (s *Store) evictHost(ctx context.Context, client string, need int64) (deleted, freed int64, err error) {
	var firstID, lastID int64
	if err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT id FROM events WHERE client = ?1 ORDER BY time, id LIMIT 1),
		(SELECT id FROM events WHERE client = ?1 ORDER BY time DESC, id DESC LIMIT 1)`, client).Scan(&firstID, &lastID); err != nil {
		return 0, 0, fmt.Errorf("evict host %q: %w", client, err)
	}
	// The event at which the running sum reaches need, and everything
	// older, goes.
	var t, id, cum int64
	err = s.db.QueryRowContext(ctx, `SELECT time, id, cum FROM (
			SELECT time, id, SUM(stored_bytes) OVER (ORDER BY time, id) AS cum
			FROM events WHERE client = ?1 AND id NOT IN (?2, ?3))
		WHERE cum >= ?4 ORDER BY time, id LIMIT 1`, client, firstID, lastID, need).Scan(&t, &id, &cum)
	if errors.Is(err, sql.ErrNoRows) {
		// Not enough: all of it but the first and latest.
		err = s.db.QueryRowContext(ctx, `SELECT time, id, cum FROM (
				SELECT time, id, SUM(stored_bytes) OVER (ORDER BY time, id) AS cum
				FROM events WHERE client = ?1 AND id NOT IN (?2, ?3))
			ORDER BY time DESC, id DESC LIMIT 1`, client, firstID, lastID).Scan(&t, &id, &cum)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, nil
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("evict host %q: %w", client, err)
	}
	n, err := s.deleteChunks(ctx, `DELETE FROM events WHERE id IN
		(SELECT id FROM events WHERE client = ?1 AND id NOT IN (?2, ?3)
			AND time <= ?4 AND (time < ?4 OR id <= ?5) LIMIT ?6)`, client, firstID, lastID, t, id)
	if err != nil {
		return n, 0, fmt.Errorf("evict host %q: %w", client, err)
	}
	return n, cum, nil
}

// evictOldest deletes the oldest events, whoever sent them, until at least
// need bytes are freed: the last resort when every host is down to its
// first and latest event.
func (s *Store) evictOldest(ctx context.Context, need int64) (int64, error) {
	var t, id int64
	err := s.db.QueryRowContext(ctx, `SELECT time, id FROM (
			SELECT time, id, SUM(stored_bytes) OVER (ORDER BY time, id) AS cum FROM events)
		WHERE cum >= ? ORDER BY time, id LIMIT 1`, need).Scan(&t, &id)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.db.QueryRowContext(ctx, `SELECT time, id FROM events ORDER BY time DESC, id DESC LIMIT 1`).Scan(&t, &id)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("evict oldest: %w", err)
	}
	n, err := s.deleteChunks(ctx, `DELETE FROM events WHERE id IN
		(SELECT id FROM events WHERE time <= ?1 AND (time < ?1 OR id <= ?2) LIMIT ?3)`, t, id)
	if err != nil {
		return n, fmt.Errorf("evict oldest: %w", err)
	}
	return n, nil
}

// pruneInventory ages the passive host inventory and the per-address
// series with the retention, and bounds them: at most MaxHostsSeen hosts
// and MaxSeriesAddresses addresses, those seen longest ago going first.
func (s *Store) pruneInventory(ctx context.Context, cutoff time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM hosts_seen WHERE last_seen < ?`, nanos(cutoff)); err != nil {
		return fmt.Errorf("prune hosts_seen by age: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM hosts_seen WHERE addr IN
		(SELECT addr FROM hosts_seen ORDER BY last_seen DESC, addr LIMIT -1 OFFSET ?)`, s.maxHostsSeen); err != nil {
		return fmt.Errorf("prune hosts_seen by count: %w", err)
	}
	in := "?" + strings.Repeat(", ?", len(perAddressSeries)-1)
	args := make([]any, 0, len(perAddressSeries)+1)
	for _, m := range perAddressSeries {
		args = append(args, m)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT key FROM series WHERE metric IN (`+in+`) AND key != ''
		GROUP BY key ORDER BY MAX(minute) DESC, key LIMIT -1 OFFSET ?`, append(args, s.maxSeriesAddrs)...)
	if err != nil {
		return fmt.Errorf("prune series addresses: %w", err)
	}
	var old []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return fmt.Errorf("prune series addresses: %w", err)
		}
		old = append(old, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prune series addresses: %w", err)
	}
	for len(old) > 0 {
		n := min(len(old), 500)
		if err := s.foldSeriesKeys(ctx, in, args, old[:n]); err != nil {
			return err
		}
		old = old[n:]
	}
	return nil
}

// foldSeriesKeys adds the per-address series rows of keys to the empty key
// (the totals, which the hosts lists do not show) and deletes them.
func (s *Store) foldSeriesKeys(ctx context.Context, in string, metrics []any, keys []string) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("fold series: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	kin := "?" + strings.Repeat(", ?", len(keys)-1)
	args := append([]any{}, metrics...)
	for _, k := range keys {
		args = append(args, k)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO series (metric, key, minute, value)
		SELECT metric, '', minute, SUM(value) FROM series WHERE metric IN (`+in+`) AND key IN (`+kin+`)
		GROUP BY metric, minute
		ON CONFLICT (metric, key, minute) DO UPDATE SET value = value + excluded.value`, args...); err != nil {
		return fmt.Errorf("fold series: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM series WHERE metric IN (`+in+`) AND key IN (`+kin+`)`, args...); err != nil {
		return fmt.Errorf("fold series: delete: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("fold series: commit: %w", err)
	}
	return nil
}

// reclaim gives freed pages back to the file system (incremental
// auto-vacuum) and truncates the write-ahead log, so that the files
// shrink after an eviction, not only stop growing. Failures are logged:
// freed pages are reused by later inserts in any case.
func (s *Store) reclaim(ctx context.Context) {
	if _, err := s.db.ExecContext(ctx, `PRAGMA incremental_vacuum`); err != nil {
		s.log.Warn("incremental vacuum failed", "err", err)
	}
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		s.log.Warn("checkpoint failed", "err", err)
	}
}
