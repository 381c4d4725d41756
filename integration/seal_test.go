package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// TestSeal checks that SMTP the proxy cannot see is not bridged out: frames
// with an 802.1ad or 0x9100 outer tag or stacked tags, and IPv4/IPv6
// fragments and extension headers that hide the TCP header, injected on the
// switch's uplink from the PC's address, must not reach the router, with the
// daemon serving and after kill -9 (the failure behaviour), and each is
// counted. Tagged non-SMTP and a relay's single-tagged SYN still cross.
func TestSeal(t *testing.T) {
	needLab(t)
	for _, state := range []string{"serving", "killed"} {
		t.Run(state, func(t *testing.T) {
			a := startAppliance(t, "enforce", "")
			if state == "killed" {
				if err := a.Signal(syscall.SIGKILL, 5*time.Second); err != nil {
					t.Fatal(err)
				}
				time.Sleep(3500 * time.Millisecond) // the alive element expires
			}
			rtMAC := linkMAC(t, "router", "rt-in")
			src := func(i byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0x5e, 0xa1, 0, 0, i} }
			syn := func(sport uint16) *layers.TCP {
				return &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 25, SYN: true, Seq: 1, Window: 64240}
			}
			udp := &layers.UDP{SrcPort: 40000, DstPort: 9999}
			tag := func(tpid, vid uint16) [2]uint16 { return [2]uint16{tpid, vid} }
			qinq := [][2]uint16{tag(0x8100, 200), tag(0x8100, 100)}

			blocked := []struct {
				name     string
				counters []string // one of them must grow
				frames   func(mac net.HardwareAddr) [][]byte
			}{
				{"802.1ad SYN", []string{"stacked_dropped"}, func(m net.HardwareAddr) [][]byte {
					return [][]byte{frame(m, rtMAC, [][2]uint16{tag(0x88a8, 100)}, ipPacket(t, lab.PC4, lab.MX4, syn(41001)))}
				}},
				{"802.1ad IPv6 SYN", []string{"stacked_dropped"}, func(m net.HardwareAddr) [][]byte {
					return [][]byte{frame(m, rtMAC, [][2]uint16{tag(0x88a8, 100)}, ipPacket(t, lab.PC6, lab.MX6, syn(41002)))}
				}},
				{"0x9100 SYN", []string{"stacked_dropped"}, func(m net.HardwareAddr) [][]byte {
					return [][]byte{frame(m, rtMAC, [][2]uint16{tag(0x9100, 100)}, ipPacket(t, lab.PC4, lab.MX4, syn(41003)))}
				}},
				{"Q-in-Q SYN", []string{"stacked_dropped"}, func(m net.HardwareAddr) [][]byte {
					return [][]byte{frame(m, rtMAC, qinq, ipPacket(t, lab.PC4, lab.MX4, syn(41004)))}
				}},
				{"Q-in-Q IPv6 SYN", []string{"stacked_dropped"}, func(m net.HardwareAddr) [][]byte {
					return [][]byte{frame(m, rtMAC, qinq, ipPacket(t, lab.PC6, lab.MX6, syn(41005)))}
				}},
				{"802.1ad+802.1Q SYN", []string{"stacked_dropped"}, func(m net.HardwareAddr) [][]byte {
					return [][]byte{frame(m, rtMAC, [][2]uint16{tag(0x88a8, 200), tag(0x8100, 100)}, ipPacket(t, lab.PC4, lab.MX4, syn(41006)))}
				}},
				{"triple-tagged SYN", []string{"stacked_dropped"}, func(m net.HardwareAddr) [][]byte {
					return [][]byte{frame(m, rtMAC, [][2]uint16{tag(0x88a8, 300), tag(0x8100, 200), tag(0x8100, 100)}, ipPacket(t, lab.PC4, lab.MX4, syn(41007)))}
				}},
				{"IPv6 SYN, TCP header in the second fragment", []string{"frag_dropped"}, func(m net.HardwareAddr) [][]byte {
					var out [][]byte
					for _, p := range ipv6Fragments(t, lab.PC6, lab.MX6, 1400, syn(41008), 1232) {
						out = append(out, frame(m, rtMAC, nil, p))
					}
					return out
				}},
				{"IPv6 SYN, TCP header in the second fragment, 802.1Q", []string{"frag_dropped"}, func(m net.HardwareAddr) [][]byte {
					var out [][]byte
					for _, p := range ipv6Fragments(t, lab.PC6, lab.MX6, 1400, syn(41009), 1232) {
						out = append(out, frame(m, rtMAC, [][2]uint16{tag(0x8100, 100)}, p))
					}
					return out
				}},
				{"IPv6 SYN behind a large Destination Options header", []string{"reset", "diverted", "frag_dropped"}, func(m net.HardwareAddr) [][]byte {
					return [][]byte{frame(m, rtMAC, nil, ipv6WithDestOpts(t, lab.PC6, lab.MX6, 1024, syn(41010)))}
				}},
				{"IPv4 fragmented SYN", []string{"frag_dropped"}, func(m net.HardwareAddr) [][]byte {
					var out [][]byte
					for _, p := range ipv4Fragments(t, lab.PC4, lab.MX4, syn(41011), 8) {
						out = append(out, frame(m, rtMAC, nil, p))
					}
					return out
				}},
			}
			for i, c := range blocked {
				mac := src(byte(i + 1))
				before := nftCounters(t)
				if captureFrames(t, "ether src "+mac.String(), c.frames(mac)) {
					t.Errorf("%s: %s crossed the bridge", state, c.name)
				}
				after := nftCounters(t)
				grew := false
				for _, n := range c.counters {
					if after[n] > before[n] {
						grew = true
					}
				}
				if !grew {
					t.Errorf("%s: %s: none of the counters %v grew (before %v, after %v)", state, c.name, c.counters, pick(before, c.counters), pick(after, c.counters))
				}
			}

			passed := []struct {
				name  string
				frame func(mac net.HardwareAddr) []byte
			}{
				{"802.1ad UDP", func(m net.HardwareAddr) []byte {
					return frame(m, rtMAC, [][2]uint16{tag(0x88a8, 100)}, ipPacket(t, lab.PC4, lab.MX4, udp))
				}},
				{"0x9100 IPv6 UDP", func(m net.HardwareAddr) []byte {
					return frame(m, rtMAC, [][2]uint16{tag(0x9100, 100)}, ipPacket(t, lab.PC6, lab.MX6, udp))
				}},
				{"Q-in-Q UDP", func(m net.HardwareAddr) []byte { return frame(m, rtMAC, qinq, ipPacket(t, lab.PC4, lab.MX4, udp)) }},
				{"Q-in-Q IPv6 UDP", func(m net.HardwareAddr) []byte { return frame(m, rtMAC, qinq, ipPacket(t, lab.PC6, lab.MX6, udp)) }},
				{"Q-in-Q TCP to port 80", func(m net.HardwareAddr) []byte {
					return frame(m, rtMAC, qinq, ipPacket(t, lab.PC4, lab.MX4, &layers.TCP{SrcPort: 41100, DstPort: 80, SYN: true, Seq: 1, Window: 64240}))
				}},
				{"IPv6 UDP fragment", func(m net.HardwareAddr) []byte {
					return frame(m, rtMAC, nil, ipv6Fragments(t, lab.PC6, lab.MX6, 0, &layers.UDP{SrcPort: 40000, DstPort: 9999}, 0)[0])
				}},
				{"relay's 802.1Q-tagged SYN", func(m net.HardwareAddr) []byte {
					return frame(m, rtMAC, [][2]uint16{tag(0x8100, 100)}, ipPacket(t, lab.Relay4, lab.MX4, syn(41101)))
				}},
			}
			for i, c := range passed {
				mac := src(byte(0x80 + i))
				if !captureFrames(t, "ether src "+mac.String(), [][]byte{c.frame(mac)}) {
					t.Errorf("%s: %s did not cross the bridge", state, c.name)
				}
			}
		})
	}
}

func pick(m map[string]int, keys []string) map[string]int {
	out := map[string]int{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// nftCounters returns the packets of every named counter in the box's
// relaygate tables, by name.
func nftCounters(t *testing.T) map[string]int {
	t.Helper()
	out, err := theLab.Run(context.Background(), "box", "nft", "-j", "list", "counters")
	if err != nil {
		t.Fatalf("nft list counters: %v\n%s", err, out)
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Table   string `json:"table"`
				Name    string `json:"name"`
				Packets int    `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j list counters: %v\n%s", err, out)
	}
	m := map[string]int{}
	for _, e := range doc.Nftables {
		if e.Counter != nil && e.Counter.Table == "relaygate" {
			m[e.Counter.Name] += e.Counter.Packets
		}
	}
	return m
}

// captureFrames starts tcpdump on the router's inside interface with filter,
// injects frames on the switch's uplink, and reports whether any matching
// packet was seen.
func captureFrames(t *testing.T, filter string, frames [][]byte) bool {
	t.Helper()
	return captureWhile(t, "router", "rt-in", filter, "switch", "sw-up", frames...)
}

// frame builds an Ethernet frame with the given tags (TPID, VLAN ID; outer
// first) around an IPv4 or IPv6 packet, by hand: gopacket cannot stack
// tags of other TPIDs than 0x8100.
func frame(src, dst net.HardwareAddr, tags [][2]uint16, ip []byte) []byte {
	b := append(append([]byte{}, dst...), src...)
	for _, tg := range tags {
		b = binary.BigEndian.AppendUint16(b, tg[0])
		b = binary.BigEndian.AppendUint16(b, tg[1])
	}
	et := uint16(0x0800)
	if ip[0]>>4 == 6 {
		et = 0x86dd
	}
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, ip...)
}

func l4Proto(l4 gopacket.SerializableLayer) layers.IPProtocol {
	if _, ok := l4.(*layers.TCP); ok {
		return layers.IPProtocolTCP
	}
	return layers.IPProtocolUDP
}

// ipPacket serializes an IPv4 or IPv6 packet carrying l4.
func ipPacket(t *testing.T, from, to string, l4 gopacket.SerializableLayer) []byte {
	t.Helper()
	fromIP, toIP := net.ParseIP(from), net.ParseIP(to)
	var ip gopacket.NetworkLayer
	var ipLayer gopacket.SerializableLayer
	if v4 := fromIP.To4(); v4 != nil {
		p := &layers.IPv4{Version: 4, TTL: 64, Protocol: l4Proto(l4), SrcIP: v4, DstIP: toIP.To4(), Id: 4242}
		ip, ipLayer = p, p
	} else {
		p := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: l4Proto(l4), SrcIP: fromIP, DstIP: toIP}
		ip, ipLayer = p, p
	}
	ls := []gopacket.SerializableLayer{ipLayer, l4}
	setChecksumLayer(l4, ip)
	if l4Proto(l4) != 6 {
		ls = append(ls, gopacket.Payload("relaygate seal frame"))
	}
	return serialize(t, ls...)
}

func setChecksumLayer(l4 gopacket.SerializableLayer, ip gopacket.NetworkLayer) {
	switch x := l4.(type) {
	case *layers.TCP:
		x.SetNetworkLayerForChecksum(ip)
	case *layers.UDP:
		x.SetNetworkLayerForChecksum(ip)
	}
}

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte{}, buf.Bytes()...)
}

// l4Bytes serializes l4 alone, its checksum computed for from -> to.
func l4Bytes(t *testing.T, from, to string, l4 gopacket.SerializableLayer) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, NextHeader: l4Proto(l4), SrcIP: net.ParseIP(from), DstIP: net.ParseIP(to)}
	if v4 := net.ParseIP(from).To4(); v4 != nil {
		ip := &layers.IPv4{Version: 4, Protocol: l4Proto(l4), SrcIP: v4, DstIP: net.ParseIP(to).To4()}
		setChecksumLayer(l4, ip)
	} else {
		setChecksumLayer(l4, ip)
	}
	ls := []gopacket.SerializableLayer{l4}
	if l4Proto(l4) != 6 {
		ls = append(ls, gopacket.Payload("relaygate seal frame"))
	}
	return serialize(t, ls...)
}

// destOpts is a Destination Options header of size bytes (a multiple of 8,
// at least 8) filled with a PadN option, followed by next.
func destOpts(size int, next byte) []byte {
	h := make([]byte, size)
	h[0], h[1] = next, byte(size/8-1)
	// PadN options of at most 255 bytes of padding each.
	for off := 2; off < size; {
		n := min(size-off-2, 255)
		h[off], h[off+1] = 1, byte(n)
		off += 2 + n
	}
	return h
}

func ipv6Header(from, to string, next byte, payloadLen int) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(payloadLen))
	h[6], h[7] = next, 64
	copy(h[8:], net.ParseIP(from).To16())
	copy(h[24:], net.ParseIP(to).To16())
	return h
}

// ipv6WithDestOpts is an unfragmented IPv6 packet whose l4 follows a
// Destination Options header of optSize bytes.
func ipv6WithDestOpts(t *testing.T, from, to string, optSize int, l4 gopacket.SerializableLayer) []byte {
	payload := append(destOpts(optSize, byte(l4Proto(l4))), l4Bytes(t, from, to, l4)...)
	return append(ipv6Header(from, to, 60, len(payload)), payload...)
}

// ipv6Fragments fragments an IPv6 packet carrying l4 (behind a Destination
// Options header of optSize bytes when optSize > 0) so that each fragment
// carries at most fragSize bytes of the fragmentable part (a multiple of 8;
// 0: a single atomic fragment, offset 0 and M clear).
func ipv6Fragments(t *testing.T, from, to string, optSize int, l4 gopacket.SerializableLayer, fragSize int) [][]byte {
	body := l4Bytes(t, from, to, l4)
	next := byte(l4Proto(l4))
	if optSize > 0 {
		body = append(destOpts(optSize, next), body...)
		next = 60
	}
	if fragSize == 0 {
		fragSize = len(body)
	}
	var out [][]byte
	for off := 0; off < len(body); off += fragSize {
		end := min(off+fragSize, len(body))
		fh := make([]byte, 8)
		fh[0] = next
		fo := uint16(off/8) << 3
		if end < len(body) {
			fo |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], 0x5ea1)
		p := append(ipv6Header(from, to, 44, 8+end-off), fh...)
		out = append(out, append(p, body[off:end]...))
	}
	return out
}

// ipv4Fragments fragments an IPv4 packet carrying l4 into pieces of
// fragSize bytes (a multiple of 8).
func ipv4Fragments(t *testing.T, from, to string, l4 gopacket.SerializableLayer, fragSize int) [][]byte {
	body := l4Bytes(t, from, to, l4)
	var out [][]byte
	for off := 0; off < len(body); off += fragSize {
		end := min(off+fragSize, len(body))
		flags := layers.IPv4Flag(0)
		if end < len(body) {
			flags = layers.IPv4MoreFragments
		}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: l4Proto(l4), Id: 4343, Flags: flags, FragOffset: uint16(off / 8),
			SrcIP: net.ParseIP(from).To4(), DstIP: net.ParseIP(to).To4()}
		out = append(out, serialize(t, ip, gopacket.Payload(body[off:end])))
	}
	return out
}
