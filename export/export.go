package export

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// queueLen bounds the records waiting in memory for the spool writer;
// beyond it they are dropped and counted (reason queue_full).
const queueLen = 4096

// Drop reasons of relaygate_export_dropped_total.
const (
	// DropSpoolFull: the spool was full and its oldest records went.
	DropSpoolFull = "spool_full"
	// DropQueueFull: the in-memory queue before the spool was full.
	DropQueueFull = "queue_full"
	// DropWriteError: the spool could not be written.
	DropWriteError = "write_error"
)

// collector is one configured collector: its spool and its sender.
type collector struct {
	cfg    config.ExportCollector
	format Formatter
	spool  *Spool
	send   *sender
	stop   context.CancelFunc
	done   chan struct{}

	queueFull  atomic.Uint64
	writeError atomic.Uint64
}

// Exporter fans records out to the collectors' spools and runs their
// senders. Its Observe methods never block.
type Exporter struct {
	log      *slog.Logger
	dir      string
	hostname string
	now      func() time.Time

	idPrefix string
	seq      atomic.Uint64
	queue    chan Record

	mu   sync.Mutex
	ctx  context.Context // set by Run
	cfg  config.Export
	cols []*collector
}

// New returns an exporter spooling under dataDir/export.
func New(log *slog.Logger, dataDir string) *Exporter {
	host, err := os.Hostname()
	if err != nil {
		host = "-"
	}
	now := time.Now()
	return &Exporter{
		log: log.With("component", "export"), dir: filepath.Join(dataDir, "export"), hostname: host, now: time.Now,
		// The id is unique across restarts: the start time in
		// milliseconds and a sequence number, both base 36.
		idPrefix: strconv.FormatInt(now.UnixMilli(), 36) + "-",
		queue:    make(chan Record, queueLen),
	}
}

// ObserveEvent queues an event for export. It never blocks: when the
// queue is full the event is dropped and counted.
func (x *Exporter) ObserveEvent(e event.Event) {
	x.enqueue(Record{Event: &e})
}

// ObserveAudit queues an audit entry for export, as ObserveEvent.
func (x *Exporter) ObserveAudit(a store.AuditEntry) {
	x.enqueue(Record{Audit: &a})
}

func (x *Exporter) enqueue(r Record) {
	r.ID = x.idPrefix + strconv.FormatUint(x.seq.Add(1), 36)
	select {
	case x.queue <- r:
	default:
		x.mu.Lock()
		for _, c := range x.cols {
			c.queueFull.Add(1)
		}
		x.mu.Unlock()
	}
}

var _ store.Observer = (*Exporter)(nil)

// SetConfig applies c.Export: collectors that are new or changed are
// (re)started, removed ones stopped; their spools stay on disk.
func (x *Exporter) SetConfig(c *config.Config) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cfg = c.Export
	if x.ctx != nil {
		x.applyLocked()
	}
}

// applyLocked makes the running collectors match x.cfg. Called with mu held.
func (x *Exporter) applyLocked() {
	var keep []*collector
	want := map[string]config.ExportCollector{}
	for _, cc := range x.cfg.Syslog {
		want[cc.Name] = cc
	}
	spoolBytes := int64(x.cfg.SpoolMB) << 20
	for _, c := range x.cols {
		if cc, ok := want[c.cfg.Name]; ok && reflect.DeepEqual(cc, c.cfg) && c.spool.maxBytes == spoolBytes {
			keep = append(keep, c)
			delete(want, cc.Name)
			continue
		}
		x.stopCollector(c)
	}
	for _, cc := range x.cfg.Syslog {
		if _, ok := want[cc.Name]; !ok {
			continue
		}
		c, err := x.startCollector(cc, spoolBytes)
		if err != nil {
			x.log.Error("export collector not started", "collector", cc.Name, "err", err)
			continue
		}
		keep = append(keep, c)
	}
	x.cols = keep
}

func (x *Exporter) startCollector(cc config.ExportCollector, spoolBytes int64) (*collector, error) {
	sp, err := OpenSpool(filepath.Join(x.dir, cc.Name), spoolBytes)
	if err != nil {
		return nil, err
	}
	s, err := newSender(x.log, cc, sp)
	if err != nil {
		sp.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(x.ctx)
	c := &collector{cfg: cc, spool: sp, send: s, stop: cancel, done: make(chan struct{}),
		format: Formatter{Format: cc.Format, Facility: config.SyslogFacilities[cc.Facility], Hostname: x.hostname, MaxLine: cc.MaxLineBytes}}
	go func() {
		defer close(c.done)
		s.run(ctx)
	}()
	s.wake()
	return c, nil
}

func (x *Exporter) stopCollector(c *collector) {
	c.stop()
	<-c.done
	if err := c.spool.Close(); err != nil {
		x.log.Warn("close export spool", "collector", c.cfg.Name, "err", err)
	}
}

// Run writes queued records to the spools until ctx ends, then drains
// the queue, stops the senders and closes the spools (persisting their
// cursors).
func (x *Exporter) Run(ctx context.Context) {
	x.mu.Lock()
	x.ctx = ctx
	x.applyLocked()
	x.mu.Unlock()
	batch := make([]Record, 0, 512)
	for {
		select {
		case r := <-x.queue:
			batch = append(batch[:0], r)
		drain:
			for len(batch) < cap(batch) {
				select {
				case r := <-x.queue:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			x.write(batch)
		case <-ctx.Done():
			for len(x.queue) > 0 {
				x.write([]Record{<-x.queue})
			}
			x.mu.Lock()
			for _, c := range x.cols {
				x.stopCollector(c)
			}
			x.cols = nil
			x.mu.Unlock()
			return
		}
	}
}

// write appends a batch to every collector's spool, with one fsync per
// spool, and wakes the senders.
func (x *Exporter) write(batch []Record) {
	x.mu.Lock()
	cols := append([]*collector(nil), x.cols...)
	x.mu.Unlock()
	for _, c := range cols {
		for _, r := range batch {
			if err := c.spool.Append(r.Time(), c.format.Line(r)); err != nil {
				if c.writeError.Add(1) == 1 {
					x.log.Error("export spool write", "collector", c.cfg.Name, "err", err)
				}
			}
		}
		if err := c.spool.Sync(); err != nil {
			x.log.Warn("export spool sync", "collector", c.cfg.Name, "err", err)
		}
		c.send.wake()
	}
}

// CollectorStatus is one collector's state for the System page and the
// API.
type CollectorStatus struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Transport string `json:"transport"`
	Format    string `json:"format"`
	Connected bool   `json:"connected"`
	// SpoolBytes is what waits unsent; SpoolDiskBytes what the spool
	// takes on disk (bounded by export.spool_mb).
	SpoolBytes     int64 `json:"spool_bytes"`
	SpoolDiskBytes int64 `json:"spool_disk_bytes"`
	// OldestUnsent is the time of the oldest unsent record; null when
	// nothing waits.
	OldestUnsent *time.Time `json:"oldest_unsent"`
	Sent         uint64     `json:"sent"`
	// Dropped counts lost records by reason (spool_full, queue_full,
	// write_error).
	Dropped   map[string]uint64 `json:"dropped"`
	LastError string            `json:"last_error,omitempty"`
}

// Status returns every running collector's state.
func (x *Exporter) Status() []CollectorStatus {
	x.mu.Lock()
	cols := append([]*collector(nil), x.cols...)
	x.mu.Unlock()
	out := make([]CollectorStatus, 0, len(cols))
	for _, c := range cols {
		st := c.spool.Stats()
		cs := CollectorStatus{Name: c.cfg.Name, Address: c.cfg.Address, Transport: c.cfg.Transport, Format: c.cfg.Format,
			Connected: c.send.connected(), SpoolBytes: st.Unsent, SpoolDiskBytes: st.Disk, Sent: c.send.sent.Load(),
			Dropped:   map[string]uint64{DropSpoolFull: st.Lost, DropQueueFull: c.queueFull.Load(), DropWriteError: c.writeError.Load()},
			LastError: c.send.lastError()}
		if !st.Oldest.IsZero() {
			t := st.Oldest.UTC()
			cs.OldestUnsent = &t
		}
		out = append(out, cs)
	}
	return out
}

var (
	spoolBytesDesc = prometheus.NewDesc("relaygate_export_spool_bytes",
		"Octets of records spooled for a collector and not yet sent.", []string{"collector"}, nil)
	oldestDesc = prometheus.NewDesc("relaygate_export_oldest_unsent_seconds",
		"Age of the oldest record not yet sent to a collector; 0 when none waits.", []string{"collector"}, nil)
	sentDesc = prometheus.NewDesc("relaygate_export_sent_total",
		"Records written to a collector.", []string{"collector"}, nil)
	droppedDesc = prometheus.NewDesc("relaygate_export_dropped_total",
		"Records lost before reaching a collector, by reason (spool_full, queue_full, write_error).", []string{"collector", "reason"}, nil)
	connectedDesc = prometheus.NewDesc("relaygate_export_connected",
		"1 while the connection to a collector is up (udp: once a socket is open).", []string{"collector"}, nil)
)

// Describe implements prometheus.Collector.
func (x *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{spoolBytesDesc, oldestDesc, sentDesc, droppedDesc, connectedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (x *Exporter) Collect(ch chan<- prometheus.Metric) {
	now := x.now()
	for _, s := range x.Status() {
		ch <- prometheus.MustNewConstMetric(spoolBytesDesc, prometheus.GaugeValue, float64(s.SpoolBytes), s.Name)
		age := 0.0
		if s.OldestUnsent != nil {
			age = max(0, now.Sub(*s.OldestUnsent).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, s.Name)
		ch <- prometheus.MustNewConstMetric(sentDesc, prometheus.CounterValue, float64(s.Sent), s.Name)
		for _, reason := range []string{DropSpoolFull, DropQueueFull, DropWriteError} {
			ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.Dropped[reason]), s.Name, reason)
		}
		conn := 0.0
		if s.Connected {
			conn = 1
		}
		ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, conn, s.Name)
	}
}

var _ prometheus.Collector = (*Exporter)(nil)
