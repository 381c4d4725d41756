// Package store is relaygate's event store: SQLite in the data directory,
// holding recorded events, API bearer tokens and the admin audit log.
//
// Events are written by one goroutine in batches, so that Record never blocks
// the SMTP data path; readers (the web UI, the API) query concurrently. The
// database runs in WAL mode with a busy timeout, so that a second process
// (appliance token create) can use it while the daemon has it open.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/relaygate/relaygate/event"
)

// Defaults for Options.
const (
	DefaultRetention     = 90 * 24 * time.Hour
	DefaultMaxEvents     = 1_000_000
	DefaultQueueSize     = 8192
	DefaultPruneInterval = time.Hour

	// FileName is the database file inside the data directory.
	FileName = "relaygate.db"
)

const (
	batchSize     = 256
	batchInterval = 200 * time.Millisecond
	// busyTimeout bounds how long a statement waits for another connection or
	// process holding the write lock (a prune chunk, a token create).
	busyTimeout = 10 * time.Second
	maxLimit    = 10000
	defLimit    = 100
)

// ErrClosed is returned by operations on a closed Store.
var ErrClosed = errors.New("store closed")

// ErrNotFound is returned when a token or other record does not exist.
var ErrNotFound = errors.New("not found")

// Options configures a Store. The zero value is usable: Open sets defaults.
type Options struct {
	// Retention deletes events older than this, e.g. 2160h (90 days).
	// Zero or negative means DefaultRetention.
	Retention time.Duration
	// MaxEvents keeps at most this many events, oldest deleted first,
	// e.g. 1000000. Zero or negative means DefaultMaxEvents.
	MaxEvents int
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for event times and retention, default time.Now.
	Now func() time.Time
	// QueueSize bounds the write queue; Record drops events when it is full.
	// Zero or negative means DefaultQueueSize.
	QueueSize int
	// PruneInterval is how often retention is applied in the background, the
	// first time right after Open. Zero means DefaultPruneInterval; negative
	// disables background pruning (Prune can still be called).
	PruneInterval time.Duration
	// MaxBytes is the byte quota of the events in the database file, e.g.
	// 1073741824 (1 GiB). Zero or negative means AutoMaxBytes of the data
	// directory; below MinMaxBytes means MinMaxBytes.
	MaxBytes int64
	// EventsPerSourcePerMinute is how many events one non-relay client
	// source (sourcekey: an IPv4 address, an IPv6 /64) may store per
	// minute, e.g. 60; the others are counted but not stored. Zero means
	// DefaultEventsPerSourcePerMinute; negative switches the budget off.
	EventsPerSourcePerMinute int
	// Rand is the source of the random bytes of API tokens; nil means
	// crypto/rand. It must be safe for concurrent use. Tests set a seeded
	// source to know their tokens.
	Rand io.Reader
}

// Store is the event store. Its methods are safe for concurrent use.
type Store struct {
	db       *sql.DB
	path     string
	dir      string
	pageSize int64
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader

	limitsMu  sync.Mutex
	retention time.Duration
	maxEvents int

	maxBytes       atomic.Int64
	evBytes        atomic.Int64 // estimate of the events' stored_bytes, kept by the writer and Prune
	budget         sourceBudget
	maxHostsSeen   int // MaxHostsSeen; tests lower it
	maxSeriesAddrs int // MaxSeriesAddresses; tests lower it
	maxLocations   int // MaxLocations; tests lower it
	pruneNow       chan struct{}

	// mu guards closed against Record racing with Close.
	mu     sync.RWMutex
	closed bool

	// The write queue: Record appends under queueMu, the writer takes
	// everything at once. Record wakes the writer only when a batch is
	// full (kick); otherwise the writer comes by every batchInterval, so
	// that recording an event costs no goroutine wake-up.
	queueMu    sync.Mutex
	queue      []event.Event
	queueCap   int
	kick       chan struct{}
	flushReq   chan chan error
	series     seriesBuf
	stop       chan struct{}
	writerDone chan struct{}
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error

	recorded   atomic.Uint64
	dropped    atomic.Uint64
	pruned     atomic.Uint64
	overBudget atomic.Uint64

	collectors []prometheus.Collector
	// observer sees every recorded event and audit entry (SetObserver).
	observer atomic.Pointer[Observer]
}

var _ event.Recorder = (*Store)(nil)

// Open opens (creating if needed) the store in dir/relaygate.db. dir is
// created with mode 0700 when missing. Schema migrations run inside one
// write transaction, so concurrent Opens from several processes are safe.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open store: empty data directory")
	}
	if strings.ContainsAny(dir, "?#") {
		// The driver splits its DSN at '?'.
		return nil, fmt.Errorf("open store: data directory %q must not contain '?' or '#'", dir)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open store: create data directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("open store: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("open store: data directory %s is not a directory", dir)
	}
	path := filepath.Join(dir, FileName)
	// Create the file ourselves so that it is not world-readable: it holds
	// token hashes and evidence.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	f.Close()

	q := url.Values{}
	// Incremental auto-vacuum lets Prune give freed pages back to the file
	// system (see reclaim). It takes effect only on a new, empty database,
	// so it comes before anything that writes the file; an older database
	// keeps reusing its freed pages without shrinking.
	q.Add("_pragma", "auto_vacuum(INCREMENTAL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	// The write-ahead log is truncated to this after a checkpoint; without
	// a limit it keeps its largest size.
	q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
	// FULL: a commit is on disk when it returns. With NORMAL a power cut
	// (the appliance's usual way to be switched off) could take the last
	// commits back: an administrator, a token, an audit line. Events are
	// committed in batches, so this costs a few fsyncs a second at most.
	q.Add("_pragma", "synchronous(FULL)")
	// Write transactions take the write lock at BEGIN: a deferred transaction
	// that reads first can fail with SQLITE_BUSY without waiting when another
	// process wrote in between.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "store")
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: journal_mode: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		log.Warn("database not in WAL mode; concurrent access from other processes may fail", "journal_mode", mode, "path", path)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var pageSize int64
	if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: page_size: %w", path, err)
	}

	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = DefaultPruneInterval
	}
	s := &Store{
		db:             db,
		path:           path,
		dir:            dir,
		pageSize:       pageSize,
		maxHostsSeen:   MaxHostsSeen,
		maxSeriesAddrs: MaxSeriesAddresses,
		maxLocations:   MaxLocations,
		pruneNow:       make(chan struct{}, 1),
		log:            log,
		now:            opts.Now,
		rand:           opts.Rand,
		queue:          make([]event.Event, 0, min(opts.QueueSize, batchSize)),
		queueCap:       opts.QueueSize,
		kick:           make(chan struct{}, 1),
		flushReq:       make(chan chan error),
		stop:           make(chan struct{}),
		writerDone:     make(chan struct{}),
	}
	s.SetLimits(opts.Retention, opts.MaxEvents)
	s.SetQuota(opts.MaxBytes, opts.EventsPerSourcePerMinute)
	if n, err := s.eventBytes(ctx); err == nil {
		s.evBytes.Store(n)
	}
	s.collectors = s.newCollectors()

	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.writerDone)
		s.writer()
	}()
	if opts.PruneInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.pruner(bg, opts.PruneInterval)
		}()
	}
	return s, nil
}

// Path returns the database file name.
func (s *Store) Path() string { return s.path }

// SetLimits changes retention and the event cap of a running store; they
// apply from the next Prune. Zero or negative values mean the defaults.
func (s *Store) SetLimits(retention time.Duration, maxEvents int) {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if maxEvents <= 0 {
		maxEvents = DefaultMaxEvents
	}
	s.limitsMu.Lock()
	s.retention, s.maxEvents = retention, maxEvents
	s.limitsMu.Unlock()
}

func (s *Store) limits() (time.Duration, int) {
	s.limitsMu.Lock()
	defer s.limitsMu.Unlock()
	return s.retention, s.maxEvents
}

// Close commits queued events, stops the background goroutines and closes
// the database. Events recorded after Close are dropped.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		s.cancel()
		s.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// migrations are applied in order; PRAGMA user_version counts the applied
// ones. Append, never edit.
var migrations = []string{
	`CREATE TABLE events (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		time        INTEGER NOT NULL, -- unix nanoseconds
		kind        TEXT    NOT NULL,
		client      TEXT    NOT NULL DEFAULT '',
		server      TEXT    NOT NULL DEFAULT '',
		server_port INTEGER NOT NULL DEFAULT 0,
		relay       TEXT    NOT NULL DEFAULT '',
		helo        TEXT    NOT NULL DEFAULT '',
		mail_from   TEXT    NOT NULL DEFAULT '',
		rcpt        TEXT    NOT NULL DEFAULT '[]', -- JSON array
		code        INTEGER NOT NULL DEFAULT 0,
		detail      TEXT    NOT NULL DEFAULT '',
		bytes       INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX events_time ON events(time);
	CREATE INDEX events_kind ON events(kind, time);
	CREATE INDEX events_client ON events(client, time);
	CREATE TABLE tokens (
		id        INTEGER PRIMARY KEY AUTOINCREMENT,
		name      TEXT    NOT NULL,
		hash      BLOB    NOT NULL UNIQUE, -- SHA-256 of the token
		created   INTEGER NOT NULL,
		last_used INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE audit (
		id     INTEGER PRIMARY KEY AUTOINCREMENT,
		time   INTEGER NOT NULL,
		actor  TEXT    NOT NULL DEFAULT '',
		action TEXT    NOT NULL DEFAULT '',
		detail TEXT    NOT NULL DEFAULT '',
		remote TEXT    NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_time ON audit(time);`,
	// Per-minute series (see series.go), the passive host inventory of the
	// inspect package, and the web UI's administrators and sessions.
	`CREATE TABLE series (
		metric TEXT    NOT NULL,
		key    TEXT    NOT NULL DEFAULT '',
		minute INTEGER NOT NULL, -- unix seconds, a multiple of 60
		value  INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (metric, key, minute)
	) WITHOUT ROWID;
	CREATE INDEX series_minute ON series(minute);
	CREATE TABLE hosts_seen (
		addr            TEXT    PRIMARY KEY,
		first_seen      INTEGER NOT NULL, -- unix nanoseconds
		last_seen       INTEGER NOT NULL,
		flows           INTEGER NOT NULL DEFAULT 0,
		messages        INTEGER NOT NULL DEFAULT 0,
		encrypted_flows INTEGER NOT NULL DEFAULT 0,
		rcpt_domains    TEXT    NOT NULL DEFAULT '[]', -- JSON array, bounded
		remote_mxs      TEXT    NOT NULL DEFAULT '[]', -- JSON array, bounded
		auth_mechs      TEXT    NOT NULL DEFAULT '[]', -- JSON array
		rdns            TEXT    NOT NULL DEFAULT '',
		extra           TEXT    NOT NULL DEFAULT '{}' -- JSON object for later fields
	);
	CREATE TABLE users (
		username      TEXT    PRIMARY KEY,
		password_hash TEXT    NOT NULL,
		created       INTEGER NOT NULL,
		updated       INTEGER NOT NULL,
		extra         TEXT    NOT NULL DEFAULT '{}'
	);
	CREATE TABLE sessions (
		id_hash   BLOB    PRIMARY KEY, -- SHA-256 of the session cookie
		username  TEXT    NOT NULL,
		csrf      TEXT    NOT NULL,
		created   INTEGER NOT NULL,
		last_seen INTEGER NOT NULL,
		remote    TEXT    NOT NULL DEFAULT '',
		extra     TEXT    NOT NULL DEFAULT '{}'
	);
	CREATE TABLE settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
	`ALTER TABLE events ADD COLUMN messages  INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE events ADD COLUMN size      INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE events ADD COLUMN reply     TEXT    NOT NULL DEFAULT '';
	ALTER TABLE events ADD COLUMN tls       TEXT    NOT NULL DEFAULT '';
	ALTER TABLE events ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0;`,
	`CREATE TABLE reputation (
		time    INTEGER NOT NULL, -- unix nanoseconds
		address TEXT    NOT NULL,
		zone    TEXT    NOT NULL,
		status  TEXT    NOT NULL, -- listed, clean, error, skipped
		code    TEXT    NOT NULL DEFAULT '',
		reason  TEXT    NOT NULL DEFAULT '',
		error   TEXT    NOT NULL DEFAULT ''
	);
	CREATE INDEX reputation_key ON reputation(address, zone, time);`,
	// The outcome series (outcomes.go) of the events stored before they
	// existed, so that hosts keep their counts across the upgrade. The
	// held-back events of that time were never stored and stay uncounted.
	`INSERT INTO series (metric, key, minute, value)
		SELECT 'attempts_' || kind, client, time / 60000000000 * 60, COUNT(*) FROM events
		WHERE kind != 'alert' GROUP BY kind, client, time / 60000000000
		ON CONFLICT (metric, key, minute) DO UPDATE SET value = value + excluded.value;
	INSERT INTO series (metric, key, minute, value)
		SELECT 'blocked', client, time / 60000000000 * 60, COUNT(*) FROM events
		WHERE kind IN ('blocked', 'refused', 'would_block') GROUP BY client, time / 60000000000
		ON CONFLICT (metric, key, minute) DO UPDATE SET value = value + excluded.value;`,
	// The byte quota (quota.go): what each event costs in the file,
	// estimated at insert, and the recipients an event did not keep.
	`ALTER TABLE events ADD COLUMN rcpt_dropped INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE events ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
	UPDATE events SET stored_bytes = 160 + length(CAST(helo AS BLOB)) + length(CAST(mail_from AS BLOB))
		+ length(CAST(rcpt AS BLOB)) + length(CAST(detail AS BLOB)) + length(CAST(reply AS BLOB))
		+ length(CAST(relay AS BLOB)) + length(CAST(tls AS BLOB));
	CREATE INDEX hosts_seen_last ON hosts_seen(last_seen);`,
	// Token scopes and expiry (tokens.go): the tokens made before scopes
	// existed keep the full rights they were created with, and never
	// expire.
	`ALTER TABLE tokens ADD COLUMN scope   TEXT    NOT NULL DEFAULT 'admin';
	ALTER TABLE tokens ADD COLUMN expires INTEGER NOT NULL DEFAULT 0; -- unix nanoseconds, 0: never`,
	// Where hosts were seen on the switched network (locations.go): per
	// address the last lookup and the best answer it kept.
	`CREATE TABLE locations (
		addr        TEXT    PRIMARY KEY,
		updated     INTEGER NOT NULL, -- unix nanoseconds of the last lookup
		last_status TEXT    NOT NULL,
		last_error  TEXT    NOT NULL DEFAULT '',
		mac         TEXT    NOT NULL DEFAULT '', -- the kept answer's MAC
		location    TEXT    NOT NULL DEFAULT '{}' -- JSON locate.Location kept
	);
	CREATE INDEX locations_updated ON locations(updated);
	CREATE INDEX locations_mac ON locations(mac) WHERE mac != '';`,
}

func migrate(ctx context.Context, db *sql.DB) (err error) {
	// Up to date: do not take the write lock, which another process (the
	// daemon) may be holding.
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: read user_version: %w", err)
	}
	if v == len(migrations) {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	// Read again under the write lock: another process may have migrated.
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: read user_version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program supports (%d)", v, len(migrations))
	}
	if v == len(migrations) {
		return tx.Rollback()
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate: schema version %d: %w", i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: set user_version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

func clampLimit(n int) int {
	if n <= 0 {
		return defLimit
	}
	return min(n, maxLimit)
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
