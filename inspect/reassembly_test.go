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
		{"wrapping sequence numbers", []seg{{0, "DATA"}}, 0, "DATA", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isn := uint32(1000)
			if tt.name == "wrapping sequence numbers" {
				isn = 0xfffffffe
			}
			var s stream
			if tt.mem > 0 {
				s.mem = &budget{max: tt.mem}
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
			if s.mem != nil && s.mem.used != 0 {
				t.Errorf("budget used = %d after flush, want 0", s.mem.used)
			}
		})
	}
}
