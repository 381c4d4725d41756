package export

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func appendN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append(time.Unix(int64(i), 0), []byte(fmt.Sprintf("record-%06d", i))); err != nil {
			t.Fatalf("Append(%d) = %v", i, err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

// readAll reads everything from the cursor on, advancing after each
// batch as a sender does, and returns the payloads.
func readAll(t *testing.T, s *Spool, advance bool) []string {
	t.Helper()
	var out []string
	for {
		items, err := s.Read(7, 1<<20)
		if err != nil {
			t.Fatalf("Read = %v", err)
		}
		if len(items) == 0 {
			return out
		}
		for _, it := range items {
			out = append(out, string(it.Data))
		}
		if !advance {
			return out
		}
		if err := s.Advance(items[len(items)-1].Next, false); err != nil {
			t.Fatal(err)
		}
	}
}

func names(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("record-%06d", i))
	}
	return out
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestSpoolBoundedOldestDropped: the spool never takes more than its
// bound on disk; when full, the oldest unsent records go, counted, and
// the newest are all there, in order.
func TestSpoolBoundedOldestDropped(t *testing.T) {
	dir := t.TempDir()
	const bound = 256 << 10 // 64 KiB segments
	s, err := OpenSpool(dir, bound)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 20000 // 29 octets each on disk: 580 KB, more than twice the bound
	appendN(t, s, 0, n)
	if got := dirBytes(t, dir); got > bound {
		t.Errorf("spool takes %d octets on disk, want at most %d", got, bound)
	}
	st := s.Stats()
	got := readAll(t, s, true)
	if uint64(len(got))+st.Lost != n {
		t.Errorf("read %d + lost %d = %d, want %d: every record is either sent or counted", len(got), st.Lost, uint64(len(got))+st.Lost, n)
	}
	if st.Lost == 0 {
		t.Errorf("Lost = 0, want the oldest records counted as lost")
	}
	want := names(n-len(got), n)
	if len(got) == 0 || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
		t.Errorf("read %d records %v..., want the newest %d in order", len(got), got[:min(3, len(got))], len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d = %s, want %s", i, got[i], want[i])
		}
	}
	if st.Oldest != time.Unix(int64(n-len(got)), 0) {
		t.Errorf("Stats().Oldest = %v, want the time of the oldest kept record %v", st.Oldest, time.Unix(int64(n-len(got)), 0))
	}
	if st := s.Stats(); st.Unsent != 0 || !st.Oldest.IsZero() {
		t.Errorf("after reading all: Stats() = %+v, want nothing unsent", st)
	}
}

// TestSpoolCursorPersists: a reopened spool resumes after the last
// advanced record: nothing sent twice, nothing skipped.
func TestSpoolCursorPersists(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 100)
	items, err := s.Read(40, 1<<20)
	if err != nil || len(items) != 40 {
		t.Fatalf("Read(40) = %d items, %v", len(items), err)
	}
	if err := s.Advance(items[39].Next, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // persists the cursor
		t.Fatal(err)
	}
	s, err = OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 100, 10)
	got := readAll(t, s, true)
	if len(got) != 70 || got[0] != "record-000040" || got[69] != "record-000109" {
		t.Errorf("after reopen read %d records (%v ... ), want record-000040..record-000109", len(got), got[:min(2, len(got))])
	}
	s.Close()
}

// TestSpoolCrashBeforeCursor: a crash between a successful send and the
// cursor's write sends those records again (at least once), never skips
// them; a torn record at the end is cut off and later records follow.
func TestSpoolCrashBeforeCursor(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 50)
	items, _ := s.Read(20, 1<<20)
	if err := s.Advance(items[19].Next, true); err != nil { // persisted at 20
		t.Fatal(err)
	}
	items, _ = s.Read(10, 1<<20)
	if err := s.Advance(items[9].Next, false); err != nil { // sent 30, not persisted
		t.Fatal(err)
	}
	// The crash: no Close; a torn write at the end of the segment.
	seg := filepath.Join(dir, fmt.Sprintf("%020d%s", 1, segSuffix))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 0, 40, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s2, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	appendN(t, s2, 50, 5)
	got := readAll(t, s2, true)
	want := names(20, 55)
	if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
		t.Errorf("after crash read %d records %v..%v, want %d: %s..%s (records 20-29 again, none lost, the torn one gone)",
			len(got), got[:min(1, len(got))], got[max(0, len(got)-1):], len(want), want[0], want[len(want)-1])
	}
}
