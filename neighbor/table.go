package neighbor

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// minTTL keeps a neighbour that announced a tiny TTL visible for a
// moment; a TTL of 0 (LLDP shutdown) removes it.
const minTTL = 10 * time.Second

// Table holds the latest neighbour per port. LLDP is preferred: while a
// port's LLDP neighbour is live, CDP frames on that port (a Cisco switch
// sends both) do not replace it. Safe for concurrent use.
type Table struct {
	now func() time.Time

	mu      sync.Mutex
	byIface map[string]Neighbor

	frames, garbage, oversize atomic.Uint64
}

// NewTable returns an empty table; now is the clock (nil: time.Now).
func NewTable(now func() time.Time) *Table {
	if now == nil {
		now = time.Now
	}
	return &Table{now: now, byIface: map[string]Neighbor{}}
}

// Handle decodes a frame received on iface (the port on side inside or
// outside) and keeps its neighbour. A frame that does not decode is
// counted and ignored; it reports whether the frame was kept.
func (t *Table) Handle(iface, side string, frame []byte) bool {
	t.frames.Add(1)
	if len(frame) > MaxFrame {
		t.oversize.Add(1)
		return false
	}
	n, err := Decode(frame)
	if err != nil {
		t.garbage.Add(1)
		return false
	}
	t.Put(iface, side, n)
	return true
}

// Put records n as the neighbour heard on iface (side inside or outside),
// seen now; Handle calls it for every decoded frame.
func (t *Table) Put(iface, side string, n Neighbor) {
	now := t.now()
	n.Interface, n.Side, n.SeenAt = iface, side, now.UTC()
	ttl := time.Duration(n.TTL) * time.Second
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.byIface[iface]
	if n.TTL == 0 {
		// LLDP shutdown: the device leaves (CDP's TTL is never 0 in practice).
		if had && old.Protocol == n.Protocol && old.ChassisID == n.ChassisID {
			delete(t.byIface, iface)
		}
		return
	}
	if had && old.Protocol == LLDP && n.Protocol == CDP && now.Before(old.ExpiresAt) {
		return
	}
	n.ExpiresAt = n.SeenAt.Add(max(ttl, minTTL))
	t.byIface[iface] = n
}

// Neighbors returns the live neighbours, inside port first.
func (t *Table) Neighbors() []Neighbor {
	now := t.now()
	t.mu.Lock()
	out := make([]Neighbor, 0, len(t.byIface))
	for k, n := range t.byIface {
		if !now.Before(n.ExpiresAt) {
			delete(t.byIface, k)
			continue
		}
		out = append(out, n)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Side != out[j].Side {
			return out[i].Side < out[j].Side // inside < outside
		}
		return out[i].Interface < out[j].Interface
	})
	return out
}

// Stats are the frames the table was given.
type Stats struct {
	// Frames is every frame handed to Handle.
	Frames uint64 `json:"frames"`
	// Garbage is frames that did not decode as LLDP or CDP.
	Garbage uint64 `json:"garbage"`
	// Oversize is frames larger than MaxFrame.
	Oversize uint64 `json:"oversize"`
}

// Stats returns the counters since NewTable.
func (t *Table) Stats() Stats {
	return Stats{Frames: t.frames.Load(), Garbage: t.garbage.Load(), Oversize: t.oversize.Load()}
}

// Collectors returns the table's Prometheus metrics.
func (t *Table) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "relaygate_neighbor_frames_total", Help: "LLDP and CDP frames received on the bridge ports.",
		}, func() float64 { return float64(t.frames.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "relaygate_neighbor_garbage_frames_total", Help: "LLDP and CDP frames ignored: undecodable or larger than 1600 octets.",
		}, func() float64 { return float64(t.garbage.Load() + t.oversize.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relaygate_neighbors", Help: "Live LLDP/CDP neighbours of the bridge ports.",
		}, func() float64 { return float64(len(t.Neighbors())) }),
	}
}
