package inspect

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Filter returns a classic BPF program, assembled ahead of time in Go (no
// libpcap, no cgo), that accepts TCP segments from or to any of ports over
// IPv4 or IPv6, untagged or with one 802.1Q/802.1ad tag, and rejects
// everything else. Linux AF_PACKET usually strips a VLAN tag into
// auxiliary data before the filter runs, so the untagged path matches
// those frames; the tagged path matches frames whose tag is still inline.
// IPv4 fragments after the first and IPv6 extension headers are not
// matched. With kernelOnly set, the program first drops frames the host
// sends itself (pkttype OUTGOING), so that a frame bridged from one port to
// the other is seen once, on the port it entered by; the bpf.VM cannot run
// that instruction, so tests build the program without it.
func Filter(ports []uint16, kernelOnly bool) ([]bpf.RawInstruction, error) {
	if len(ports) == 0 || len(ports) > 64 {
		return nil, fmt.Errorf("bpf filter: %d ports (want 1 to 64)", len(ports))
	}
	a := &asm{}
	const packetOutgoing = 4 // PACKET_OUTGOING, linux/if_packet.h
	if kernelOnly {
		a.op(bpf.LoadExtension{Num: bpf.ExtType})
		a.jeq(packetOutgoing, "drop", "")
	}
	a.op(bpf.LoadAbsolute{Off: 12, Size: 2})
	a.jeq(0x8100, "vlan", "")
	a.jeq(0x88a8, "vlan", "")
	a.jeq(0x0800, "ip4_14", "")
	a.jeq(0x86dd, "ip6_14", "drop")
	a.label("vlan")
	a.op(bpf.LoadAbsolute{Off: 16, Size: 2})
	a.jeq(0x0800, "ip4_18", "")
	a.jeq(0x86dd, "ip6_18", "drop")
	for _, off := range []uint32{14, 18} {
		a.label(fmt.Sprintf("ip4_%d", off))
		a.op(bpf.LoadAbsolute{Off: off + 9, Size: 1})
		a.jeq(6, "", "drop") // IPPROTO_TCP
		a.op(bpf.LoadAbsolute{Off: off + 6, Size: 2})
		a.jset(0x1fff, "drop", "") // a later fragment has no TCP header
		a.op(bpf.LoadMemShift{Off: off})
		a.op(bpf.LoadIndirect{Off: off, Size: 2})
		a.ports(ports)
		a.op(bpf.LoadIndirect{Off: off + 2, Size: 2})
		a.ports(ports)
		a.jmp("drop")
		a.label(fmt.Sprintf("ip6_%d", off))
		a.op(bpf.LoadAbsolute{Off: off + 6, Size: 1})
		a.jeq(6, "", "drop")
		a.op(bpf.LoadAbsolute{Off: off + 40, Size: 2})
		a.ports(ports)
		a.op(bpf.LoadAbsolute{Off: off + 42, Size: 2})
		a.ports(ports)
		a.jmp("drop")
	}
	a.label("accept")
	a.op(bpf.RetConstant{Val: 0x40000})
	a.label("drop")
	a.op(bpf.RetConstant{Val: 0})
	prog, err := a.assemble()
	if err != nil {
		return nil, fmt.Errorf("bpf filter: %w", err)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("bpf filter: %w", err)
	}
	return raw, nil
}

// asm is a tiny assembler with symbolic jump targets ("" is the next
// instruction).
type asm struct {
	ins    []asmIns
	labels map[string]int
}

type asmIns struct {
	op     bpf.Instruction
	cond   bpf.JumpTest
	val    uint32
	jt, jf string
	kind   int // 0 plain, 1 conditional, 2 unconditional
}

func (a *asm) op(i bpf.Instruction) { a.ins = append(a.ins, asmIns{op: i}) }
func (a *asm) jeq(v uint32, jt, jf string) {
	a.ins = append(a.ins, asmIns{cond: bpf.JumpEqual, val: v, jt: jt, jf: jf, kind: 1})
}
func (a *asm) jset(v uint32, jt, jf string) {
	a.ins = append(a.ins, asmIns{cond: bpf.JumpBitsSet, val: v, jt: jt, jf: jf, kind: 1})
}
func (a *asm) jmp(to string) { a.ins = append(a.ins, asmIns{jt: to, kind: 2}) }
func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

func (a *asm) ports(ports []uint16) {
	for _, p := range ports {
		a.jeq(uint32(p), "accept", "")
	}
}

func (a *asm) assemble() ([]bpf.Instruction, error) {
	skip := func(i int, to string) (uint32, error) {
		if to == "" {
			return 0, nil
		}
		t, ok := a.labels[to]
		if !ok || t <= i {
			return 0, fmt.Errorf("bad jump from %d to %q", i, to)
		}
		return uint32(t - i - 1), nil
	}
	out := make([]bpf.Instruction, len(a.ins))
	for i, in := range a.ins {
		switch in.kind {
		case 0:
			out[i] = in.op
		case 1:
			jt, err := skip(i, in.jt)
			if err != nil {
				return nil, err
			}
			jf, err := skip(i, in.jf)
			if err != nil {
				return nil, err
			}
			if jt > 255 || jf > 255 {
				return nil, fmt.Errorf("jump from %d too far", i)
			}
			out[i] = bpf.JumpIf{Cond: in.cond, Val: in.val, SkipTrue: uint8(jt), SkipFalse: uint8(jf)}
		case 2:
			s, err := skip(i, in.jt)
			if err != nil {
				return nil, err
			}
			out[i] = bpf.Jump{Skip: s}
		}
	}
	return out, nil
}
