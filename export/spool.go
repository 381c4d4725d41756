package export

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relaygate/relaygate/internal/atomicfile"
)

// A spool is a directory of append-only segment files, NNNNNNNNNNNNNNNNNNNN.seg,
// and a cursor file naming the next unsent record (segment and offset).
// A record on disk is a frame: length (4 octets, big endian), CRC-32C of
// time and payload (4), time in Unix nanoseconds (8), payload. A torn frame
// at the end of the newest segment (a crash during a write) is cut off
// when the spool is opened.
const (
	frameHeader = 16
	segSuffix   = ".seg"
	cursorFile  = "cursor"
	// maxFrame bounds one payload; longer lines are refused by Append.
	maxFrame = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge: a record larger than maxFrame or than the whole spool.
var ErrTooLarge = errors.New("record larger than the spool allows")

// Pos is a position in the spool: a segment and an offset in it.
type Pos struct {
	Seg uint64
	Off int64
}

// Item is one spooled record, with the position just after it.
type Item struct {
	Time time.Time
	Data []byte
	Next Pos
}

// Spool is a bounded on-disk queue with one reader. Append and Sync are
// called by one writer, Read and Advance by one reader; both may run at
// once.
type Spool struct {
	dir      string
	maxBytes int64
	segBytes int64

	mu     sync.Mutex
	segs   []uint64         // oldest first; the last is the one appended to
	sizes  map[uint64]int64 // octets of each segment
	total  int64
	w      *os.File // the newest segment, open for append
	cursor Pos
	// lost counts records dropped unsent because the spool was full.
	lost uint64
	// dirty: written since the last Sync.
	dirty bool
}

// OpenSpool opens (creating) the spool in dir, bounded to maxBytes on
// disk. It resumes from the persisted cursor; an unreadable cursor starts
// from the oldest record (records may be sent twice, never lost).
func OpenSpool(dir string, maxBytes int64) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, sizes: map[uint64]int64{}}
	s.segBytes = min(max(maxBytes/16, 64<<10), 8<<20)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			continue
		}
		s.segs = append(s.segs, seq)
	}
	slices.Sort(s.segs)
	for _, seq := range s.segs {
		fi, err := os.Stat(s.segPath(seq))
		if err != nil {
			return nil, fmt.Errorf("spool %s: %w", dir, err)
		}
		s.sizes[seq] = fi.Size()
		s.total += fi.Size()
	}
	if len(s.segs) == 0 {
		s.segs = []uint64{1}
		s.sizes[1] = 0
	}
	last := s.segs[len(s.segs)-1]
	if err := s.repair(last); err != nil {
		return nil, err
	}
	if s.w, err = os.OpenFile(s.segPath(last), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s.cursor = s.readCursor()
	s.clampCursor()
	return s, nil
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, segSuffix))
}

// repair cuts a torn frame off the end of segment seq.
func (s *Spool) repair(seq uint64) error {
	f, err := os.OpenFile(s.segPath(seq), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("spool %s: %w", s.dir, err)
	}
	defer f.Close()
	var off int64
	for {
		_, n, err := readFrame(f, off)
		if err != nil {
			break
		}
		off += n
	}
	if off != s.sizes[seq] {
		if err := f.Truncate(off); err != nil {
			return fmt.Errorf("spool %s: cut torn record: %w", s.dir, err)
		}
		s.total += off - s.sizes[seq]
		s.sizes[seq] = off
	}
	return nil
}

// readFrame reads the frame at off; n is its size on disk.
func readFrame(r io.ReaderAt, off int64) (it Item, n int64, err error) {
	var h [frameHeader]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return Item{}, 0, err
	}
	size := binary.BigEndian.Uint32(h[0:4])
	if size > maxFrame {
		return Item{}, 0, fmt.Errorf("frame at %d: length %d: %w", off, size, io.ErrUnexpectedEOF)
	}
	buf := make([]byte, 8+int(size))
	copy(buf, h[8:16])
	if _, err := r.ReadAt(buf[8:], off+frameHeader); err != nil {
		return Item{}, 0, fmt.Errorf("frame at %d: %w", off, io.ErrUnexpectedEOF)
	}
	if crc32.Checksum(buf, crcTable) != binary.BigEndian.Uint32(h[4:8]) {
		return Item{}, 0, fmt.Errorf("frame at %d: checksum: %w", off, io.ErrUnexpectedEOF)
	}
	t := time.Unix(0, int64(binary.BigEndian.Uint64(h[8:16])))
	return Item{Time: t, Data: buf[8:]}, frameHeader + int64(size), nil
}

// Append adds one record to the spool (not yet synced). When the spool
// would exceed its bound, the oldest segments are dropped; their unsent
// records are counted in Lost.
func (s *Spool) Append(t time.Time, data []byte) error {
	n := int64(frameHeader + len(data))
	if len(data) > maxFrame || n > s.maxBytes/2 {
		return ErrTooLarge
	}
	frame := make([]byte, n)
	binary.BigEndian.PutUint32(frame[0:4], uint32(len(data)))
	binary.BigEndian.PutUint64(frame[8:16], uint64(t.UnixNano()))
	copy(frame[16:], data)
	binary.BigEndian.PutUint32(frame[4:8], crc32.Checksum(frame[8:], crcTable))

	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.segs[len(s.segs)-1]
	if s.sizes[last] > 0 && s.sizes[last]+n > s.segBytes {
		if err := s.rotate(); err != nil {
			return err
		}
		last = s.segs[len(s.segs)-1]
	}
	for s.total+n > s.maxBytes && len(s.segs) > 1 {
		s.dropOldest()
	}
	if _, err := s.w.Write(frame); err != nil {
		return fmt.Errorf("spool %s: append: %w", s.dir, err)
	}
	s.sizes[last] += n
	s.total += n
	s.dirty = true
	return nil
}

// rotate starts a new segment. Called with mu held.
func (s *Spool) rotate() error {
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("spool %s: sync: %w", s.dir, err)
	}
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("spool %s: close segment: %w", s.dir, err)
	}
	seq := s.segs[len(s.segs)-1] + 1
	f, err := os.OpenFile(s.segPath(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool %s: new segment: %w", s.dir, err)
	}
	s.w = f
	s.segs = append(s.segs, seq)
	s.sizes[seq] = 0
	return nil
}

// dropOldest deletes the oldest segment, counting its unsent records.
// Called with mu held and at least two segments.
func (s *Spool) dropOldest() {
	seq := s.segs[0]
	if s.cursor.Seg <= seq {
		s.lost += s.countFrom(seq, s.cursor.Off)
		s.cursor = Pos{Seg: s.segs[1]}
	}
	_ = os.Remove(s.segPath(seq))
	s.total -= s.sizes[seq]
	delete(s.sizes, seq)
	s.segs = s.segs[1:]
}

// countFrom counts the frames of segment seq from off on.
func (s *Spool) countFrom(seq uint64, off int64) uint64 {
	f, err := os.Open(s.segPath(seq))
	if err != nil {
		return 0
	}
	defer f.Close()
	var c uint64
	for {
		_, n, err := readFrame(f, off)
		if err != nil {
			return c
		}
		off += n
		c++
	}
}

// Sync makes the appended records durable: one fsync per batch of
// appends.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	s.dirty = false
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("spool %s: sync: %w", s.dir, err)
	}
	return nil
}

// Read returns up to max records (at most maxBytes of payload, but at
// least one) from the cursor on, without advancing it.
func (s *Spool) Read(max int, maxBytes int) ([]Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	size := 0
	pos := s.cursor
	for len(out) < max {
		if _, ok := s.sizes[pos.Seg]; !ok {
			break
		}
		if pos.Off >= s.sizes[pos.Seg] {
			if pos.Seg == s.segs[len(s.segs)-1] {
				break
			}
			pos = Pos{Seg: s.next(pos.Seg)}
			continue
		}
		f, err := os.Open(s.segPath(pos.Seg))
		if err != nil {
			return out, fmt.Errorf("spool %s: read: %w", s.dir, err)
		}
		for len(out) < max && pos.Off < s.sizes[pos.Seg] {
			it, n, err := readFrame(f, pos.Off)
			if err != nil {
				f.Close()
				return out, fmt.Errorf("spool %s: read segment %d: %w", s.dir, pos.Seg, err)
			}
			if len(out) > 0 && size+len(it.Data) > maxBytes {
				f.Close()
				return out, nil
			}
			pos.Off += n
			it.Next = pos
			out = append(out, it)
			size += len(it.Data)
		}
		f.Close()
	}
	return out, nil
}

// next is the segment after seq. Called with mu held.
func (s *Spool) next(seq uint64) uint64 {
	i, _ := slices.BinarySearch(s.segs, seq)
	if i+1 < len(s.segs) {
		return s.segs[i+1]
	}
	return seq
}

// Advance moves the cursor to p (an Item's Next) and deletes the segments
// wholly before it. When a segment was dropped under the reader (the
// spool was full), the cursor stays where dropOldest put it. persist
// writes the cursor file too.
func (s *Spool) Advance(p Pos, persist bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Seg < s.cursor.Seg || (p.Seg == s.cursor.Seg && p.Off < s.cursor.Off) {
		return nil
	}
	s.cursor = p
	for len(s.segs) > 1 && s.segs[0] < p.Seg {
		seq := s.segs[0]
		_ = os.Remove(s.segPath(seq))
		s.total -= s.sizes[seq]
		delete(s.sizes, seq)
		s.segs = s.segs[1:]
	}
	if persist {
		return s.writeCursor()
	}
	return nil
}

// Persist writes the cursor file.
func (s *Spool) Persist() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeCursor()
}

// writeCursor saves the cursor atomically (temp file, fsync, rename).
// The sender persists it at most every cursorEvery and on Close: after a
// crash the cursor may go back, and records are sent again (at least
// once), never skipped. Called with mu held.
func (s *Spool) writeCursor() error {
	body := fmt.Sprintf("%d %d\n", s.cursor.Seg, s.cursor.Off)
	if err := atomicfile.Write(filepath.Join(s.dir, cursorFile), []byte(body), 0o600); err != nil {
		return fmt.Errorf("spool %s: cursor: %w", s.dir, err)
	}
	return nil
}

func (s *Spool) readCursor() Pos {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorFile))
	if err != nil {
		return Pos{}
	}
	var p Pos
	if _, err := fmt.Sscanf(string(b), "%d %d", &p.Seg, &p.Off); err != nil {
		return Pos{}
	}
	return p
}

// clampCursor moves a cursor that points before the oldest segment, or
// past the end of its own, to a valid position.
func (s *Spool) clampCursor() {
	if s.cursor.Seg < s.segs[0] {
		s.cursor = Pos{Seg: s.segs[0]}
		return
	}
	if size, ok := s.sizes[s.cursor.Seg]; !ok || s.cursor.Off > size {
		// A segment we do not have, or a cursor beyond a cut torn
		// record: resume at the next segment's start, or the end.
		for _, seq := range s.segs {
			if seq > s.cursor.Seg {
				s.cursor = Pos{Seg: seq}
				return
			}
		}
		last := s.segs[len(s.segs)-1]
		s.cursor = Pos{Seg: last, Off: s.sizes[last]}
	}
}

// Stats is a spool's state for metrics and the System page.
type Stats struct {
	// Unsent is the octets on disk from the cursor on.
	Unsent int64
	// Disk is the octets of all segments.
	Disk int64
	// Oldest is the time of the oldest unsent record; zero when none.
	Oldest time.Time
	// Lost counts records dropped unsent because the spool was full.
	Lost uint64
}

// Stats returns the spool's state.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Disk: s.total, Lost: s.lost}
	for _, seq := range s.segs {
		switch {
		case seq == s.cursor.Seg:
			st.Unsent += s.sizes[seq] - s.cursor.Off
		case seq > s.cursor.Seg:
			st.Unsent += s.sizes[seq]
		}
	}
	if st.Unsent > 0 {
		pos := s.cursor
		if pos.Off >= s.sizes[pos.Seg] {
			pos = Pos{Seg: s.next(pos.Seg)}
		}
		if f, err := os.Open(s.segPath(pos.Seg)); err == nil {
			if it, _, err := readFrame(f, pos.Off); err == nil {
				st.Oldest = it.Time
			}
			f.Close()
		}
	}
	return st
}

// Close syncs and closes the spool, persisting the cursor.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.w.Sync(), s.w.Close(), s.writeCursor())
}
