// Package inspect watches SMTP on the bridge ports passively: it decodes
// copies of the frames (Ethernet, 802.1Q, IPv4, IPv6, TCP), reassembles
// each port-25 flow, parses the client's commands and the server's replies,
// and reports per flow (would_block events in monitor mode, per-minute
// counters in both modes), per host (the inventory) and, for hosts that are
// not relays, keeps bounded pcap evidence.
//
// I/O stays at the edge: a Source delivers frames (live AF_PACKET capture on
// Linux, or a pcap file replayed in tests through the same decode path), and
// time comes from the frames and an injectable clock.
package inspect

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/policy"
	"github.com/relaygate/relaygate/store"
)

// Defaults for Options.
const (
	DefaultIdleTimeout   = 5 * time.Minute
	DefaultClosedTimeout = 10 * time.Second
	DefaultMaxFlows      = 16384
	DefaultQueue         = 16384
	DefaultFlushInterval = 10 * time.Second
	DefaultSweepInterval = time.Second
)

// Series receives per-minute counters; *store.Store implements it.
type Series interface {
	AddSeries(metric, key string, t time.Time, delta int64)
}

// InventoryStore persists the host inventory; *store.Store implements it.
type InventoryStore interface {
	UpsertHosts(ctx context.Context, deltas []store.HostDelta) error
	HostsSeen(ctx context.Context, limit int) ([]store.HostSeen, error)
	HostSeenByAddr(ctx context.Context, addr netip.Addr) (store.HostSeen, error)
}

// Resolver looks up reverse DNS names; *net.Resolver implements it.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Options configures an Inspector. Recorder, Series and Inventory may be
// nil (then that output is discarded).
type Options struct {
	Logger    *slog.Logger
	Recorder  event.Recorder
	Series    Series
	Inventory InventoryStore
	// Resolver for reverse DNS; nil disables lookups regardless of the
	// configuration.
	Resolver Resolver
	// Now is the clock for sweeps and flushes, default time.Now. Flow times
	// come from the frames' capture timestamps.
	Now func() time.Time
	// EvidenceDir holds the pcap evidence, e.g. /var/lib/relaygate/evidence.
	// Empty disables evidence.
	EvidenceDir string
	// IdleTimeout ends a flow without packets for this long, e.g. 5m.
	IdleTimeout time.Duration
	// ClosedTimeout ends a flow this long after its first FIN, e.g. 10s.
	ClosedTimeout time.Duration
	// MaxFlows bounds the flows tracked at once; new flows beyond are
	// counted as drops, e.g. 16384.
	MaxFlows int
	// Queue bounds frames waiting for the decoder (live capture), e.g. 16384.
	Queue int
	// FlushInterval is how often the inventory and evidence are written, e.g. 10s.
	FlushInterval time.Duration
}

// snapshot is the part of the configuration the decoder reads per packet.
type snapshot struct {
	mode     config.Mode
	policy   *policy.Policy
	ports    map[uint16]bool
	flowsMax int // evidence flows per host
	pktsMax  int // evidence packets per flow
	diskMax  int64
	memMax   int // bytes all flows may hold together
	labels   []label
	rdns     bool
	// skipRelays: the relays' diverted flows are left out of the capture
	// (enforce mode while the kernel diverts): only each connection's SYN
	// is counted; the proxy reports the rest (Proxied).
	skipRelays bool
}

type label struct {
	prefix netip.Prefix
	name   string
}

// Inspector decodes frames and keeps flows, inventory and evidence. Feed it
// with Run (a Source) or Process (one frame); its query methods are safe
// for concurrent use.
type Inspector struct {
	log  *slog.Logger
	opts Options
	cfg  atomic.Pointer[snapshot]

	// mu serializes the decoder: Process, Sweep and Finish.
	mu      sync.Mutex
	flows   map[flowKey]*flow
	parser  *gopacket.DecodingLayerParser
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	payload gopacket.Payload
	decoded []gopacket.LayerType
	clock   time.Time // newest frame time
	mem     memory

	inv *inventory
	ev  *evidence

	st counters
	// lastPanicLog rate-limits the log of recovered decoder panics.
	lastPanicLog time.Time
	// frameHook, when set (tests), sees every frame before it is decoded.
	frameHook func(data []byte)
	// sources' statistics (kernel drops), set by Run.
	srcMu   sync.Mutex
	sources []StatsSource
	running atomic.Bool
	// reading counts the sources of Run still being read, of want.
	reading, want atomic.Int64

	// relaySyns holds the SYNs of relays' diverted connections counted in
	// the last synRetransmitWindow (under mu), so that a retransmitted
	// SYN is not a second flow.
	relaySyns map[flowKey]time.Time

	// capMu serializes configuration changes and capture filter updates.
	capMu sync.Mutex
	// conf is the configuration in force; diverting is what SetDiverting
	// said last.
	conf      *config.Config
	diverting bool
	// program is the kernel filter the live sources should have;
	// filtered are the live sources of Run whose filter follows it.
	program  []bpf.RawInstruction
	filtered []FilterSource
}

type counters struct {
	packets, bytes, decodeErr       atomic.Uint64
	queueDrops, flowDrops, memShed  atomic.Uint64
	memBytes                        atomic.Int64
	flowsTotal, flowsActive         atomic.Int64
	messages, wouldBlock, encrypted atomic.Uint64
	decodePanics                    atomic.Uint64
}

// New builds an Inspector for cfg. Call SetConfig on every configuration
// change.
func New(cfg *config.Config, opts Options) (*Inspector, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.ClosedTimeout <= 0 {
		opts.ClosedTimeout = DefaultClosedTimeout
	}
	if opts.MaxFlows <= 0 {
		opts.MaxFlows = DefaultMaxFlows
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	in := &Inspector{
		log:   opts.Logger.With("component", "inspect"),
		opts:  opts,
		flows: map[flowKey]*flow{},
		mem:   memory{bySrc: map[netip.Addr]int{}, gone: map[flowKey]time.Time{}},

		relaySyns: map[flowKey]time.Time{},
	}
	in.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet,
		&in.eth, &in.dot1q, &in.ip4, &in.ip6, &in.tcp, &in.payload)
	in.parser.IgnoreUnsupported = true
	in.inv = newInventory(in)
	if opts.EvidenceDir != "" {
		ev, err := newEvidence(opts.EvidenceDir, in.log)
		if err != nil {
			return nil, err
		}
		in.ev = ev
	}
	in.SetConfig(cfg)
	return in, nil
}

// SetConfig applies a new configuration live: mode, relays, ports,
// evidence bounds, labels and reverse DNS, and the live sources' kernel
// filter (see SetDiverting).
func (in *Inspector) SetConfig(c *config.Config) {
	in.capMu.Lock()
	defer in.capMu.Unlock()
	in.conf = c
	in.apply()
}

// SetDiverting tells whether the kernel diverts the SMTP ports to the proxy
// now: the proxy serves and the diversion is alive. In enforce mode while
// it does, the relays' diverted flows, which the proxy sees whole, are
// left out of the capture, in the kernel filter where it can and in user
// space otherwise; each connection's SYN is still counted, and the proxy's
// events (Proxied) report the rest. Otherwise (monitor mode, or the
// fail-open state while the daemon does not serve, when the relays' SMTP is
// bridged) everything is captured.
func (in *Inspector) SetDiverting(on bool) {
	in.capMu.Lock()
	defer in.capMu.Unlock()
	if in.diverting == on {
		return
	}
	in.diverting = on
	in.apply()
}

// apply puts in.conf and in.diverting in force: the decoder's snapshot and
// the live sources' filter. The caller holds capMu.
func (in *Inspector) apply() {
	s := newSnapshot(in.conf)
	s.skipRelays = in.conf.Mode == config.Enforce && in.diverting && len(s.policy.Relays()) > 0
	old := in.cfg.Swap(s)
	in.setProgram(s)
	if old != nil && old.skipRelays != s.skipRelays {
		in.log.Info("capture of the relays' diverted flows changed", "left_out", s.skipRelays, "mode", in.conf.Mode, "diverting", in.diverting)
	}
}

// newSnapshot is what the decoder reads of c.
func newSnapshot(c *config.Config) *snapshot {
	s := &snapshot{
		mode:     c.Mode,
		policy:   policy.New(c),
		ports:    map[uint16]bool{},
		flowsMax: c.Inspect.PcapFlowsPerHost,
		pktsMax:  c.Inspect.PcapPacketsPerFlow,
		diskMax:  int64(c.Inspect.PcapMaxMB) << 20,
		memMax:   c.Inspect.MemoryMB << 20,
		rdns:     c.Inspect.ReverseDNSOn(),
	}
	for _, p := range c.Ports {
		s.ports[uint16(p)] = true
	}
	if len(s.ports) == 0 {
		s.ports[25] = true
	}
	for _, l := range c.Inspect.Labels {
		if l.Prefix.IsValid() {
			s.labels = append(s.labels, label{l.Prefix.Net(), l.Label})
		}
	}
	return s
}

// Ports returns the configured SMTP ports, for building a capture filter.
func (in *Inspector) Ports() []uint16 {
	return in.cfg.Load().sortedPorts()
}

func (s *snapshot) sortedPorts() []uint16 {
	out := slices.Collect(maps.Keys(s.ports))
	slices.Sort(out)
	return out
}

// PacketSource delivers frames: live capture or a pcap replay. data is
// only valid until the next call.
type PacketSource interface {
	ReadPacketData() (data []byte, ci gopacket.CaptureInfo, err error)
}

// StatsSource is a source that counts what the kernel dropped.
type StatsSource interface {
	// KernelDrops returns frames the kernel dropped because the ring was full.
	KernelDrops() uint64
}

// Replay feeds every frame of src through the decoder, then ends all flows
// and flushes: the test and benchmark entry point, the same path as live
// capture.
func (in *Inspector) Replay(ctx context.Context, src PacketSource) error {
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read packet: %w", err)
		}
		in.Process(data, ci)
	}
	in.Finish()
	return in.Flush(ctx)
}

// Process decodes one frame. data may be reused by the caller afterwards.
// A panic while decoding (a bug a crafted frame can reach) is recovered:
// the frame is skipped and counted, and the next one is processed, so one
// bad frame does not stop inspection.
func (in *Inspector) Process(data []byte, ci gopacket.CaptureInfo) {
	in.mu.Lock()
	defer in.mu.Unlock()
	defer in.recoverFrame(len(data))
	if in.frameHook != nil {
		in.frameHook(data)
	}
	in.process(data, ci)
}

// panicLogEvery bounds the log of recovered decoder panics: a frame that
// makes the decoder panic may come thousands of times a second.
const panicLogEvery = time.Minute

func (in *Inspector) recoverFrame(frameBytes int) {
	r := recover()
	if r == nil {
		return
	}
	n := in.st.decodePanics.Add(1)
	if now := in.opts.Now(); in.lastPanicLog.IsZero() || now.Sub(in.lastPanicLog) >= panicLogEvery {
		in.lastPanicLog = now
		in.log.Error("decoder panic: frame skipped", "panic", fmt.Sprint(r), "frame_bytes", frameBytes,
			"decode_panics_total", n, "stack", string(debug.Stack()))
	}
}

func (in *Inspector) process(data []byte, ci gopacket.CaptureInfo) {
	in.st.packets.Add(1)
	in.st.bytes.Add(uint64(len(data)))
	if err := in.parser.DecodeLayers(data, &in.decoded); err != nil {
		in.st.decodeErr.Add(1)
		return
	}
	var src, dst netip.Addr
	var haveIP, haveTCP, tagged bool
	for _, t := range in.decoded {
		switch t {
		case layers.LayerTypeDot1Q:
			tagged = true
		case layers.LayerTypeIPv4:
			if in.ip4.Flags&layers.IPv4MoreFragments != 0 || in.ip4.FragOffset != 0 {
				return // fragments of port-25 traffic are rare; not reassembled
			}
			src, _ = netip.AddrFromSlice(in.ip4.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(in.ip4.DstIP.To4())
			haveIP = true
		case layers.LayerTypeIPv6:
			src, _ = netip.AddrFromSlice(in.ip6.SrcIP)
			dst, _ = netip.AddrFromSlice(in.ip6.DstIP)
			src, dst = src.Unmap(), dst.Unmap()
			haveIP = true
		case layers.LayerTypeTCP:
			haveTCP = true
		}
	}
	if !haveIP || !haveTCP {
		return
	}
	t := ci.Timestamp
	if t.IsZero() {
		t = in.opts.Now()
	}
	if t.After(in.clock) {
		in.clock = t
	}
	cfg := in.cfg.Load()
	tcp := &in.tcp
	sp, dp := uint16(tcp.SrcPort), uint16(tcp.DstPort)
	a, b := netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	if cfg.skipRelays && !tagged && in.relayDiverted(cfg, flowKey{a, b}, tcp.SYN && !tcp.ACK, t) {
		return
	}

	f, fromClient := in.flows[flowKey{a, b}], true
	if f == nil {
		if f = in.flows[flowKey{b, a}]; f != nil {
			fromClient = false
		}
	}
	if f == nil {
		// Which side is the client? The SYN says it; otherwise the port.
		switch {
		case tcp.SYN && !tcp.ACK:
			fromClient = cfg.ports[dp]
		case tcp.SYN && tcp.ACK:
			fromClient = !cfg.ports[sp]
		default:
			fromClient = cfg.ports[dp] || !cfg.ports[sp]
		}
		if fromClient && !cfg.ports[dp] || !fromClient && !cfg.ports[sp] {
			return // not SMTP (the capture filter passes both ports)
		}
		if in.mem.wasShed(a, b, fromClient, tcp.SYN && !tcp.ACK, tcp.RST || tcp.FIN, t) {
			return
		}
		if !fromClient || !tcp.SYN && len(tcp.Payload) == 0 {
			// A flow starts with the client's SYN or data. A late ACK, FIN
			// or RST belongs to a flow already ended; server packets
			// alone are the replies to the proxy's onward connections in
			// enforce mode (their requests leave by the box itself and
			// are not captured), which must not count as flows again.
			return
		}
		if len(in.flows) >= in.opts.MaxFlows {
			in.st.flowDrops.Add(1)
			return
		}
		key := flowKey{a, b}
		if !fromClient {
			key = flowKey{b, a}
		}
		f = &flow{in: in, key: key, src: sourceKey(key.cli.Addr())}
		if !f.take(flowOverhead) {
			// Not even room for the flow: its host is still seen.
			in.st.memShed.Add(1)
			in.inv.seen(key.cli.Addr(), t)
			return
		}
		in.newFlow(f, cfg, t)
		in.flows[key] = f
	}
	f.last = t
	f.packets++
	if f.evidence && f.evPackets < cfg.pktsMax && in.ev != nil {
		f.evPackets++
		in.ev.add(f.key.cli.Addr(), data, ci, t)
	}
	conv := f.conv
	if fromClient {
		if tcp.SYN {
			f.cli.syn(tcp.Seq)
		}
		f.cli.segment(tcp.Seq, tcp.Payload, conv.Client, conv.gapClient)
		if tcp.FIN {
			f.finCli = true
		}
	} else {
		if tcp.SYN {
			f.srv.syn(tcp.Seq)
		}
		f.srv.segment(tcp.Seq, tcp.Payload, conv.Server, conv.gapServer)
		if tcp.FIN {
			f.finSrv = true
		}
	}
	if f.shed || tcp.RST || (f.finCli && f.finSrv) {
		in.endFlow(f, t)
	}
}

// newFlow starts tracking f, whose key and source are set (key.cli is the
// client).
func (in *Inspector) newFlow(f *flow, cfg *snapshot, t time.Time) {
	key := f.key
	f.first, f.last = t, t
	f.cli.mem, f.srv.mem = f, f
	r, isRelay := cfg.policy.Relay(key.cli.Addr())
	f.relay, f.isRelay = r.Name, isRelay
	client := key.cli.Addr().String()
	f.conv = newConversation(func() {
		in.st.messages.Add(1)
		if in.opts.Series != nil {
			in.opts.Series.AddSeries(store.SeriesInspectMessages, client, in.clock, 1)
		}
	})
	f.conv.mem = f
	in.st.flowsTotal.Add(1)
	in.st.flowsActive.Add(1)
	if in.opts.Series != nil {
		in.opts.Series.AddSeries(store.SeriesInspectFlows, client, t, 1)
	}
	if !isRelay && in.ev != nil && cfg.pktsMax > 0 {
		f.evidence = in.ev.startFlow(key.cli.Addr(), cfg.flowsMax)
	}
	in.inv.seen(key.cli.Addr(), t)
}

// endFlow reports a flow, forgets it and returns its memory. A flow being
// shed is reported as far as it was parsed: what it buffered is not.
func (in *Inspector) endFlow(f *flow, t time.Time) {
	delete(in.flows, f.key)
	in.st.flowsActive.Add(-1)
	defer in.release(f)
	if !f.shed {
		f.cli.flush(f.conv.Client, f.conv.gapClient)
		f.srv.flush(f.conv.Server, f.conv.gapServer)
		f.conv.finish()
	}
	c := f.conv
	if c.Encrypted {
		in.st.encrypted.Add(1)
	}
	cfg := in.cfg.Load()
	in.inv.flowEnded(f, t)
	if cfg.mode != config.Monitor || in.opts.Recorder == nil {
		// In enforce mode the proxy records every diverted session itself.
		return
	}
	// Monitor mode: a relay's session is what the dashboard counts as
	// relayed, as the proxy's would be in enforce mode; any other source's
	// is what enforce mode would block. Messages are those the client sent
	// (the end of DATA, BDAT LAST): the server's replies come through the
	// other port's ring, which is not ordered with this one, so a reply is
	// not always matched to its message and acceptance would be
	// undercounted. After STARTTLS nothing can be seen, and the session
	// counts as encrypted.
	e := event.Event{
		Time:        f.last,
		Kind:        event.WouldBlock,
		Client:      f.key.cli.Addr(),
		Server:      f.key.srv.Addr(),
		ServerPort:  f.key.srv.Port(),
		Helo:        c.Helo,
		MailFrom:    c.MailFrom,
		Rcpt:        append([]string{}, c.Rcpt...),
		RcptDropped: c.RcptTotal - len(c.Rcpt),
		Code:        cmp.Or(c.FinalCode, c.LastCode),
		Messages:    c.Messages,
		Bytes:       f.cli.Bytes,
		Encrypted:   c.Encrypted,
		Detail:      flowDetail(c, f.shed),
	}
	if f.isRelay {
		e.Kind, e.Relay = event.Relayed, f.relay
	} else {
		in.st.wouldBlock.Add(1)
	}
	in.opts.Recorder.Record(e)
}

func flowDetail(c *Conversation, shed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seen passively: %d messages attempted, %d accepted", c.Messages, c.Accepted)
	if c.RcptTotal > len(c.Rcpt) {
		fmt.Fprintf(&b, ", %d recipients (first %d kept)", c.RcptTotal, len(c.Rcpt))
	}
	if len(c.AuthMechs) > 0 {
		fmt.Fprintf(&b, ", AUTH %s", strings.Join(c.AuthMechs, ","))
		if c.AuthOK {
			b.WriteString(" (succeeded)")
		}
	}
	if c.Encrypted {
		b.WriteString(", STARTTLS: content encrypted")
	}
	if c.Gaps > 0 {
		fmt.Fprintf(&b, ", %d capture gaps", c.Gaps)
	}
	if shed {
		b.WriteString(", not fully inspected: shed when the inspection memory was full")
	}
	return b.String()
}

// Sweep ends flows idle since before now-IdleTimeout (or, half-closed,
// now-ClosedTimeout).
func (in *Inspector) Sweep(now time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range in.flows {
		limit := in.opts.IdleTimeout
		if f.finCli || f.finSrv {
			limit = in.opts.ClosedTimeout
		}
		if now.Sub(f.last) >= limit {
			in.endFlow(f, now)
		}
	}
	in.mem.forget(now.Add(-in.opts.IdleTimeout))
	for k, t := range in.relaySyns {
		if now.Sub(t) >= synRetransmitWindow {
			delete(in.relaySyns, k)
		}
	}
}

// Finish ends every flow (end of a replay, shutdown).
func (in *Inspector) Finish() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range in.flows {
		in.endFlow(f, f.last)
	}
}

// Flush writes the inventory and all buffered evidence.
func (in *Inspector) Flush(ctx context.Context) error {
	return in.flush(ctx, time.Time{})
}

// flush writes the inventory and the evidence captured up to cutoff (all
// of it when cutoff is zero).
func (in *Inspector) flush(ctx context.Context, cutoff time.Time) error {
	var errs []error
	if in.ev != nil {
		in.mu.Lock()
		cfg := in.cfg.Load()
		err := in.ev.flush(cfg.diskMax, cutoff)
		in.mu.Unlock()
		errs = append(errs, err)
	}
	errs = append(errs, in.inv.flush(ctx))
	return errors.Join(errs...)
}

// flowKey names a flow by its client and server endpoints.
type flowKey struct{ cli, srv netip.AddrPort }

type flow struct {
	in             *Inspector
	key            flowKey
	src            netip.Addr // the budget's source key of the client
	mem            int        // bytes charged to the memory budget
	shed           bool       // shed for memory: end it, count it
	relay          string
	isRelay        bool
	first, last    time.Time
	packets        int
	cli, srv       stream
	finCli, finSrv bool
	conv           *Conversation
	evidence       bool
	evPackets      int
}
