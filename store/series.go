package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Series metric names in use. A metric has keys (a relay's name, an envelope
// sender, a recipient domain); the empty key is the total.
const (
	SeriesRelayMessages   = "relay_messages"   // key: relay name
	SeriesSenderMessages  = "sender_messages"  // key: envelope sender
	SeriesDomainMessages  = "domain_messages"  // key: recipient domain
	SeriesBlocked         = "blocked"          // key: client address
	SeriesDeferred        = "deferred"         // key: relay name
	SeriesInspectMessages = "inspect_messages" // key: client address (passive inspection)
	SeriesInspectFlows    = "inspect_flows"    // key: client address (passive inspection)
	SeriesShed            = "shed"             // key: ruleset counter name (flood_dropped, reset, tagged_dropped, stacked_dropped, frag_dropped); packets
)

// Point is one minute of one series.
type Point struct {
	Metric string    `json:"metric"`
	Key    string    `json:"key"`
	Minute time.Time `json:"minute"`
	Value  int64     `json:"value"`
}

type seriesKey struct {
	metric, key string
	minute      int64
}

// seriesBuf aggregates additions in memory between writer ticks.
type seriesBuf struct {
	mu sync.Mutex
	m  map[seriesKey]int64
}

func (b *seriesBuf) add(k seriesKey, delta int64) {
	b.mu.Lock()
	if b.m == nil {
		b.m = map[seriesKey]int64{}
	}
	b.m[k] += delta
	b.mu.Unlock()
}

func (b *seriesBuf) take() map[seriesKey]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.m
	b.m = nil
	return m
}

// AddSeries adds delta to the minute of t in the series metric/key. It never
// blocks on the database: additions are summed in memory and written with the
// next batch of events (and by Flush).
func (s *Store) AddSeries(metric, key string, t time.Time, delta int64) {
	if t.IsZero() {
		t = s.now()
	}
	s.series.add(seriesKey{metric, key, t.Unix() / 60 * 60}, delta)
}

// writeSeries upserts what AddSeries collected.
func (s *Store) writeSeries() error {
	m := s.series.take()
	if len(m) == 0 {
		return nil
	}
	tx, err := s.db.Begin()
	if err != nil {
		return fmt.Errorf("write series: begin: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare(`INSERT INTO series (metric, key, minute, value) VALUES (?, ?, ?, ?)
		ON CONFLICT (metric, key, minute) DO UPDATE SET value = value + excluded.value`)
	if err != nil {
		return fmt.Errorf("write series: prepare: %w", err)
	}
	defer stmt.Close()
	for k, v := range m {
		if _, err := stmt.Exec(k.metric, k.key, k.minute, v); err != nil {
			return fmt.Errorf("write series %s/%s: %w", k.metric, k.key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write series: commit: %w", err)
	}
	return nil
}

// SeriesQuery selects points. An empty Key selects every key of the metric.
type SeriesQuery struct {
	Metric       string
	Key          string
	Since, Until time.Time // Since inclusive, Until exclusive; zero: unbounded
}

// MaxSeriesPoints caps the points of one Series answer.
const MaxSeriesPoints = 100000

// Series returns the points of a metric, oldest first. When more than
// MaxSeriesPoints match, it returns the newest (see SeriesNewest): a wide
// range loses its oldest minutes, never its newest.
func (s *Store) Series(ctx context.Context, q SeriesQuery) ([]Point, error) {
	pts, _, err := s.SeriesNewest(ctx, q, MaxSeriesPoints)
	return pts, err
}

// SeriesNewest returns the newest points of a metric matching q, at most
// limit (1 to MaxSeriesPoints; anything else means MaxSeriesPoints),
// oldest first, ordered by minute then key. truncated reports that older
// points matched and were left out; the answer then holds only whole
// minutes (every key of each minute in it), unless a single minute has
// more than limit points.
func (s *Store) SeriesNewest(ctx context.Context, q SeriesQuery, limit int) (pts []Point, truncated bool, err error) {
	if limit < 1 || limit > MaxSeriesPoints {
		limit = MaxSeriesPoints
	}
	query := `SELECT metric, key, minute, value FROM series WHERE metric = ?`
	args := []any{q.Metric}
	if q.Key != "" {
		query += ` AND key = ?`
		args = append(args, q.Key)
	}
	query, args = seriesRange(query, args, q.Since, q.Until)
	// One more than asked, to know whether anything older was left out.
	query += ` ORDER BY minute DESC, key DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("query series %s: %w", q.Metric, err)
	}
	defer rows.Close()
	out := []Point{}
	for rows.Next() {
		var p Point
		var minute int64
		if err := rows.Scan(&p.Metric, &p.Key, &minute, &p.Value); err != nil {
			return nil, false, fmt.Errorf("query series %s: %w", q.Metric, err)
		}
		p.Minute = time.Unix(minute, 0).UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("query series %s: %w", q.Metric, err)
	}
	if len(out) > limit {
		truncated = true
		// When the first point left out shares its minute with the oldest
		// kept, that minute misses keys: drop it, so that every minute in
		// the answer is whole.
		cut := out[limit].Minute
		out = out[:limit]
		n := len(out)
		for n > 0 && out[n-1].Minute.Equal(cut) {
			n--
		}
		if n > 0 {
			out = out[:n]
		}
	}
	slices.Reverse(out)
	return out, truncated, nil
}

// seriesRange appends the Since (inclusive) and Until (exclusive) bounds,
// when not zero, to a series query.
func seriesRange(query string, args []any, since, until time.Time) (string, []any) {
	if !since.IsZero() {
		query += ` AND minute >= ?`
		args = append(args, since.Unix()/60*60)
	}
	if !until.IsZero() {
		query += ` AND minute < ?`
		args = append(args, until.Unix())
	}
	return query, args
}

// SeriesTotals returns, per minute, the sum of metric over all its keys
// with since <= minute < until (zero: unbounded), oldest first, as points
// with the empty Key. The sum is taken in the database, so that it is
// exact however many keys there are.
func (s *Store) SeriesTotals(ctx context.Context, metric string, since, until time.Time) ([]Point, error) {
	query, args := seriesRange(`SELECT minute, SUM(value) FROM series WHERE metric = ?`, []any{metric}, since, until)
	query += ` GROUP BY minute ORDER BY minute`
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("series totals %s: %w", metric, err)
	}
	defer rows.Close()
	out := []Point{}
	for rows.Next() {
		p := Point{Metric: metric}
		var minute int64
		if err := rows.Scan(&minute, &p.Value); err != nil {
			return nil, fmt.Errorf("series totals %s: %w", metric, err)
		}
		p.Minute = time.Unix(minute, 0).UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("series totals %s: %w", metric, err)
	}
	return out, nil
}

// KeyTotal is a key's sum over a time range.
type KeyTotal struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

// TopKeys returns the n keys of a metric with the largest sums since t;
// the empty key (a total, or addresses folded by the pruner) is not one.
func (s *Store) TopKeys(ctx context.Context, metric string, since time.Time, n int) ([]KeyTotal, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, SUM(value) AS v FROM series
		WHERE metric = ? AND key != '' AND minute >= ? GROUP BY key ORDER BY v DESC, key LIMIT ?`,
		metric, since.Unix()/60*60, clampLimit(n))
	if err != nil {
		return nil, fmt.Errorf("top keys %s: %w", metric, err)
	}
	defer rows.Close()
	out := []KeyTotal{}
	for rows.Next() {
		var k KeyTotal
		if err := rows.Scan(&k.Key, &k.Value); err != nil {
			return nil, fmt.Errorf("top keys %s: %w", metric, err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
