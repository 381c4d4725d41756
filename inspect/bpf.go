package inspect

import (
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// MaxFilterRelays bounds the relay prefixes the kernel filter leaves out
// (FilterSpec.Relays). Each costs up to 4 instructions (IPv4) or 13 (IPv6)
// per direction, and the kernel takes at most bpfMaxInstructions. The
// inspector puts the broadest prefixes in the filter (FilterRelays) and
// leaves the rest out in user space: their segments still cross into the
// ring, but are dropped before reassembly.
const MaxFilterRelays = 64

// bpfMaxInstructions is the kernel's bound on a classic BPF program
// (BPF_MAXINSNS, linux/bpf_common.h).
const bpfMaxInstructions = 4096

// FilterSpec says what a capture filter passes.
type FilterSpec struct {
	// Ports are the SMTP ports, e.g. [25, 587]: TCP segments from or to
	// them pass.
	Ports []uint16
	// Relays, when set, are left out where the kernel diverts them to the
	// proxy (enforce mode, daemon serving): untagged segments from a relay
	// to one of Ports, except the client's SYN (flags SYN without ACK),
	// and untagged segments from one of Ports to a relay. At most
	// MaxFilterRelays, e.g. 10.10.0.25/32.
	Relays []netip.Prefix
	// KernelOnly builds the program for a live socket: frames the host
	// sends itself (pkttype OUTGOING) are dropped, so that a frame bridged
	// from one port to the other is seen once, on the port it entered by,
	// and a frame whose 802.1Q tag the kernel moved into metadata is told
	// from an untagged one. The bpf.VM cannot run those instructions, so
	// tests build the program without them.
	KernelOnly bool
}

// Filter returns a classic BPF program, assembled ahead of time in Go (no
// libpcap, no cgo), that accepts TCP segments from or to any of the spec's
// ports over IPv4 or IPv6, untagged or with one 802.1Q/802.1ad tag, and
// rejects everything else. Linux AF_PACKET usually strips a VLAN tag into
// auxiliary data before the filter runs, so the untagged path matches
// those frames; the tagged path matches frames whose tag is still inline.
// IPv4 fragments after the first and IPv6 extension headers are not
// matched.
//
// With Relays set, the relays' diverted segments are rejected too. The
// kernel diverts only untagged frames (a relay's tagged SMTP is bridged, as
// is its SMTP while the daemon is not serving), so tagged frames, inline or
// with the tag in metadata, always pass.
func Filter(spec FilterSpec) ([]bpf.RawInstruction, error) {
	ports := spec.Ports
	if len(ports) == 0 || len(ports) > 64 {
		return nil, fmt.Errorf("bpf filter: %d ports (want 1 to 64)", len(ports))
	}
	if len(spec.Relays) > MaxFilterRelays {
		return nil, fmt.Errorf("bpf filter: %d relay prefixes (at most %d)", len(spec.Relays), MaxFilterRelays)
	}
	var relays4, relays6 []netip.Prefix
	for _, p := range spec.Relays {
		if p.Addr().Is4() {
			relays4 = append(relays4, p.Masked())
		} else {
			relays6 = append(relays6, p.Masked())
		}
	}
	a := &asm{}
	const packetOutgoing = 4 // PACKET_OUTGOING, linux/if_packet.h
	if spec.KernelOnly {
		a.op(bpf.LoadExtension{Num: bpf.ExtType})
		a.jeqFar(packetOutgoing, "drop")
	}
	a.op(bpf.LoadAbsolute{Off: 12, Size: 2})
	a.jeq(0x8100, "vlan", "")
	a.jeq(0x88a8, "vlan", "")
	a.jeqFar(0x0800, "ip4_14")
	a.jeqFar(0x86dd, "ip6_14")
	a.jmp("drop")
	a.label("vlan")
	a.op(bpf.LoadAbsolute{Off: 16, Size: 2})
	a.jeqFar(0x0800, "ip4_18")
	a.jeqFar(0x86dd, "ip6_18")
	a.jmp("drop")
	for _, off := range []uint32{14, 18} {
		// Relays are left out on the untagged path only.
		var r4, r6 []netip.Prefix
		if off == 14 {
			r4, r6 = relays4, relays6
		}
		sec := fmt.Sprintf("ip4_%d", off)
		a.label(sec)
		a.op(bpf.LoadAbsolute{Off: off + 9, Size: 1})
		a.jneFar(6, "drop") // IPPROTO_TCP
		a.op(bpf.LoadAbsolute{Off: off + 6, Size: 2})
		a.jsetFar(0x1fff, "drop") // a later fragment has no TCP header
		a.op(bpf.LoadMemShift{Off: off})
		a.tcpPorts(sec, ports, bpf.LoadIndirect{Off: off, Size: 2}, bpf.LoadIndirect{Off: off + 2, Size: 2})
		a.relayChecks(sec, r4, spec.KernelOnly,
			func(next string) { a.inPrefix4(off+16, r4, next) }, // destination
			func(next string) { a.inPrefix4(off+12, r4, next) }, // source
			bpf.LoadIndirect{Off: off + 13, Size: 1})
		sec = fmt.Sprintf("ip6_%d", off)
		a.label(sec)
		a.op(bpf.LoadAbsolute{Off: off + 6, Size: 1})
		a.jneFar(6, "drop")
		a.tcpPorts(sec, ports, bpf.LoadAbsolute{Off: off + 40, Size: 2}, bpf.LoadAbsolute{Off: off + 42, Size: 2})
		a.relayChecks(sec, r6, spec.KernelOnly,
			func(next string) { a.inPrefix6(off+24, r6, next) },
			func(next string) { a.inPrefix6(off+8, r6, next) },
			bpf.LoadAbsolute{Off: off + 53, Size: 1})
	}
	a.label("accept")
	a.op(bpf.RetConstant{Val: 0x40000})
	a.label("drop")
	a.op(bpf.RetConstant{Val: 0})
	prog, err := a.assemble()
	if err != nil {
		return nil, fmt.Errorf("bpf filter: %w", err)
	}
	if len(prog) > bpfMaxInstructions {
		return nil, fmt.Errorf("bpf filter: %d instructions (the kernel takes %d)", len(prog), bpfMaxInstructions)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("bpf filter: %w", err)
	}
	return raw, nil
}

// tcpPorts loads the source port (sport) and jumps to sec+"_sport" when it
// is one of ports, else loads the destination port (dport) and jumps to
// sec+"_dport" when it is one of ports, else drops.
func (a *asm) tcpPorts(sec string, ports []uint16, sport, dport bpf.Instruction) {
	sportHit, dportHit := a.fresh(), a.fresh()
	a.op(sport)
	for _, p := range ports {
		a.jeq(uint32(p), sportHit, "")
	}
	a.op(dport)
	for _, p := range ports {
		a.jeq(uint32(p), dportHit, "")
	}
	a.jmp("drop")
	// The targets may be far: the source port's relay checks come first.
	a.label(sportHit)
	a.jmp(sec + "_sport")
	a.label(dportHit)
	a.jmp(sec + "_dport")
}

// relayChecks emits the targets of tcpPorts: a segment from an SMTP port
// to a relay (dstIn matches) is dropped; a segment from a relay (srcIn
// matches) to an SMTP port is dropped unless it is the client's SYN;
// anything else is accepted. Without relays both accept. dstIn and srcIn
// fall through when the address is in no prefix, and jump to their
// argument when it is. flags loads the TCP flags octet.
func (a *asm) relayChecks(sec string, relays []netip.Prefix, kernelOnly bool, dstIn, srcIn func(match string), flags bpf.Instruction) {
	a.label(sec + "_sport")
	if len(relays) > 0 {
		a.untaggedOnly(kernelOnly)
		dstIn("drop")
	}
	a.jmp("accept")
	a.label(sec + "_dport")
	if len(relays) > 0 {
		a.untaggedOnly(kernelOnly)
		srcIn(sec + "_relay")
		a.jmp("accept")
		a.label(sec + "_relay")
		a.op(flags)
		a.op(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12}) // SYN|ACK
		a.jeqFar(0x02, "accept")                             // the client's SYN: one per connection
		a.jmp("drop")
		return
	}
	a.jmp("accept")
}

// untaggedOnly accepts a frame whose VLAN tag the kernel moved into
// metadata: the kernel bridges tagged SMTP, it does not divert it. It
// clobbers A, not X.
func (a *asm) untaggedOnly(kernelOnly bool) {
	if !kernelOnly {
		return
	}
	a.op(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent})
	a.jneFar(0, "accept")
}

// inPrefix4 jumps to match when the IPv4 address at absolute offset off is
// in one of prefixes, and falls through otherwise. It clobbers A.
func (a *asm) inPrefix4(off uint32, prefixes []netip.Prefix, match string) {
	for _, p := range prefixes {
		next := a.fresh()
		a.op(bpf.LoadAbsolute{Off: off, Size: 4})
		a.word(p, 0, next)
		a.jmp(match)
		a.label(next)
	}
}

// inPrefix6 is inPrefix4 for an IPv6 address: up to four 32-bit words per
// prefix, as many as its length covers.
func (a *asm) inPrefix6(off uint32, prefixes []netip.Prefix, match string) {
	for _, p := range prefixes {
		next := a.fresh()
		for w := 0; w < 4 && w*32 < p.Bits(); w++ {
			a.op(bpf.LoadAbsolute{Off: off + uint32(4*w), Size: 4})
			a.word(p, w, next)
		}
		a.jmp(match)
		a.label(next)
	}
}

// word compares A with word w of prefix p under p's mask, and jumps to
// miss when they differ.
func (a *asm) word(p netip.Prefix, w int, miss string) {
	b := p.Addr().AsSlice()
	want := uint32(b[4*w])<<24 | uint32(b[4*w+1])<<16 | uint32(b[4*w+2])<<8 | uint32(b[4*w+3])
	if bits := p.Bits() - 32*w; bits < 32 {
		mask := ^uint32(0) << (32 - bits) // 0 for bits 0: Go's shift by 32
		a.op(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
		want &= mask
	}
	a.jeq(want, "", miss)
}

// asm is a tiny assembler with symbolic jump targets ("" is the next
// instruction). A conditional jump reaches at most 255 instructions ahead:
// the *Far forms jump over an unconditional jump, which reaches any.
type asm struct {
	ins    []asmIns
	labels map[string]int
	n      int // fresh labels made
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

// fresh returns a label name not used before.
func (a *asm) fresh() string {
	a.n++
	return fmt.Sprintf(".L%d", a.n)
}

// jeqFar jumps to to when A == v.
func (a *asm) jeqFar(v uint32, to string) {
	skip := a.fresh()
	a.jeq(v, "", skip)
	a.jmp(to)
	a.label(skip)
}

// jneFar jumps to to when A != v.
func (a *asm) jneFar(v uint32, to string) {
	skip := a.fresh()
	a.jeq(v, skip, "")
	a.jmp(to)
	a.label(skip)
}

// jsetFar jumps to to when A & v != 0.
func (a *asm) jsetFar(v uint32, to string) {
	skip := a.fresh()
	a.jset(v, "", skip)
	a.jmp(to)
	a.label(skip)
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
