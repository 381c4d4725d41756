package inspect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// ErrNoEvidence is returned by HostPcap when no pcap is kept for a host.
var ErrNoEvidence = errors.New("no evidence for host")

const (
	evidenceSnaplen = 262144
	// maxEvidenceBuf bounds a host's packets buffered between flushes,
	// maxEvidenceMem those of all hosts.
	maxEvidenceBuf = 512 << 10
	maxEvidenceMem = 32 << 20
	// evidenceHoldback keeps packets younger than this buffered at a
	// periodic flush. The two capture ports deliver their frames in blocks
	// (captureBlockTime) through one queue, so a frame of one port can
	// reach the decoder after later frames of the other; holding the
	// newest packets back lets the file be written in capture-time order,
	// which tshark's TCP and SMTP analysis needs.
	evidenceHoldback = time.Second
)

type evPacket struct {
	ci   gopacket.CaptureInfo
	data []byte
}

type evHost struct {
	flows   int
	size    int64 // bytes on disk
	created time.Time
	buf     []evPacket
	bufSize int
}

// evidence keeps, per host that is not a relay, the first packets of its
// first flows in a classic pcap file (Ethernet link type, which Wireshark
// and tshark open), bounding the disk used by all hosts together.
type evidence struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	hosts map[netip.Addr]*evHost
	total int64 // bytes on disk
	bufd  int   // bytes buffered in memory
}

func newEvidence(dir string, log *slog.Logger) (*evidence, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("evidence directory: %w", err)
	}
	e := &evidence{dir: dir, log: log, hosts: map[netip.Addr]*evHost{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("evidence directory: %w", err)
	}
	for _, ent := range ents {
		name, ok := strings.CutSuffix(ent.Name(), ".pcap")
		if !ok {
			continue
		}
		addr, err := netip.ParseAddr(strings.ReplaceAll(name, "_", ":"))
		if err != nil {
			continue
		}
		fi, err := ent.Info()
		if err != nil {
			continue
		}
		e.hosts[addr] = &evHost{size: fi.Size(), created: fi.ModTime()}
		e.total += fi.Size()
	}
	return e, nil
}

func (e *evidence) path(addr netip.Addr) string {
	return filepath.Join(e.dir, strings.ReplaceAll(addr.String(), ":", "_")+".pcap")
}

// startFlow reports whether a new flow of addr is kept as evidence.
func (e *evidence) startFlow(addr netip.Addr, flowsMax int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.hosts[addr]
	if h == nil {
		h = &evHost{created: time.Now()}
		e.hosts[addr] = h
	}
	if h.flows >= flowsMax {
		return false
	}
	h.flows++
	return true
}

func (e *evidence) add(addr netip.Addr, data []byte, ci gopacket.CaptureInfo, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.hosts[addr]
	if h == nil || h.bufSize+len(data) > maxEvidenceBuf || e.bufd+len(data) > maxEvidenceMem {
		return
	}
	ci.Timestamp = t
	ci.CaptureLength = len(data)
	if ci.Length < len(data) {
		ci.Length = len(data)
	}
	ci.AncillaryData = nil
	h.buf = append(h.buf, evPacket{ci, append([]byte(nil), data...)})
	h.bufSize += len(data)
	e.bufd += len(data)
}

func (e *evidence) has(addr netip.Addr) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.hosts[addr]
	return h != nil && (h.size > 0 || len(h.buf) > 0)
}

// flush writes the buffered packets captured up to cutoff (all of them
// when cutoff is zero) in capture-time order, and evicts the oldest hosts'
// files while the total exceeds maxBytes (0: unbounded).
func (e *evidence) flush(maxBytes int64, cutoff time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for addr, h := range e.hosts {
		if len(h.buf) == 0 {
			continue
		}
		sortPackets(h.buf)
		n := len(h.buf)
		if !cutoff.IsZero() {
			n = sort.Search(len(h.buf), func(i int) bool { return h.buf[i].ci.Timestamp.After(cutoff) })
		}
		if n == 0 {
			continue
		}
		written, err := e.write(addr, h.buf[:n])
		h.size += written
		e.total += written
		size := 0
		for _, pk := range h.buf[:n] {
			size += len(pk.data)
		}
		e.bufd -= size
		h.bufSize -= size
		h.buf = slices.Clone(h.buf[n:])
		if err != nil {
			errs = append(errs, err)
		}
	}
	for maxBytes > 0 && e.total > maxBytes {
		var oldest netip.Addr
		var ot time.Time
		for addr, h := range e.hosts {
			if h.size > 0 && (!oldest.IsValid() || h.created.Before(ot)) {
				oldest, ot = addr, h.created
			}
		}
		if !oldest.IsValid() {
			break
		}
		h := e.hosts[oldest]
		if err := os.Remove(e.path(oldest)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("evict evidence %s: %w", oldest, err))
		}
		e.log.Info("evidence evicted to bound disk use", "client", oldest, "bytes", h.size)
		e.total -= h.size
		h.size = 0
	}
	return errors.Join(errs...)
}

func sortPackets(pks []evPacket) {
	slices.SortStableFunc(pks, func(a, b evPacket) int { return a.ci.Timestamp.Compare(b.ci.Timestamp) })
}

// pending encodes the packets of addr still buffered, in capture-time
// order, as pcap records (preceded by the file header when header is
// set); nothing when none is buffered.
func (e *evidence) pending(addr netip.Addr, header bool) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.hosts[addr]
	if h == nil || len(h.buf) == 0 {
		return nil, nil
	}
	sortPackets(h.buf)
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if header {
		if err := w.WriteFileHeader(evidenceSnaplen, layers.LinkTypeEthernet); err != nil {
			return nil, fmt.Errorf("evidence of %s: %w", addr, err)
		}
	}
	for _, pk := range h.buf {
		if err := w.WritePacket(pk.ci, pk.data); err != nil {
			return nil, fmt.Errorf("evidence of %s: %w", addr, err)
		}
	}
	return b.Bytes(), nil
}

func (e *evidence) write(addr netip.Addr, pks []evPacket) (int64, error) {
	p := e.path(addr)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("evidence %s: %w", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("evidence %s: %w", p, err)
	}
	cw := &countWriter{w: f}
	w := pcapgo.NewWriter(cw)
	if fi.Size() == 0 {
		if err := w.WriteFileHeader(evidenceSnaplen, layers.LinkTypeEthernet); err != nil {
			f.Close()
			return cw.n, fmt.Errorf("evidence %s: %w", p, err)
		}
	}
	for _, pk := range pks {
		if err := w.WritePacket(pk.ci, pk.data); err != nil {
			f.Close()
			return cw.n, fmt.Errorf("evidence %s: %w", p, err)
		}
	}
	if err := f.Close(); err != nil {
		return cw.n, fmt.Errorf("evidence %s: %w", p, err)
	}
	return cw.n, nil
}

func (e *evidence) diskBytes() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// HostPcap opens the pcap evidence of a host (classic pcap, Ethernet), for
// GET /api/v1/hosts/{addr}/pcap: the file on disk followed by the packets
// still held back in memory, so that the answer is complete and the file
// stays in capture-time order. It returns an error wrapping ErrNoEvidence
// when there is none.
func (in *Inspector) HostPcap(addr netip.Addr) (io.ReadCloser, error) {
	if in.ev == nil {
		return nil, fmt.Errorf("host %s: %w", addr, ErrNoEvidence)
	}
	addr = addr.Unmap().WithZone("")
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.ev.flush(in.cfg.Load().diskMax, in.opts.Now().Add(-evidenceHoldback)); err != nil {
		in.log.Warn("evidence flush", "err", err)
	}
	f, err := os.Open(in.ev.path(addr))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("evidence of %s: %w", addr, err)
	}
	onDisk := err == nil
	rest, err := in.ev.pending(addr, !onDisk)
	if err != nil {
		if onDisk {
			f.Close()
		}
		return nil, err
	}
	if !onDisk {
		if len(rest) == 0 {
			return nil, fmt.Errorf("host %s: %w", addr, ErrNoEvidence)
		}
		return io.NopCloser(bytes.NewReader(rest)), nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(f, bytes.NewReader(rest)), f}, nil
}

// HasEvidence reports whether a pcap is kept for addr, without touching
// the disk (for listing many hosts).
func (in *Inspector) HasEvidence(addr netip.Addr) bool {
	return in.ev != nil && in.ev.has(addr.Unmap().WithZone(""))
}
