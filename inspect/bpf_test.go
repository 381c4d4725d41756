package inspect

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

func TestFilter(t *testing.T) {
	vm := filterVM(t, FilterSpec{Ports: []uint16{25, 587}})
	first := func(f *tcpFlow) []byte { return f.packet(true, "S", nil).data }
	flow := func(cli, srv string, vlan uint16) *tcpFlow {
		f := newTCPFlow(t, cli, srv)
		f.vlan = vlan
		return f
	}
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"ipv4 dport 25", first(flow("10.0.0.1:4000", "10.0.0.2:25", 0)), true},
		{"ipv4 sport 25 (reply)", flow("10.0.0.1:4000", "10.0.0.2:25", 0).packet(false, "SA", nil).data, true},
		{"ipv4 dport 587", first(flow("10.0.0.1:4000", "10.0.0.2:587", 0)), true},
		{"ipv4 dport 443", first(flow("10.0.0.1:4000", "10.0.0.2:443", 0)), false},
		{"ipv6 dport 25", first(flow("[2001:db8::1]:4000", "[2001:db8::2]:25", 0)), true},
		{"ipv6 dport 80", first(flow("[2001:db8::1]:4000", "[2001:db8::2]:80", 0)), false},
		{"vlan ipv4 dport 25", first(flow("10.0.0.1:4000", "10.0.0.2:25", 100)), true},
		{"vlan ipv4 dport 22", first(flow("10.0.0.1:4000", "10.0.0.2:22", 100)), false},
		{"vlan ipv6 dport 25", first(flow("[2001:db8::1]:4000", "[2001:db8::2]:25", 7)), true},
		{"vlan ipv6 sport 25", flow("[2001:db8::1]:4000", "[2001:db8::2]:25", 7).packet(false, "PA", []byte("220 hi\r\n")).data, true},
		{"ipv4 options, dport 25", ipv4Segment(t, "10.0.0.1", "10.0.0.2", 4000, 25, "S", true), true},
		{"ipv4 options, dport 26", ipv4Segment(t, "10.0.0.1", "10.0.0.2", 4000, 26, "S", true), false},
		{"udp port 25", udpFrame(t, 25), false},
		{"later fragment", fragment(t), false},
		{"arp", arpFrame(t), false},
		{"truncated", []byte{1, 2, 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := vm.Run(tt.frame)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := n > 0; got != tt.want {
				t.Errorf("filter accepts = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := Filter(FilterSpec{Ports: []uint16{25}, KernelOnly: true}); err != nil {
		t.Errorf("Filter(kernelOnly): %v", err)
	}
	if _, err := Filter(FilterSpec{}); err == nil {
		t.Error("Filter(no ports) succeeded")
	}
}

// filterVM assembles spec's program and loads it into the bpf VM.
func filterVM(t *testing.T, spec FilterSpec) *bpf.VM {
	t.Helper()
	raw, err := Filter(spec)
	if err != nil {
		t.Fatal(err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("Disassemble: program has instructions the VM does not know")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return vm
}

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func udpFrame(t *testing.T, port uint16) []byte {
	return serialize(t, &layers.Ethernet{SrcMAC: macCli, DstMAC: macSrv, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 0, 0, 1}, DstIP: []byte{10, 0, 0, 2}},
		&layers.UDP{SrcPort: layers.UDPPort(port), DstPort: layers.UDPPort(port)})
}

func fragment(t *testing.T) []byte {
	// A later fragment whose payload bytes at the TCP port offsets read 25.
	return serialize(t, &layers.Ethernet{SrcMAC: macCli, DstMAC: macSrv, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, FragOffset: 100, SrcIP: []byte{10, 0, 0, 1}, DstIP: []byte{10, 0, 0, 2}},
		gopacket.Payload([]byte{0, 25, 0, 25, 0, 0, 0, 0}))
}

func arpFrame(t *testing.T) []byte {
	return serialize(t, &layers.Ethernet{SrcMAC: macCli, DstMAC: macSrv, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: macCli, SourceProtAddress: []byte{10, 0, 0, 1}, DstHwAddress: macSrv, DstProtAddress: []byte{10, 0, 0, 2}})
}
