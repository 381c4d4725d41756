package neighbor

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Filter returns the classic BPF program a capture socket runs: it passes
// LLDP (ethertype 0x88cc, to any of its group addresses) and frames to
// CDP's multicast address 01:00:0c:cc:cc:cc, and drops everything else in
// the kernel, so the box's bridged traffic never reaches user space here.
func Filter() ([]bpf.RawInstruction, error) {
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},                             // 0: ethertype
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x88cc, SkipTrue: 4},      // 1: LLDP -> accept
		bpf.LoadAbsolute{Off: 0, Size: 4},                              // 2: destination, first 4 octets
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x01000ccc, SkipFalse: 3}, // 3: -> drop
		bpf.LoadAbsolute{Off: 4, Size: 2},                              // 4: destination, last 2 octets
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xcccc, SkipFalse: 1},     // 5: -> drop
		bpf.RetConstant{Val: 0x40000},                                  // 6: accept (whole frame; MSG_TRUNC tells the size)
		bpf.RetConstant{Val: 0},                                        // 7: drop
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("neighbor bpf filter: %w", err)
	}
	return raw, nil
}
