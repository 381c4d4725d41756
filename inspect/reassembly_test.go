package inspect

import "testing"

func TestStream(t *testing.T) {
	type seg struct {
		off  uint32
		data string
	}
	tests := []struct {
		name     string
		segs     []seg
		mem      int // shared budget; 0: unbounded
		want     string
		wantGaps int
	}{
		{"in order", []seg{{0, "MAIL "}, {5, "FROM"}}, 0, "MAIL FROM", 0},
		{"retransmission", []seg{{0, "MAIL "}, {0, "MAIL "}, {5, "FROM"}, {3, "L FR"}}, 0, "MAIL FROM", 0},
		{"overlap", []seg{{0, "MAI"}, {1, "AIL FR"}, {5, "FROM"}}, 0, "MAIL FROM", 0},
		{"out of order", []seg{{5, "FROM"}, {3, "L "}, {0, "MAI"}}, 0, "MAIL FROM", 0},
		{"hole skipped at the end", []seg{{0, "MAIL"}, {7, "OM"}}, 0, "MAILOM", 1},
		{"budget full skips the hole", []seg{{0, "AB"}, {4, "EF"}, {8, "IJ"}}, 3, "ABEFIJ", 2},
		{"budget room buffers", []seg{{0, "AB"}, {4, "EF"}, {8, "IJ"}, {2, "CD"}, {6, "GH"}}, 1024, "ABCDEFGHIJ", 0},
		{"wrapping sequence numbers", []seg{{0, "DATA"}}, 0, "DATA", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isn := uint32(1000)
			if tt.name == "wrapping sequence numbers" {
				isn = 0xfffffffe
			}
			var s stream
			var m *fakeMeter
			if tt.mem > 0 {
				m = &fakeMeter{max: tt.mem}
				s.mem = m
			}
			s.syn(isn)
			var got string
			gaps := 0
			deliver := func(p []byte) { got += string(p) }
			gap := func() { gaps++ }
			for _, sg := range tt.segs {
				s.segment(isn+1+sg.off, []byte(sg.data), deliver, gap)
			}
			s.flush(deliver, gap)
			if got != tt.want || gaps != tt.wantGaps {
				t.Errorf("delivered %q with %d gaps, want %q with %d", got, gaps, tt.want, tt.wantGaps)
			}
			// What stays charged is the segment list's array, until the
			// flow ends.
			if m != nil && m.used != s.oooCap {
				t.Errorf("budget used = %d after flush, want %d (the segment list)", m.used, s.oooCap)
			}
		})
	}
}

// fakeMeter is a budget of its own for one stream or parser.
type fakeMeter struct{ used, max int }

func (m *fakeMeter) take(n int) bool {
	if m.used+n > m.max {
		return false
	}
	m.used += n
	return true
}

func (m *fakeMeter) give(n int) { m.used -= n }
