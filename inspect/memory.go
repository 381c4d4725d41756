package inspect

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
	"unsafe"
)

// flowOverhead is what a tracked flow costs before it buffers anything:
// the flow and its parser, its slot in the flow table and the closure
// that counts its messages.
const flowOverhead = int(unsafe.Sizeof(flow{})+unsafe.Sizeof(Conversation{})) + 160

// shedLogInterval bounds the warnings about shed flows.
const shedLogInterval = time.Minute

// maxShedKeys bounds the shed connections remembered, so that their later
// segments are not taken up again as new flows (each would be counted as
// one more attempt and grow again).
const maxShedKeys = 4096

// meter charges the buffers of one flow (reassembly, line buffers, DATA
// hold, envelope) to passive inspection's memory budget. A nil meter
// does not bound anything (the parser on its own, in tests).
type meter interface {
	// take reserves n more bytes; false: over budget, the buffer must not
	// grow (the flow is being shed).
	take(n int) bool
	// give returns n bytes no longer held.
	give(n int)
}

func take(m meter, n int) bool { return m == nil || n <= 0 || m.take(n) }

func give(m meter, n int) {
	if m != nil && n > 0 {
		m.give(n)
	}
}

// appendCharged appends v to s. When s is full it moves to an array of
// its own, up to limit elements, whose size in bytes is charged to m
// (*charged holds what the slice is charged now). False: no memory, s is
// unchanged.
func appendCharged[T any](m meter, s []T, v T, limit int, charged *int) ([]T, bool) {
	if len(s) < cap(s) {
		return append(s, v), true
	}
	n := min(limit, max(8, 2*len(s)))
	if n <= len(s) {
		return s, false
	}
	size := n * int(unsafe.Sizeof(v))
	if size > *charged && !take(m, size-*charged) {
		return s, false
	}
	give(m, *charged-size)
	*charged = size
	ns := make([]T, len(s), n)
	copy(ns, s)
	return append(ns, v), true
}

// growBytes makes room for n more bytes in buf, moving it to a larger
// array of at most limit bytes whose new capacity is charged to m. False:
// no memory, buf is unchanged.
func growBytes(m meter, buf []byte, n, limit int) ([]byte, bool) {
	need := len(buf) + n
	if need <= cap(buf) {
		return buf, true
	}
	c := min(limit, max(need, 2*cap(buf), 64))
	if !take(m, c-cap(buf)) {
		return buf, false
	}
	nb := make([]byte, len(buf), c)
	copy(nb, buf)
	return nb, true
}

// memory is the byte budget of all flows together. The decoder's lock
// guards it.
type memory struct {
	used  int
	bySrc map[netip.Addr]int // bytes per source (an IPv4 address, an IPv6 /64)
	// lastLog is when shedding was last logged; shedSince counts flows
	// shed since.
	lastLog   time.Time
	shedSince int
	// gone holds the shed connections still sending, with their last
	// packet's time.
	gone map[flowKey]time.Time
}

// wasShed reports whether a packet without a tracked flow belongs to a
// connection shed before: it is ignored until the connection ends, or a
// new one (a SYN) takes the same ports.
func (m *memory) wasShed(a, b netip.AddrPort, fromClient, syn, end bool, t time.Time) bool {
	if len(m.gone) == 0 {
		return false
	}
	key := flowKey{a, b}
	if !fromClient {
		key = flowKey{b, a}
	}
	if _, ok := m.gone[key]; !ok {
		return false
	}
	if syn || end {
		delete(m.gone, key)
		return !syn
	}
	m.gone[key] = t
	return true
}

// forget drops the shed connections silent since before cutoff.
func (m *memory) forget(cutoff time.Time) {
	for k, t := range m.gone {
		if t.Before(cutoff) {
			delete(m.gone, k)
		}
	}
}

// sourceKey is the unit the budget is shared by: one LAN host, an IPv4
// address or an IPv6 /64 (a host rotating its IPv6 addresses is one).
func sourceKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a.Unmap()
}

// take charges n bytes to the flow; over the budget it sheds flows first.
func (f *flow) take(n int) bool { return f.in.charge(f, n) }

// give returns n bytes of the flow to the budget.
func (f *flow) give(n int) { f.in.uncharge(f, n) }

var _ meter = (*flow)(nil)

func (in *Inspector) memMax() int { return in.cfg.Load().memMax }

// charge reserves n bytes for f. When the budget would overflow, flows are
// shed until it fits; if f itself is the one to shed (or nothing else
// can be), the reservation fails and f is marked to be shed.
func (in *Inspector) charge(f *flow, n int) bool {
	if f.shed {
		return false
	}
	if m := in.memMax(); in.mem.used+n > m && !in.makeRoom(f, n, m) {
		f.shed = true
		return false
	}
	in.mem.used += n
	f.mem += n
	in.mem.bySrc[f.src] += n
	in.st.memBytes.Store(int64(in.mem.used))
	return true
}

func (in *Inspector) uncharge(f *flow, n int) {
	n = min(n, f.mem)
	if n <= 0 {
		return
	}
	in.mem.used -= n
	f.mem -= n
	if left := in.mem.bySrc[f.src] - n; left > 0 {
		in.mem.bySrc[f.src] = left
	} else {
		delete(in.mem.bySrc, f.src)
	}
	in.st.memBytes.Store(int64(in.mem.used))
}

// makeRoom sheds tracked flows until n more bytes fit under limit, and a
// sixteenth of the budget more when it can, so that a flood does not
// trigger a search at every packet. The victims are the flows of the source
// holding the most, largest first, then the longest idle, until it no
// longer holds more than the next source: one host flooding cannot make
// others lose theirs. It reports false when cur is the flow to shed, or
// when nothing can be shed.
func (in *Inspector) makeRoom(cur *flow, n, limit int) bool {
	if n > limit {
		return false
	}
	low := limit - limit/16
	if n > low {
		low = limit
	}
	for in.mem.used+n > low {
		src, next := in.heaviest()
		victims := in.flowsOf(src)
		if len(victims) == 0 {
			break // the source's bytes belong to flows being ended
		}
		for _, v := range victims {
			if v == cur {
				return false
			}
			in.shedFlow(v)
			if in.mem.used+n <= low || in.mem.bySrc[src] < next {
				break
			}
		}
	}
	return in.mem.used+n <= limit
}

// heaviest returns the source holding the most bytes in tracked flows, and
// what the next one holds.
func (in *Inspector) heaviest() (src netip.Addr, next int) {
	first := -1
	for k, b := range in.mem.bySrc {
		switch {
		case b > first || b == first && k.Less(src):
			// first >= next always: the old first becomes the next.
			next, first, src = max(first, 0), b, k
		case b > next:
			next = b
		}
	}
	return src, next
}

// flowsOf returns the tracked flows of src, largest first, then longest
// idle. Without any (the source's bytes are those of flows being ended),
// every tracked flow is a candidate.
func (in *Inspector) flowsOf(src netip.Addr) []*flow {
	var out []*flow
	for _, f := range in.flows {
		if f.src == src {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		for _, f := range in.flows {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b *flow) int {
		return cmp.Or(cmp.Compare(b.mem, a.mem), a.last.Compare(b.last))
	})
	return out
}

// shedFlow ends a flow to free its memory: it is reported as far as it was
// parsed, marked as shed, and counted.
func (in *Inspector) shedFlow(f *flow) {
	f.shed = true
	in.endFlow(f, in.clock)
}

// release returns everything f holds to the budget and counts it when it
// was shed.
func (in *Inspector) release(f *flow) {
	in.uncharge(f, f.mem)
	if !f.shed {
		return
	}
	in.st.memShed.Add(1)
	in.mem.shedSince++
	if len(in.mem.gone) < maxShedKeys {
		in.mem.gone[f.key] = f.last
	}
	now := in.opts.Now()
	if now.Sub(in.mem.lastLog) >= shedLogInterval {
		in.log.Warn("inspection memory budget full: flows shed, their hosts not fully inspected",
			"client", f.key.cli.Addr(), "shed", in.mem.shedSince, "memory_bytes", in.mem.used, "budget_bytes", in.memMax())
		in.mem.lastLog, in.mem.shedSince = now, 0
	}
}
