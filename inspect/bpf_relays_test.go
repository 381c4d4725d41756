package inspect

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
)

// TestFilterRelays runs the filter with the relays left out (enforce mode,
// diverting) and without (monitor mode, fail-open) on the same frames: a
// relay's diverted segments are dropped in both directions, except its
// SYN; everything else passes as before.
func TestFilterRelays(t *testing.T) {
	relays := []netip.Prefix{
		netip.MustParsePrefix("10.10.0.25/32"),
		netip.MustParsePrefix("10.10.8.0/22"),
		netip.MustParsePrefix("2001:db8:10::25/128"),
		netip.MustParsePrefix("2001:db8:40::/44"),   // not on a 32-bit boundary
		netip.MustParsePrefix("2001:db8:8000::/33"), // just past one
	}
	ports := []uint16{25, 587}
	enforce := filterVM(t, FilterSpec{Ports: ports, Relays: relays})
	monitor := filterVM(t, FilterSpec{Ports: ports})
	flow := func(cli, srv string, vlan uint16) *tcpFlow {
		f := newTCPFlow(t, cli, srv)
		f.vlan = vlan
		return f
	}
	syn := func(f *tcpFlow) []byte { return f.packet(true, "S", nil).data }
	data := func(f *tcpFlow) []byte { return f.packet(true, "PA", []byte("MAIL FROM:<a@b>\r\n")).data }
	reply := func(f *tcpFlow) []byte { return f.packet(false, "PA", []byte("250 ok\r\n")).data }
	const mx4, mx6 = "203.0.113.25:25", "[2001:db8:25::25]:25"
	tests := []struct {
		name    string
		frame   []byte
		enforce bool // passes with the relays left out
		monitor bool // passes without
	}{
		{"relay ipv4 SYN", syn(flow("10.10.0.25:40000", mx4, 0)), true, true},
		{"relay ipv4 data", data(flow("10.10.0.25:40000", mx4, 0)), false, true},
		{"relay ipv4 ACK", flow("10.10.0.25:40000", mx4, 0).packet(true, "A", nil).data, false, true},
		{"relay ipv4 FIN", flow("10.10.0.25:40000", mx4, 0).packet(true, "FA", nil).data, false, true},
		{"relay ipv4 RST", flow("10.10.0.25:40000", mx4, 0).packet(true, "R", nil).data, false, true},
		{"MX reply to relay ipv4", reply(flow("10.10.0.25:40000", mx4, 0)), false, true},
		{"MX SYN-ACK to relay ipv4", flow("10.10.0.25:40000", mx4, 0).packet(false, "SA", nil).data, false, true},
		{"relay ipv4 data port 587", data(flow("10.10.0.25:40000", "203.0.113.25:587", 0)), false, true},
		{"relay ipv4 port 443", data(flow("10.10.0.25:40000", "203.0.113.25:443", 0)), false, false},
		{"relay ipv4 options data", ipv4Segment(t, "10.10.0.25", "203.0.113.25", 40000, 25, "PA", true), false, true},
		{"relay ipv4 options SYN", ipv4Segment(t, "10.10.0.25", "203.0.113.25", 40000, 25, "S", true), true, true},
		{"PC ipv4 data", data(flow("10.20.0.50:40000", mx4, 0)), true, true},
		{"MX reply to PC ipv4", reply(flow("10.20.0.50:40000", mx4, 0)), true, true},
		{"inbound mail to relay", data(flow("198.51.100.7:40000", "10.10.0.25:25", 0)), true, true},
		{"relay answers inbound mail", reply(flow("198.51.100.7:40000", "10.10.0.25:25", 0)), true, true},
		{"prefix /22 first address", data(flow("10.10.8.0:40000", mx4, 0)), false, true},
		{"prefix /22 last address", data(flow("10.10.11.255:40000", mx4, 0)), false, true},
		{"prefix /22 reply to last address", reply(flow("10.10.11.255:40000", mx4, 0)), false, true},
		{"below prefix /22", data(flow("10.10.7.255:40000", mx4, 0)), true, true},
		{"above prefix /22", data(flow("10.10.12.0:40000", mx4, 0)), true, true},
		{"next to relay /32", data(flow("10.10.0.24:40000", mx4, 0)), true, true},
		{"relay ipv6 SYN", syn(flow("[2001:db8:10::25]:40000", mx6, 0)), true, true},
		{"relay ipv6 data", data(flow("[2001:db8:10::25]:40000", mx6, 0)), false, true},
		{"MX reply to relay ipv6", reply(flow("[2001:db8:10::25]:40000", mx6, 0)), false, true},
		{"next to relay ipv6 /128", data(flow("[2001:db8:10::26]:40000", mx6, 0)), true, true},
		{"prefix /44 first address", data(flow("[2001:db8:40::]:40000", mx6, 0)), false, true},
		{"prefix /44 last address", data(flow("[2001:db8:4f:ffff:ffff:ffff:ffff:ffff]:40000", mx6, 0)), false, true},
		{"prefix /44 reply", reply(flow("[2001:db8:4f::1]:40000", mx6, 0)), false, true},
		{"below prefix /44", data(flow("[2001:db8:3f:ffff::1]:40000", mx6, 0)), true, true},
		{"above prefix /44", data(flow("[2001:db8:50::]:40000", mx6, 0)), true, true},
		{"prefix /33 in", data(flow("[2001:db8:ffff::1]:40000", mx6, 0)), false, true},
		{"prefix /33 out", data(flow("[2001:db8:7fff::1]:40000", mx6, 0)), true, true},
		{"PC ipv6 data", data(flow("[2001:db8:20::50]:40000", mx6, 0)), true, true},
		// The kernel bridges a relay's tagged SMTP: it is not diverted.
		{"tagged relay ipv4 data", data(flow("10.10.0.25:40000", mx4, 100)), true, true},
		{"tagged MX reply to relay ipv4", reply(flow("10.10.0.25:40000", mx4, 100)), true, true},
		{"tagged relay ipv6 data", data(flow("[2001:db8:10::25]:40000", mx6, 7)), true, true},
		{"tagged MX reply to relay ipv6", reply(flow("[2001:db8:10::25]:40000", mx6, 7)), true, true},
		{"tagged PC ipv4 data", data(flow("10.20.0.50:40000", mx4, 100)), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				name string
				vm   interface{ Run([]byte) (int, error) }
				want bool
			}{{"relays left out", enforce, tt.enforce}, {"everything", monitor, tt.monitor}} {
				n, err := c.vm.Run(tt.frame)
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if got := n > 0; got != c.want {
					t.Errorf("filter (%s) accepts = %v, want %v", c.name, got, c.want)
				}
			}
		})
	}
}

// TestFilterSize: the largest filter (64 ports, MaxFilterRelays IPv6
// prefixes) fits in the kernel's bound, and its far jumps assemble.
func TestFilterSize(t *testing.T) {
	var ports []uint16
	for p := range 64 {
		ports = append(ports, uint16(2500+p))
	}
	var relays []netip.Prefix
	for i := range MaxFilterRelays {
		relays = append(relays, netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::1/127", i)))
	}
	for _, kernel := range []bool{false, true} {
		raw, err := Filter(FilterSpec{Ports: ports, Relays: relays, KernelOnly: kernel})
		if err != nil {
			t.Fatalf("Filter(64 ports, %d relays, kernelOnly %v): %v", len(relays), kernel, err)
		}
		if len(raw) > bpfMaxInstructions {
			t.Errorf("Filter: %d instructions, want at most %d", len(raw), bpfMaxInstructions)
		}
	}
	vm := filterVM(t, FilterSpec{Ports: ports, Relays: relays})
	last := newTCPFlow(t, fmt.Sprintf("[2001:db8:%x::1]:4000", MaxFilterRelays-1), "[2001:db8:25::25]:2563")
	if n, _ := vm.Run(last.packet(true, "PA", []byte("x")).data); n != 0 {
		t.Error("the last relay's data to the last port passes")
	}
	if n, _ := vm.Run(last.packet(true, "S", nil).data); n == 0 {
		t.Error("the last relay's SYN to the last port is dropped")
	}
	if _, err := Filter(FilterSpec{Ports: ports, Relays: append(relays, netip.MustParsePrefix("10.0.0.0/8"))}); err == nil {
		t.Errorf("Filter with %d relays succeeded", MaxFilterRelays+1)
	}
}

func TestFilterRelaysChoice(t *testing.T) {
	p := netip.MustParsePrefix
	got := FilterRelays([]netip.Prefix{p("10.10.0.25/32"), p("10.10.0.0/16"), p("10.10.0.0/16"), p("2001:db8::1/128"), p("10.20.0.1/24"), p("2001:db8::/32")})
	want := []netip.Prefix{p("10.10.0.0/16"), p("10.20.0.0/24"), p("2001:db8::/32")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("FilterRelays (-want +got):\n%s", diff)
	}
	var many []netip.Prefix
	for i := range 100 {
		many = append(many, p(fmt.Sprintf("10.30.%d.0/24", i)))
	}
	if got := FilterRelays(many); len(got) != MaxFilterRelays {
		t.Errorf("FilterRelays(100 prefixes) = %d prefixes, want %d", len(got), MaxFilterRelays)
	}
}

// ipv4Segment crafts an untagged IPv4 TCP segment, with IP options when
// options is set (the TCP header then starts later).
func ipv4Segment(t *testing.T, src, dst string, sport, dport uint16, flags string, options bool) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice()}
	if options {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport)}
	setFlags(tcp, flags)
	return serialize(t, &layers.Ethernet{SrcMAC: macCli, DstMAC: macSrv, EthernetType: layers.EthernetTypeIPv4}, ip, tcp)
}
