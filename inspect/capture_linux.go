//go:build linux

package inspect

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"
)

// Ring geometry of a live capture. TPACKET_V3 packs variable-sized frames
// into blocks; a frame may be as large as a GRO/TSO super-packet on veth
// and virtio links, so blocks are 1 MiB and frames up to 64 KiB.
const (
	captureBlock     = 1 << 20
	captureFrame     = 1 << 16
	captureBlockTime = 50 * time.Millisecond
	// captureIdle is how long a reader first waits when no block is
	// ready; each further empty poll doubles the wait, up to
	// captureIdleMax, and a frame brings it back. A block reaches user
	// space only when it is full or captureBlockTime old, so this adds
	// little to the delay a frame has anyway, and an idle capture (no SMTP
	// on the ports, which is most of the time) wakes the daemon about ten
	// times a second instead of a hundred: each wake-up costs the bridged
	// traffic too, on a box with few CPUs (docs/benchmarks.md).
	captureIdle    = 10 * time.Millisecond
	captureIdleMax = 100 * time.Millisecond
)

// LiveSource captures copies of the frames arriving on one interface with
// an AF_PACKET TPACKET_V3 ring and a BPF filter for the SMTP ports. It
// never delays the bridge: the kernel copies frames into the ring, and
// when the ring is full it drops them and counts (KernelDrops).
type LiveSource struct {
	Iface string
	tp    *afpacket.TPacket
	// mu orders SetFilter and Close: a filter set on a closed socket's
	// number could land on another socket.
	mu     sync.Mutex
	closed bool
	// wait is the next empty poll's wait (captureIdle to captureIdleMax);
	// only the one goroutine that reads the source uses it.
	wait time.Duration
}

var _ FilterSource = (*LiveSource)(nil)

// OpenLive opens a capture on iface with a ring of ringMB MiB (default 8)
// that passes TCP on ports, received frames only (see Filter).
func OpenLive(iface string, ringMB int, ports []uint16) (*LiveSource, error) {
	if ringMB <= 0 {
		ringMB = 8
	}
	filter, err := Filter(FilterSpec{Ports: ports, KernelOnly: true})
	if err != nil {
		return nil, err
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(iface),
		afpacket.TPacketVersion3,
		afpacket.OptFrameSize(captureFrame),
		afpacket.OptBlockSize(captureBlock),
		afpacket.OptNumBlocks(ringMB*(1<<20)/captureBlock),
		afpacket.OptBlockTimeout(captureBlockTime),
		// Never block in poll(2): see ReadPacketData.
		afpacket.OptPollTimeout(0),
		// Put a stripped 802.1Q tag back, so that evidence shows it.
		afpacket.OptAddVLANHeader(true),
	)
	if err != nil {
		return nil, fmt.Errorf("afpacket on %s: %w", iface, err)
	}
	if err := tp.SetBPF(filter); err != nil {
		tp.Close()
		return nil, fmt.Errorf("attach BPF filter on %s: %w", iface, err)
	}
	if err := tp.InitSocketStats(); err != nil {
		tp.Close()
		return nil, fmt.Errorf("capture statistics on %s: %w", iface, err)
	}
	return &LiveSource{Iface: iface, tp: tp}, nil
}

// ReadPacketData returns the next frame; the data is valid until the next
// call. When none is ready it waits (captureIdle, doubling while the ring
// stays empty, up to captureIdleMax) and reports errTimeout, which Run
// retries on. One goroutine reads a source.
func (s *LiveSource) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := s.tp.ZeroCopyReadPacketData()
	if errors.Is(err, afpacket.ErrTimeout) {
		// No block is ready. A goroutine blocked in poll(2) keeps its
		// scheduler P (one of GOMAXPROCS) until the runtime's monitor
		// takes it back, up to 10 ms later: on a box with one or two CPUs
		// the proxy's sessions stalled behind it (docs/benchmarks.md). A timer
		// wait holds no P.
		s.wait = min(max(2*s.wait, captureIdle), captureIdleMax)
		time.Sleep(s.wait)
		return nil, ci, errTimeout
	}
	if err != nil {
		return nil, ci, fmt.Errorf("capture on %s: %w", s.Iface, err)
	}
	s.wait = 0
	return data, ci, nil
}

// KernelDrops returns frames the kernel dropped since OpenLive.
func (s *LiveSource) KernelDrops() uint64 {
	_, v3, err := s.tp.SocketStats()
	if err != nil {
		return 0
	}
	return uint64(v3.Drops())
}

// SetFilter replaces the socket's BPF filter (SO_ATTACH_FILTER swaps it
// atomically: every frame meets either the old or the new one).
func (s *LiveSource) SetFilter(raw []bpf.RawInstruction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("replace BPF filter on %s: capture closed", s.Iface)
	}
	if err := s.tp.SetBPF(raw); err != nil {
		return fmt.Errorf("replace BPF filter on %s: %w", s.Iface, err)
	}
	return nil
}

// Close releases the ring.
func (s *LiveSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.tp.Close()
	return nil
}
