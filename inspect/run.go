package inspect

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/prometheus/client_golang/prometheus"
)

type queued struct {
	data []byte
	ci   gopacket.CaptureInfo
}

// Run reads every source on its own goroutine into a bounded queue that
// one decoder drains, so that a slow decoder drops (and counts) frames
// instead of holding up a capture ring. It sweeps idle flows and flushes
// the inventory and evidence periodically, and returns when ctx ends (after
// ending all flows and a last flush) or when every source failed.
func (in *Inspector) Run(ctx context.Context, sources ...PacketSource) error {
	in.srcMu.Lock()
	for _, s := range sources {
		if ss, ok := s.(StatsSource); ok {
			in.sources = append(in.sources, ss)
		}
	}
	in.srcMu.Unlock()
	// Stopped before Run returns: the caller closes the sources then.
	defer in.follow(sources)()
	in.want.Store(int64(len(sources)))
	in.reading.Store(int64(len(sources)))
	in.running.Store(true)
	defer in.running.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := make(chan queued, in.opts.Queue)
	var readers sync.WaitGroup
	errc := make(chan error, len(sources))
	for _, s := range sources {
		readers.Go(func() {
			defer in.reading.Add(-1)
			for ctx.Err() == nil {
				data, ci, err := s.ReadPacketData()
				if errors.Is(err, errTimeout) {
					continue
				}
				if err != nil {
					if !errors.Is(err, io.EOF) && ctx.Err() == nil {
						errc <- err
					}
					return
				}
				select {
				case q <- queued{append([]byte(nil), data...), ci}:
				default:
					in.st.queueDrops.Add(1)
				}
			}
		})
	}
	allDone := make(chan struct{})
	go func() {
		readers.Wait()
		close(allDone)
	}()
	var bg sync.WaitGroup
	bg.Go(func() { in.inv.resolve(ctx) })
	sweep := time.NewTicker(DefaultSweepInterval)
	defer sweep.Stop()
	flush := time.NewTicker(in.opts.FlushInterval)
	defer flush.Stop()
	var runErr error
loop:
	for {
		select {
		case p := <-q:
			in.Process(p.data, p.ci)
		case <-sweep.C:
			in.Sweep(in.opts.Now())
		case <-flush.C:
			if err := in.flush(ctx, in.opts.Now().Add(-evidenceHoldback)); err != nil {
				in.log.Error("flush inventory and evidence", "err", err)
			}
		case <-allDone:
			select {
			case runErr = <-errc:
			default:
			}
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	cancel()
	bg.Wait()
	// The caller closes the sources after Run: no reader may still be in
	// a ring (they return within one poll timeout).
	readers.Wait()
	in.Finish()
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer fcancel()
	if err := in.Flush(fctx); err != nil {
		in.log.Error("flush inventory and evidence", "err", err)
	}
	return runErr
}

// Capturing reports whether Run is reading every source it was given: false
// before Run, after it returned, and from the moment one of its sources
// ended (a capture error), even while the others still deliver.
func (in *Inspector) Capturing() bool {
	return in.running.Load() && in.want.Load() > 0 && in.reading.Load() == in.want.Load()
}

// errTimeout is what a live source returns when its poll timed out; Run
// then checks its context and reads again.
var errTimeout = errors.New("capture poll timeout")

// Stats is the inspection's state for /api/v1/status.
type Stats struct {
	// Running is true while Run captures.
	Running bool `json:"running"`
	// RelaysLeftOut: the relays' diverted flows are left out of the
	// capture (enforce mode while the kernel diverts); the proxy reports
	// their sessions (see SetDiverting).
	RelaysLeftOut bool `json:"relays_left_out"`
	// Packets counts frames decoded; Bytes their octets.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// KernelDrops: frames the kernel dropped because a capture ring was full.
	KernelDrops uint64 `json:"kernel_drops"`
	// QueueDrops: frames dropped because the decoder fell behind.
	QueueDrops uint64 `json:"queue_drops"`
	// FlowDrops: new flows not tracked because the flow table was full.
	FlowDrops uint64 `json:"flow_drops"`
	// MemoryShed: flows shed (ended before they were fully inspected, or
	// not tracked) because the inspection memory budget was full.
	MemoryShed uint64 `json:"memory_shed"`
	// MemoryBytes is what the tracked flows hold now, MemoryBudget its
	// bound (inspect.memory_mb).
	MemoryBytes  int64  `json:"memory_bytes"`
	MemoryBudget int64  `json:"memory_budget"`
	DecodeErrs   uint64 `json:"decode_errors"`
	// DecodePanics: frames skipped because decoding them panicked.
	DecodePanics uint64 `json:"decode_panics"`
	FlowsActive  int64  `json:"flows_active"`
	FlowsTotal   int64  `json:"flows_total"`
	// Messages counts messages attempted (end of DATA, BDAT LAST).
	Messages       uint64 `json:"messages"`
	WouldBlock     uint64 `json:"would_block"`
	EncryptedFlows uint64 `json:"encrypted_flows"`
	EvidenceBytes  int64  `json:"evidence_bytes"`
}

// Stats returns the counters since New.
func (in *Inspector) Stats() Stats {
	s := Stats{
		Running:        in.running.Load(),
		RelaysLeftOut:  in.cfg.Load().skipRelays,
		Packets:        in.st.packets.Load(),
		Bytes:          in.st.bytes.Load(),
		QueueDrops:     in.st.queueDrops.Load(),
		FlowDrops:      in.st.flowDrops.Load(),
		MemoryShed:     in.st.memShed.Load(),
		MemoryBytes:    in.st.memBytes.Load(),
		MemoryBudget:   int64(in.memMax()),
		DecodeErrs:     in.st.decodeErr.Load(),
		DecodePanics:   in.st.decodePanics.Load(),
		FlowsActive:    in.st.flowsActive.Load(),
		FlowsTotal:     in.st.flowsTotal.Load(),
		Messages:       in.st.messages.Load(),
		WouldBlock:     in.st.wouldBlock.Load(),
		EncryptedFlows: in.st.encrypted.Load(),
	}
	in.srcMu.Lock()
	for _, src := range in.sources {
		s.KernelDrops += src.KernelDrops()
	}
	in.srcMu.Unlock()
	if in.ev != nil {
		s.EvidenceBytes = in.ev.diskBytes()
	}
	return s
}

// Collectors returns the Prometheus collectors of the inspection.
func (in *Inspector) Collectors() []prometheus.Collector {
	return []prometheus.Collector{&collector{in: in,
		packets:  prometheus.NewDesc("relaygate_inspect_packets_total", "Frames decoded by passive inspection.", nil, nil),
		bytes:    prometheus.NewDesc("relaygate_inspect_bytes_total", "Octets of frames decoded by passive inspection.", nil, nil),
		drops:    prometheus.NewDesc("relaygate_inspect_drops_total", "Frames or flows passive inspection dropped, by where: kernel (capture ring full), queue (decoder behind), flows (flow table full), memory (flows shed: memory budget full).", []string{"where"}, nil),
		active:   prometheus.NewDesc("relaygate_inspect_flows_active", "SMTP flows tracked now.", nil, nil),
		flows:    prometheus.NewDesc("relaygate_inspect_flows_total", "SMTP flows seen.", nil, nil),
		messages: prometheus.NewDesc("relaygate_inspect_messages_total", "Messages attempted in SMTP flows seen (relays' diverted sessions in enforce mode: as the proxy relayed them).", nil, nil),
		would:    prometheus.NewDesc("relaygate_inspect_would_block_total", "Flows of non-relays reported as would_block.", nil, nil),
		enc:      prometheus.NewDesc("relaygate_inspect_encrypted_flows_total", "SMTP flows that switched to TLS (relays' diverted sessions in enforce mode: STARTTLS passed through by the proxy).", nil, nil),
		evBytes:  prometheus.NewDesc("relaygate_inspect_evidence_bytes", "Disk used by pcap evidence.", nil, nil),
		memBytes: prometheus.NewDesc("relaygate_inspect_memory_bytes", "Bytes the tracked SMTP flows hold (reassembly, line buffers, DATA hold, envelopes).", nil, nil),
		memMax:   prometheus.NewDesc("relaygate_inspect_memory_budget_bytes", "Bound of relaygate_inspect_memory_bytes (inspect.memory_mb).", nil, nil),
		panics:   prometheus.NewDesc("relaygate_inspect_decode_panics_total", "Frames skipped because decoding them panicked (recovered).", nil, nil),
	}}
}

type collector struct {
	in                                                         *Inspector
	packets, bytes, drops, active, flows, messages, would, enc *prometheus.Desc
	evBytes, memBytes, memMax, panics                          *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.drops, c.active, c.flows, c.messages, c.would, c.enc, c.evBytes, c.memBytes, c.memMax, c.panics} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.in.Stats()
	ct, g := prometheus.CounterValue, prometheus.GaugeValue
	ch <- prometheus.MustNewConstMetric(c.packets, ct, float64(s.Packets))
	ch <- prometheus.MustNewConstMetric(c.bytes, ct, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(c.drops, ct, float64(s.KernelDrops), "kernel")
	ch <- prometheus.MustNewConstMetric(c.drops, ct, float64(s.QueueDrops), "queue")
	ch <- prometheus.MustNewConstMetric(c.drops, ct, float64(s.FlowDrops), "flows")
	ch <- prometheus.MustNewConstMetric(c.drops, ct, float64(s.MemoryShed), "memory")
	ch <- prometheus.MustNewConstMetric(c.active, g, float64(s.FlowsActive))
	ch <- prometheus.MustNewConstMetric(c.flows, ct, float64(s.FlowsTotal))
	ch <- prometheus.MustNewConstMetric(c.messages, ct, float64(s.Messages))
	ch <- prometheus.MustNewConstMetric(c.would, ct, float64(s.WouldBlock))
	ch <- prometheus.MustNewConstMetric(c.enc, ct, float64(s.EncryptedFlows))
	ch <- prometheus.MustNewConstMetric(c.evBytes, g, float64(s.EvidenceBytes))
	ch <- prometheus.MustNewConstMetric(c.memBytes, g, float64(s.MemoryBytes))
	ch <- prometheus.MustNewConstMetric(c.memMax, g, float64(s.MemoryBudget))
	ch <- prometheus.MustNewConstMetric(c.panics, ct, float64(s.DecodePanics))
}
