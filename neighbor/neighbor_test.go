package neighbor

import (
	"encoding/binary"
	"math/rand"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

// lldpdFrames reads testdata/lldpd.pcap: what lldpd 1.0.16 (Debian 12)
// sent from a veth in a namespace, "lldpd -k -l -ccc -m
// 192.0.2.2,2001:db8::2" with system name access-sw1, port ID subtype
// ifname and port description "3F uplink": LLDP and CDPv2 frames.
func lldpdFrames(t *testing.T) (lldp, cdp []byte) {
	t.Helper()
	f, err := os.Open("testdata/lldpd.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for lldp == nil || cdp == nil {
		data, _, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("testdata/lldpd.pcap: want an LLDP and a CDP frame: %v", err)
		}
		if binary.BigEndian.Uint16(data[12:]) == 0x88cc {
			lldp = data
		} else {
			cdp = data
		}
	}
	return lldp, cdp
}

func TestDecodeLLDPD(t *testing.T) {
	lldp, cdp := lldpdFrames(t)
	ignore := cmpopts.IgnoreFields(Neighbor{}, "ChassisID")
	got, err := Decode(lldp)
	if err != nil {
		t.Fatalf("Decode(lldpd LLDP) = %v", err)
	}
	want := Neighbor{
		Protocol: LLDP, PortID: "va", PortDescription: "3F uplink",
		SystemName: "access-sw1", SystemDescription: "Debian GNU/Linux 12 (bookworm)",
		ManagementAddresses: []string{"192.0.2.2", "2001:db8::2"},
		Capabilities:        []string{"station"}, TTL: 4,
	}
	if diff := cmp.Diff(want, got, ignore); diff != "" {
		t.Errorf("Decode(lldpd LLDP) (-want +got):\n%s", diff)
	}
	if _, err := net.ParseMAC(got.ChassisID); err != nil {
		t.Errorf("LLDP chassis ID %q, want the MAC lldpd sends", got.ChassisID)
	}
	got, err = Decode(cdp)
	if err != nil {
		t.Fatalf("Decode(lldpd CDP) = %v", err)
	}
	want = Neighbor{
		Protocol: CDP, ChassisID: "access-sw1", PortID: "3F uplink",
		SystemName: "access-sw1", SystemDescription: "Debian GNU/Linux 12 (bookworm)",
		ManagementAddresses: []string{"192.0.2.2"},
		Capabilities:        []string{"host"}, TTL: 4, // CDP capability 0x10
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decode(lldpd CDP) (-want +got):\n%s", diff)
	}
}

// lldpFrame serializes an LLDP frame with gopacket, with the TLVs a
// managed switch sends: network-address chassis, interface-name port,
// two management addresses, 802.1 port VLAN ID.
func lldpFrame(t *testing.T, ttl uint16, extra ...layers.LinkLayerDiscoveryValue) []byte {
	t.Helper()
	tlv := func(typ layers.LLDPTLVType, v []byte) layers.LinkLayerDiscoveryValue {
		return layers.LinkLayerDiscoveryValue{Type: typ, Length: uint16(len(v)), Value: v}
	}
	mgmt := func(fam byte, addr []byte) layers.LinkLayerDiscoveryValue {
		v := append([]byte{byte(1 + len(addr)), fam}, addr...)
		v = append(v, 2, 0, 0, 0, 7, 0) // ifIndex 7, no OID
		return tlv(layers.LLDPTLVMgmtAddress, v)
	}
	vals := []layers.LinkLayerDiscoveryValue{
		tlv(layers.LLDPTLVPortDescription, []byte("uplink to relaygate")),
		tlv(layers.LLDPTLVSysName, []byte("core-1.example")),
		tlv(layers.LLDPTLVSysDescription, []byte("Cisco IOS Software, C3850\r\nVersion 16.12")),
		tlv(layers.LLDPTLVSysCapabilities, []byte{0x00, 0x14, 0x00, 0x14}), // bridge, router
		mgmt(1, []byte{10, 0, 0, 2}),
		mgmt(2, net.ParseIP("2001:db8:0:1::2")),
		mgmt(1, []byte{10, 0, 0, 2}),                                               // repeated: kept once
		tlv(layers.LLDPTLVOrgSpecific, []byte{0x00, 0x80, 0xc2, 0x01, 0x00, 0x14}), // 802.1 PVID 20
	}
	vals = append(vals, extra...)
	lldp := &layers.LinkLayerDiscovery{
		ChassisID: layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeNetworkAddr, ID: []byte{1, 10, 0, 0, 2}},
		PortID:    layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypeIfaceName, ID: []byte("Gi1/0/48")},
		TTL:       ttl,
		Values:    vals,
	}
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x00, 0x00, 0x0c, 0x11, 0x22, 0x33},
		DstMAC:       net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e},
		EthernetType: layers.EthernetTypeLinkLayerDiscovery,
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, lldp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cdpFrame builds a CDPv2 frame (802.3, LLC/SNAP) with the given TLVs.
func cdpFrame(ttl byte, tlvs ...[]byte) []byte {
	b := []byte{0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc, 0x00, 0x00, 0x0c, 0x11, 0x22, 0x33, 0, 0,
		0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, 0x20, 0x00, // LLC, SNAP Cisco/CDP
		2, ttl, 0, 0} // CDP version, TTL, checksum (not verified)
	for _, v := range tlvs {
		b = append(b, v...)
	}
	binary.BigEndian.PutUint16(b[12:], uint16(len(b)-14))
	return b
}

func cdpTLV(typ uint16, v []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(v)))
	return append(b, v...)
}

// cdpIPv4 is an address TLV value with one IPv4 address.
func cdpIPv4(ip ...byte) []byte {
	return append([]byte{0, 0, 0, 1, 1, 1, 0xcc, 0, 4}, ip...)
}

func TestDecodeSwitchShaped(t *testing.T) {
	got, err := Decode(lldpFrame(t, 120))
	if err != nil {
		t.Fatalf("Decode(LLDP) = %v", err)
	}
	want := Neighbor{
		Protocol: LLDP, ChassisID: "10.0.0.2", PortID: "Gi1/0/48", PortDescription: "uplink to relaygate",
		SystemName: "core-1.example", SystemDescription: "Cisco IOS Software, C3850 Version 16.12",
		ManagementAddresses: []string{"10.0.0.2", "2001:db8:0:1::2"},
		VLAN:                20, Capabilities: []string{"bridge", "router"}, TTL: 120,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decode(LLDP) (-want +got):\n%s", diff)
	}

	got, err = Decode(cdpFrame(180,
		cdpTLV(0x0001, []byte("access-2.example.com")),
		cdpTLV(0x0002, cdpIPv4(10, 0, 0, 3)),
		cdpTLV(0x0003, []byte("GigabitEthernet1/0/24")),
		cdpTLV(0x0004, []byte{0, 0, 0, 0x29}), // router, switch, IGMP
		cdpTLV(0x0005, []byte("Cisco IOS Software, C2960X")),
		cdpTLV(0x000a, []byte{0x00, 0x0a}), // native VLAN 10
		cdpTLV(0x0016, cdpIPv4(10, 0, 99, 3)),
	))
	if err != nil {
		t.Fatalf("Decode(CDP) = %v", err)
	}
	want = Neighbor{
		Protocol: CDP, ChassisID: "access-2.example.com", PortID: "GigabitEthernet1/0/24",
		SystemName: "access-2.example.com", SystemDescription: "Cisco IOS Software, C2960X",
		ManagementAddresses: []string{"10.0.99.3", "10.0.0.3"},
		VLAN:                10, Capabilities: []string{"router", "switch", "igmp"}, TTL: 180,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decode(CDP) (-want +got):\n%s", diff)
	}
}

func TestDecodeBounds(t *testing.T) {
	var many []layers.LinkLayerDiscoveryValue
	for i := range 20 {
		v := []byte{5, 1, 10, 1, 0, byte(i), 2, 0, 0, 0, 1, 0}
		many = append(many, layers.LinkLayerDiscoveryValue{Type: layers.LLDPTLVMgmtAddress, Length: uint16(len(v)), Value: v})
	}
	got, err := Decode(lldpFrame(t, 120, many...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ManagementAddresses) != MaxAddresses {
		t.Errorf("%d management addresses kept of 22, want %d", len(got.ManagementAddresses), MaxAddresses)
	}
	long := strings.Repeat("é", 300) + "\x00\x1b[31m"
	got, err = Decode(cdpFrame(60, cdpTLV(1, []byte(long)), cdpTLV(3, []byte("Gi0/1\x1b[2J\xff"))))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ChassisID) > MaxString || !strings.HasPrefix(long, got.ChassisID) {
		t.Errorf("device ID of %d bytes kept as %d bytes, want at most %d, a prefix", len(long), len(got.ChassisID), MaxString)
	}
	if got.PortID != "Gi0/1 [2J" {
		t.Errorf("port ID = %q, want control characters and invalid UTF-8 removed", got.PortID)
	}
	if _, err := Decode(make([]byte, MaxFrame+1)); err == nil {
		t.Errorf("Decode(%d octets) = nil error, want refused", MaxFrame+1)
	}
}

// TestDecodeGarbage: truncations and corruptions of real frames and random
// bytes never panic out of Decode and never yield a neighbour without
// chassis and port.
func TestDecodeGarbage(t *testing.T) {
	lldp, cdp := lldpdFrames(t)
	frames := [][]byte{nil, {}, {0x01}, make([]byte, 60)}
	for _, f := range [][]byte{lldp, cdp, lldpFrame(t, 120)} {
		for i := range f {
			frames = append(frames, f[:i])
		}
	}
	rng := rand.New(rand.NewSource(1))
	for range 3000 {
		src := [][]byte{lldp, cdp}[rng.Intn(2)]
		f := append([]byte(nil), src...)
		for range 1 + rng.Intn(8) {
			f[14+rng.Intn(len(f)-14)] = byte(rng.Intn(256))
		}
		frames = append(frames, f)
		r := make([]byte, rng.Intn(200))
		rng.Read(r)
		frames = append(frames, r)
	}
	tab := NewTable(nil)
	for _, f := range frames {
		n, err := Decode(f)
		if err == nil && (n.ChassisID == "" || n.PortID == "") {
			t.Fatalf("Decode(% x) = %+v: a neighbour without chassis or port", f, n)
		}
		tab.Handle("eth1", "inside", f)
	}
	st := tab.Stats()
	if st.Frames != uint64(len(frames)) || st.Garbage == 0 {
		t.Errorf("Stats = %+v after %d frames, want all counted, garbage among them", st, len(frames))
	}
	// Truncated frames are refused, not half-read.
	if _, err := Decode(lldp[:30]); err == nil {
		t.Errorf("Decode(LLDP cut at 30 octets) = nil error, want refused")
	}
}

func TestFilter(t *testing.T) {
	raw, err := Filter()
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("Disassemble failed")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	lldp, cdp := lldpdFrames(t)
	ip := make([]byte, 60)
	copy(ip, []byte{0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcd, 0, 0, 0, 0, 0, 0, 0x08, 0x00})
	stp := make([]byte, 60)
	copy(stp, []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x00, 0x26})
	for _, tt := range []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"lldp", lldp, true}, {"cdp", cdp, true}, {"switch lldp", lldpFrame(t, 120), true},
		{"ipv4 to a near address", ip, false}, {"stp", stp, false}, {"short", []byte{1, 2}, false},
	} {
		n, err := vm.Run(tt.frame)
		if err != nil || (n > 0) != tt.pass {
			t.Errorf("filter(%s) = %d, %v, want pass %v", tt.name, n, err, tt.pass)
		}
	}
}

func TestTable(t *testing.T) {
	lldp, cdp := lldpdFrames(t)
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tab := NewTable(func() time.Time { return now })
	sw := lldpFrame(t, 120)
	if !tab.Handle("eth1", "inside", sw) || !tab.Handle("eth2", "outside", cdp) {
		t.Fatal("Handle refused a valid frame")
	}
	got := tab.Neighbors()
	if len(got) != 2 || got[0].Interface != "eth1" || got[0].SystemName != "core-1.example" ||
		got[1].Side != "outside" || got[1].Protocol != CDP {
		t.Fatalf("Neighbors() = %+v, want core-1 on eth1 (inside) first, CDP on eth2", got)
	}
	if !got[0].SeenAt.Equal(now) || !got[0].ExpiresAt.Equal(now.Add(120*time.Second)) {
		t.Errorf("seen %v expires %v, want %v and +120s", got[0].SeenAt, got[0].ExpiresAt, now)
	}
	// CDP from the same switch does not replace its live LLDP neighbour.
	now = now.Add(30 * time.Second)
	tab.Handle("eth1", "inside", cdp)
	if n := tab.Neighbors()[0]; n.Protocol != LLDP {
		t.Errorf("after CDP on a port with live LLDP: %s, want lldp kept", n.Protocol)
	}
	// A newer LLDP frame replaces the neighbour.
	tab.Handle("eth1", "inside", lldp)
	if n := tab.Neighbors()[0]; n.SystemName != "access-sw1" || !n.SeenAt.Equal(now) {
		t.Errorf("after lldpd's frame: %+v, want access-sw1 seen now", n)
	}
	// The TTL (4 s, kept at least minTTL) runs out.
	now = now.Add(minTTL)
	if got := tab.Neighbors(); len(got) != 0 {
		t.Errorf("Neighbors() after TTL = %+v, want none (eth2's CDP TTL was 4 s too)", got)
	}
	// LLDP shutdown (TTL 0) removes at once.
	tab.Handle("eth1", "inside", sw)
	tab.Handle("eth1", "inside", lldpFrame(t, 0))
	if got := tab.Neighbors(); len(got) != 0 {
		t.Errorf("Neighbors() after TTL 0 = %+v, want none", got)
	}
}
