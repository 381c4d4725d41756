package inspect

import "sort"

// maxOutOfOrder bounds the bytes a direction buffers ahead of a hole. When
// the hole is not filled in time it is skipped and reported as a gap.
const maxOutOfOrder = 64 << 10

// maxSegments bounds the number of buffered out-of-order segments.
const maxSegments = 256

type segment struct {
	seq  uint32
	data []byte
}

// stream reassembles one direction of a TCP flow: it delivers bytes in
// sequence order exactly once, drops retransmitted bytes, buffers segments
// that arrive early (bounded) and skips holes that are not filled.
type stream struct {
	started  bool
	next     uint32 // next expected sequence number
	ooo      []segment
	oooBytes int
	oooCap   int   // bytes of ooo's array, charged to mem
	mem      meter // the flow's share of the memory budget; nil: unbounded
	// Bytes counts delivered payload octets.
	Bytes int64
}

func seqLess(a, b uint32) bool { return int32(a-b) < 0 }

// syn records the initial sequence number: data starts at isn+1.
func (s *stream) syn(isn uint32) {
	if !s.started {
		s.started = true
		s.next = isn + 1
	}
}

// segment accepts one TCP payload at seq; deliver gets in-order bytes and
// gap is called when bytes were lost (a skipped hole, or the first data of
// a flow whose start was not seen).
func (s *stream) segment(seq uint32, data []byte, deliver func([]byte), gap func()) {
	if len(data) == 0 {
		return
	}
	if !s.started {
		// Mid-flow pickup: no SYN seen. Start here and let the parser resync.
		s.started = true
		s.next = seq
		gap()
	}
	seq, data, ok := s.trim(seq, data)
	if !ok {
		return // entirely old: a retransmission
	}
	if seq != s.next {
		for len(s.ooo) >= maxSegments || s.oooBytes+len(data) > maxOutOfOrder {
			if len(s.ooo) == 0 {
				// The segment alone is bigger than the buffer.
				s.next = seq
				gap()
				break
			}
			// Out of room: give up on the first hole.
			s.skip(deliver, gap)
			if seq, data, ok = s.trim(seq, data); !ok {
				return
			}
			if seq == s.next {
				break
			}
		}
		if seq != s.next && s.keep(seq, data) {
			return
		}
		if seq != s.next {
			// No memory to buffer it (the flow is being shed): give up on
			// every hole before it.
			s.flush(deliver, gap)
			if seq, data, ok = s.trim(seq, data); !ok {
				return
			}
			if seq != s.next {
				s.next = seq
				gap()
			}
		}
	}
	s.Bytes += int64(len(data))
	deliver(data)
	s.next = seq + uint32(len(data))
	s.drain(deliver)
}

// trim cuts what was already delivered off a segment (it overlaps);
// false: nothing of it is new.
func (s *stream) trim(seq uint32, data []byte) (uint32, []byte, bool) {
	if !seqLess(s.next, seq+uint32(len(data))) {
		return seq, nil, false
	}
	if seqLess(seq, s.next) {
		data = data[s.next-seq:]
		seq = s.next
	}
	return seq, data, true
}

// keep buffers a segment that arrived early, if the budget has room.
func (s *stream) keep(seq uint32, data []byte) bool {
	if !take(s.mem, len(data)) {
		return false
	}
	d := make([]byte, len(data))
	copy(d, data)
	ooo, ok := appendCharged(s.mem, s.ooo, segment{seq, d}, maxSegments, &s.oooCap)
	if !ok {
		give(s.mem, len(data))
		return false
	}
	s.ooo = ooo
	s.oooBytes += len(data)
	return true
}

// drain delivers buffered segments that have become contiguous.
func (s *stream) drain(deliver func([]byte)) {
	for len(s.ooo) > 0 {
		progressed := false
		kept := s.ooo[:0]
		for _, sg := range s.ooo {
			end := sg.seq + uint32(len(sg.data))
			switch {
			case !seqLess(s.next, end):
				s.oooBytes -= len(sg.data) // already covered
				give(s.mem, len(sg.data))
			case !seqLess(s.next, sg.seq):
				d := sg.data[s.next-sg.seq:]
				s.Bytes += int64(len(d))
				deliver(d)
				s.next = end
				s.oooBytes -= len(sg.data)
				give(s.mem, len(sg.data))
				progressed = true
			default:
				kept = append(kept, sg)
			}
		}
		clear(s.ooo[len(kept):]) // let the delivered segments' bytes go
		s.ooo = kept
		if !progressed {
			return
		}
	}
}

// skip jumps over the first hole: the earliest buffered segment becomes
// the next expected data.
func (s *stream) skip(deliver func([]byte), gap func()) {
	if len(s.ooo) == 0 {
		return
	}
	sort.Slice(s.ooo, func(i, j int) bool { return seqLess(s.ooo[i].seq, s.ooo[j].seq) })
	if seqLess(s.next, s.ooo[0].seq) {
		s.next = s.ooo[0].seq
		gap()
	}
	s.drain(deliver)
}

// flush delivers what is buffered, skipping holes, at the end of a flow.
func (s *stream) flush(deliver func([]byte), gap func()) {
	for len(s.ooo) > 0 {
		s.skip(deliver, gap)
	}
}
