package locate

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gosnmp/gosnmp"

	"github.com/relaygate/relaygate/config"
)

const (
	hostIP  = "10.20.0.5"
	hostMAC = "00:1A:2B:3C:4D:5E" // as a switch's table has it; reported lower case
	otherMC = "00:1a:2b:00:00:01"
	coreMAC = "02:00:00:00:0c:01"
	accMAC  = "02:00:00:00:0a:01"
)

// testLocator is New with the bounds of a test: a short timeout, little
// pacing.
func testLocator(t *testing.T, switches ...config.Switch) *SNMP {
	t.Helper()
	l := New(config.Locate{
		Switches: switches,
		Timeout:  config.Duration(250 * time.Millisecond),
		Refresh:  config.Duration(time.Minute),
	}, slog.New(slog.DiscardHandler))
	l.minInterval = time.Millisecond
	return l
}

func v2(name string, a *fakeAgent, vlans ...int) config.Switch {
	return config.Switch{Name: name, Address: a.addr(), Version: "2c", Community: "public", VLANs: vlans}
}

func locate(t *testing.T, l *SNMP, addr string) Location {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got, err := l.Locate(ctx, netip.MustParseAddr(addr))
	if err != nil {
		t.Fatalf("Locate(%s) error = %v", addr, err)
	}
	return got
}

// checkLocation compares all but SeenAt, which must be set, and Error,
// which must contain each of errs (and be empty without). A found MAC's
// Vendor is the OUI list's.
func checkLocation(t *testing.T, got, want Location, errs ...string) {
	t.Helper()
	if want.MAC != "" && want.Vendor == "" {
		want.Vendor = Vendor(want.MAC)
	}
	if got.SeenAt.IsZero() {
		t.Errorf("Locate() SeenAt is zero")
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Location{}, "SeenAt", "Error"), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Locate() mismatch (-want +got):\n%s", diff)
	}
	if len(errs) == 0 && got.Error != "" {
		t.Errorf("Locate() Error = %q, want none", got.Error)
	}
	for _, e := range errs {
		if !strings.Contains(got.Error, e) {
			t.Errorf("Locate() Error = %q, want it to contain %q", got.Error, e)
		}
	}
}

// noise are ARP rows of other hosts around the one looked up, on the
// same VLAN interface and on others, so that a lookup must seek.
func noise() []row {
	var rs []row
	for i := 1; i < 60; i++ {
		rs = append(rs, arpRow(1, "10.1.0."+itoa(i), otherMC), arpRow(120, "10.20.0."+itoa(i+10), otherMC), arpRow(130, "10.30.0."+itoa(i), otherMC))
	}
	return rs
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestLocateQBridge: the MAC from ipNetToPhysicalTable on the routing
// switch, its port from dot1qTpFdbTable whose FDB ids are not the VLAN
// ids (dot1qVlanFdbId maps VLAN 20 to FDB 7), bridge port 5 is ifIndex
// 10005.
func TestLocateQBridge(t *testing.T) {
	a := newAgent(t)
	a.rows("public", noise()...)
	a.rows("public", arpRow(120, hostIP, hostMAC),
		vlanFdbRow(1, 1), vlanFdbRow(20, 7), vlanFdbRow(30, 8),
		qfdbRow(1, otherMC, 2), qfdbRow(7, otherMC, 3), qfdbRow(7, hostMAC, 5), qfdbRow(8, hostMAC, 9),
		basePortRow(5, 10005), basePortRow(9, 10009))
	a.rows("public", flat(ifRows(10005, "Gi1/0/5", "3F room 12"), ifRows(10009, "Gi1/0/9", ""), ifRows(120, "Vlan20", ""))...)
	l := testLocator(t, v2("core", a))
	got := locate(t, l, hostIP)
	checkLocation(t, got, Location{
		Addr: netip.MustParseAddr(hostIP), Status: Found, MAC: strings.ToLower(hostMAC),
		Switch: "core", Port: "Gi1/0/5", PortDescription: "3F room 12", IfIndex: 10005, VLAN: 20, Path: []string{"core"},
	})

	// Targeted: the neighbour table is sought (a GETNEXT or two per
	// interface), never walked; the FDB is read by direct GETs.
	var nexts int
	for _, r := range a.reqs() {
		for _, o := range r.oids {
			if mustOID(o).under(oidIPNetToPhysicalPhysAddress) || cmpOID(mustOID(o), oidIPNetToPhysicalPhysAddress) == 0 {
				if r.pdu == gosnmp.GetBulkRequest {
					t.Errorf("request %v walks ipNetToPhysicalTable", r)
				}
				nexts++
			}
			if mustOID(o).under(oidDot1qTpFdbPort) && r.pdu != gosnmp.GetRequest {
				t.Errorf("request %v is not a GET of dot1qTpFdbPort", r)
			}
		}
	}
	if nexts > 6 {
		t.Errorf("%d GETNEXTs in ipNetToPhysicalTable for 3 interfaces, want at most 6", nexts)
	}

	// The same host again is looked up afresh: no state but the facts.
	if again := locate(t, l, hostIP); again.Port != "Gi1/0/5" {
		t.Errorf("second Locate() = %+v", again)
	}
}

// TestLocateBridgeMIBOnly: no Q-BRIDGE-MIB at all; dot1dTpFdbPort.<mac> is
// one direct GET, dot1dBasePortIfIndex maps the bridge port.
func TestLocateBridgeMIBOnly(t *testing.T) {
	a := newAgent(t)
	a.rows("public", arpRow(120, hostIP, hostMAC), fdbRow(otherMC, 1), fdbRow(hostMAC, 3), basePortRow(3, 10003))
	a.rows("public", flat(ifRows(10003, "Gi1/0/3", "printer"), ifRows(120, "Vl20", ""))...)
	got := locate(t, testLocator(t, v2("sw", a)), hostIP)
	checkLocation(t, got, Location{
		Addr: netip.MustParseAddr(hostIP), Status: Found, MAC: strings.ToLower(hostMAC),
		Switch: "sw", Port: "Gi1/0/3", PortDescription: "printer", IfIndex: 10003, VLAN: 20, Path: []string{"sw"},
	})
}

// TestLocateBridgePortIsIfIndex: no dot1dBasePortIfIndex: the bridge port
// is taken as the ifIndex.
func TestLocateBridgePortIsIfIndex(t *testing.T) {
	a := newAgent(t)
	a.rows("public", arpRow(4, hostIP, hostMAC), fdbRow(hostMAC, 7))
	a.rows("public", ifRows(7, "ge-0/0/7", "")...)
	got := locate(t, testLocator(t, v2("sw", a)), hostIP)
	checkLocation(t, got, Location{
		Addr: netip.MustParseAddr(hostIP), Status: Found, MAC: strings.ToLower(hostMAC),
		Switch: "sw", Port: "ge-0/0/7", IfIndex: 7, Path: []string{"sw"},
	})
}

// TestLocateIPNetToMedia: IPv4 only in the older ipNetToMediaTable; the
// newer table has IPv6 only (some Cisco releases) or is missing.
func TestLocateIPNetToMedia(t *testing.T) {
	for _, newer := range []bool{false, true} {
		t.Run(map[bool]string{false: "no ipNetToPhysicalTable", true: "ipNetToPhysicalTable IPv6 only"}[newer], func(t *testing.T) {
			a := newAgent(t)
			if newer {
				a.rows("public", arpRow(120, "2001:db8:20::9", otherMC))
			}
			a.rows("public", mediaRow(1, "10.1.0.1", otherMC), mediaRow(120, "10.20.0.4", otherMC), mediaRow(120, hostIP, hostMAC), fdbRow(hostMAC, 3))
			a.rows("public", ifRows(3, "port3", "")...)
			got := locate(t, testLocator(t, v2("sw", a)), hostIP)
			checkLocation(t, got, Location{
				Addr: netip.MustParseAddr(hostIP), Status: Found, MAC: strings.ToLower(hostMAC),
				Switch: "sw", Port: "port3", IfIndex: 3, Path: []string{"sw"},
			})
		})
	}
}

// TestLocateIPv6: the neighbour cache entry in ipNetToPhysicalTable
// (addrType 2, 16 octets).
func TestLocateIPv6(t *testing.T) {
	a := newAgent(t)
	const v6 = "2001:db8:20::5"
	a.rows("public", arpRow(120, hostIP, otherMC), arpRow(120, "2001:db8:20::4", otherMC), arpRow(120, v6, hostMAC), arpRow(121, "2001:db8:21::5", otherMC), fdbRow(hostMAC, 3))
	a.rows("public", ifRows(3, "port3", "")...)
	got := locate(t, testLocator(t, v2("sw", a)), v6)
	checkLocation(t, got, Location{
		Addr: netip.MustParseAddr(v6), Status: Found, MAC: strings.ToLower(hostMAC),
		Switch: "sw", Port: "port3", IfIndex: 3, Path: []string{"sw"},
	})
	// An IPv4-mapped address is looked up as IPv4.
	if got := locate(t, testLocator(t, v2("sw", a)), "::ffff:"+hostIP); got.MAC != strings.ToLower(otherMC) || got.Addr != netip.MustParseAddr(hostIP) {
		t.Errorf("Locate(::ffff:%s) = %+v, want the IPv4 entry", hostIP, got)
	}
}

// TestLocateCiscoPerVLAN: the forwarding table is per VLAN, read with
// community@vlan; bridge ports are numbered per VLAN instance. The VLAN
// of the routed interface (Vlan20) is asked first; a VLAN the switch
// does not know (no answer) costs that VLAN only.
func TestLocateCiscoPerVLAN(t *testing.T) {
	cisco := func(t *testing.T, named bool) *fakeAgent {
		a := newAgent(t)
		a.rows("public", mediaRow(20, hostIP, hostMAC), fdbRow(otherMC, 1))
		a.rows("public", ifRows(10115, "Gi1/0/15", "lab bench")...)
		if named {
			a.rows("public", ifRows(20, "Vlan20", "")...)
		}
		a.rows("public@10", fdbRow(otherMC, 2), basePortRow(2, 10102))
		a.rows("public@20", fdbRow(otherMC, 2), fdbRow(hostMAC, 15), basePortRow(15, 10115))
		return a
	}
	want := Location{
		Addr: netip.MustParseAddr(hostIP), Status: Found, MAC: strings.ToLower(hostMAC),
		Switch: "cat", Port: "Gi1/0/15", PortDescription: "lab bench", IfIndex: 10115, VLAN: 20, Path: []string{"cat"},
	}
	t.Run("hinted VLAN first", func(t *testing.T) {
		a := cisco(t, true)
		got := locate(t, testLocator(t, v2("cat", a, 30, 10, 20)), hostIP)
		checkLocation(t, got, want)
		for _, r := range a.reqs() {
			if r.community == "public@30" || r.community == "public@10" {
				t.Errorf("asked %s after VLAN 20's table had the MAC", r.community)
			}
		}
	})
	t.Run("VLANs unknown to the switch", func(t *testing.T) {
		a := cisco(t, false)
		got := locate(t, testLocator(t, v2("cat", a, 30, 10, 40, 20)), hostIP)
		checkLocation(t, got, want, "cat: VLAN 30: no answer", "VLAN 40: no answer")
		var asked []string
		for _, r := range a.reqs() {
			if strings.Contains(r.community, "@") && (len(asked) == 0 || asked[len(asked)-1] != r.community) {
				asked = append(asked, r.community)
			}
		}
		if diff := cmp.Diff([]string{"public@30", "public@10", "public@40", "public@20"}, asked); diff != "" {
			t.Errorf("per-VLAN communities asked (-want +got):\n%s", diff)
		}
	})
}

// TestLocateVLANCommunity: the per-VLAN community is the configured one
// with @vlan (v3's context vlan-N is checked against snmpsimd).
func TestLocateVLANCommunity(t *testing.T) {
	a := newAgent(t)
	a.rows("s3cret", mediaRow(20, hostIP, hostMAC))
	a.rows("s3cret@20", fdbRow(hostMAC, 15))
	sw := v2("cat", a, 20)
	sw.Community = "s3cret"
	got := locate(t, testLocator(t, sw), hostIP)
	if got.Status != Found || got.IfIndex != 15 || got.VLAN != 20 {
		t.Errorf("Locate() = %+v, want found on bridge port 15 in VLAN 20", got)
	}
}

// accessBehindCore: the host on access-1's Gi1/0/12; core has learnt it
// on its uplink Te1/1/1 (ifIndex 10101) towards access-1. lldp adds the
// LLDP neighbours on both ends, else only the switches' own MACs tell.
func accessBehindCore(t *testing.T, lldp, macs bool) (core, access *fakeAgent) {
	core, access = newAgent(t), newAgent(t)
	core.rows("public", arpRow(120, hostIP, hostMAC), bridgeAddrRow(coreMAC),
		fdbRow(hostMAC, 101), fdbRow(otherMC, 5), basePortRow(101, 10101), basePortRow(5, 10005))
	core.rows("public", flat(ifRows(10101, "Te1/1/1", "to access-1"), ifRows(10005, "Gi1/0/5", ""), ifRows(120, "Vlan20", ""))...)
	access.rows("public", bridgeAddrRow(accMAC), fdbRow(hostMAC, 12), fdbRow(otherMC, 52))
	if macs {
		// Each has learnt the other's own MAC on its uplink.
		core.rows("public", fdbRow(accMAC, 101))
		access.rows("public", fdbRow(coreMAC, 52))
	}
	access.rows("public", flat(ifRows(12, "Gi1/0/12", "room 12"), ifRows(52, "Te1/0/52", "uplink"))...)
	if lldp {
		// core numbers LLDP ports 1..n, not by ifIndex: lldpLocPortId
		// (interfaceName) says which.
		core.rows("public", flat(lldpRows(3, 1, "access-1.corp.example", accMAC, ""), locPortRows(3, portIfName, "Te1/1/1"),
			// A neighbour on LLDP port 10005, which is not ifIndex 10005.
			lldpRows(10005, 2, "phone", otherMC, ""), locPortRows(10005, portIfName, "Gi1/0/99"))...)
		access.rows("public", flat(lldpRows(52, 1, "core", coreMAC, ""))...)
	}
	return core, access
}

func TestLocateUplink(t *testing.T) {
	want := Location{
		Addr: netip.MustParseAddr(hostIP), Status: Found, MAC: strings.ToLower(hostMAC),
		Switch: "access-1", Port: "Gi1/0/12", PortDescription: "room 12", IfIndex: 12, VLAN: 20, Path: []string{"core", "access-1"},
	}
	for _, tt := range []struct {
		name     string
		lldp     bool
		macs     bool
		reversed bool
	}{
		{"LLDP neighbour", true, false, false},
		{"another switch's MAC", false, true, false},
		{"another switch's MAC, access listed first", false, true, true},
		{"LLDP neighbour, access listed first", true, false, true},
		{"neither: the switch listed later", false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			core, access := accessBehindCore(t, tt.lldp, tt.macs)
			sws := []config.Switch{v2("core", core), v2("access-1", access)}
			if tt.reversed {
				sws[0], sws[1] = sws[1], sws[0]
			}
			got := locate(t, testLocator(t, sws...), hostIP)
			checkLocation(t, got, want)
		})
	}
}

// TestLocateUplinkOnly: the only switch that has learnt the MAC has it on
// an uplink to a switch that is not configured: the MAC, not the port.
func TestLocateUplinkOnly(t *testing.T) {
	core := newAgent(t)
	core.rows("public", arpRow(120, hostIP, hostMAC), fdbRow(hostMAC, 101), basePortRow(101, 10101))
	core.rows("public", flat(ifRows(10101, "Te1/1/1", ""), lldpRows(10101, 1, "access-9", accMAC, "10.0.0.9"))...)
	got := locate(t, testLocator(t, v2("core", core)), hostIP)
	checkLocation(t, got, Location{
		Addr: netip.MustParseAddr(hostIP), Status: MACOnly, MAC: strings.ToLower(hostMAC), Path: []string{"core"},
	}, "learnt on uplinks only", "core Te1/1/1 (LLDP neighbour access-9)")
}

// TestLocateNotFound: no switch knows the address, or the MAC has aged
// out of every forwarding table.
func TestLocateNotFound(t *testing.T) {
	a := newAgent(t)
	a.rows("public", noise()...)
	a.rows("public", arpRow(120, "10.20.0.99", hostMAC))
	l := testLocator(t, v2("core", a))
	checkLocation(t, locate(t, l, hostIP), Location{Addr: netip.MustParseAddr(hostIP), Status: NotFound})
	checkLocation(t, locate(t, l, "10.20.0.99"), Location{Addr: netip.MustParseAddr("10.20.0.99"), Status: MACOnly, MAC: strings.ToLower(hostMAC)})
}

// TestLocateUnreachable: a switch that never answers fails after the
// timeout and one retry, and is not asked again in that lookup; the
// others still answer.
func TestLocateUnreachable(t *testing.T) {
	dead := newAgent(t)
	dead.mode(func(a *fakeAgent) { a.silent = true })
	good := newAgent(t)
	good.rows("public", arpRow(1, hostIP, hostMAC), fdbRow(hostMAC, 3))

	start := time.Now()
	got := locate(t, testLocator(t, v2("dead", dead)), hostIP)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Locate() took %s against a dead switch, want about 2 x 250ms", el)
	}
	checkLocation(t, got, Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, "dead: no answer within 250ms, 2 tries (unreachable, or wrong community)")
	if n := len(dead.reqs()); n != 2 {
		t.Errorf("dead switch had %d requests, want 2 (one and its retry)", n)
	}

	got = locate(t, testLocator(t, v2("dead", dead), v2("good", good)), hostIP)
	checkLocation(t, got, Location{
		Addr: netip.MustParseAddr(hostIP), Status: Found, MAC: strings.ToLower(hostMAC), Switch: "good", IfIndex: 3, Port: "", Path: []string{"good"},
	}, "dead: no answer")
}

// TestLocateWrongCommunity: an agent drops a request with a community it
// does not know; that is a timeout to us.
func TestLocateWrongCommunity(t *testing.T) {
	a := newAgent(t)
	a.rows("public", arpRow(1, hostIP, hostMAC))
	sw := v2("core", a)
	sw.Community = "pubic"
	got := locate(t, testLocator(t, sw), hostIP)
	checkLocation(t, got, Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, "core: no answer", "wrong community")
}

// TestLocateClosedPort: nothing listens: ICMP port unreachable.
func TestLocateClosedPort(t *testing.T) {
	a := newAgent(t)
	addr := a.addr()
	a.conn.Close()
	got := locate(t, testLocator(t, config.Switch{Name: "core", Address: addr, Version: "2c", Community: "public"}), hostIP)
	if got.Status != Failed || !strings.Contains(got.Error, "core: ") {
		t.Errorf("Locate() = %+v, want failed naming core", got)
	}
}

// TestLocateEndless: tables that never end stop at the walk's and the
// seek's bounds, in bounded time, and the lookup goes on.
func TestLocateEndless(t *testing.T) {
	for _, col := range []struct {
		name string
		o    oid
	}{{"dot1qVlanFdbId", oidDot1qVlanFdbID}, {"ipNetToPhysicalPhysAddress", oidIPNetToPhysicalPhysAddress}, {"dot1qTpFdbPort", oidDot1qTpFdbPort}} {
		t.Run(col.name, func(t *testing.T) {
			a := newAgent(t)
			a.rows("public", mediaRow(1, hostIP, hostMAC), fdbRow(hostMAC, 3))
			a.mode(func(a *fakeAgent) { a.endless = col.o })
			l := testLocator(t, v2("sw", a))
			l.maxRows, l.maxSeek = 300, 300
			start := time.Now()
			got := locate(t, l, hostIP)
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("Locate() took %s", el)
			}
			if n := len(a.reqs()); n > 400 {
				t.Errorf("%d requests, want the walk or seek bounded", n)
			}
			if got.MAC != strings.ToLower(hostMAC) || got.Status != Found || !strings.Contains(got.Error, "sw: ") {
				t.Errorf("Locate() = %+v, want found through the other tables, with the bound in Error", got)
			}
		})
	}
}

// TestLocateGarbage: answers out of order, or not SNMP at all.
func TestLocateGarbage(t *testing.T) {
	t.Run("OIDs backwards", func(t *testing.T) {
		a := newAgent(t)
		a.rows("public", arpRow(1, "10.0.0.1", otherMC))
		a.mode(func(a *fakeAgent) { a.backwards = true })
		got := locate(t, testLocator(t, v2("sw", a)), hostIP)
		checkLocation(t, got, Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, "sw: ", "garbled answer")
	})
	t.Run("junk", func(t *testing.T) {
		a := newAgent(t)
		a.rows("public", arpRow(1, "10.0.0.1", otherMC))
		a.mode(func(a *fakeAgent) { a.junk = []byte{0x30, 0x82, 0xff, 0xff, 0x02, 0x01} })
		start := time.Now()
		got := locate(t, testLocator(t, v2("sw", a)), hostIP)
		checkLocation(t, got, Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, "sw: ")
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("Locate() took %s", el)
		}
	})
}

// TestLocatePaced: concurrent lookups send one request at a time to a
// switch, at least minInterval apart.
func TestLocatePaced(t *testing.T) {
	a := newAgent(t)
	a.rows("public", noise()...)
	a.rows("public", arpRow(120, hostIP, hostMAC), fdbRow(hostMAC, 3))
	l := testLocator(t, v2("sw", a))
	l.minInterval = 10 * time.Millisecond
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { locate(t, l, hostIP) })
	}
	wg.Wait()
	rs := a.reqs()
	for i := 1; i < len(rs); i++ {
		// Arrival gaps include the round trip on top of the pacing;
		// allow scheduling jitter of a millisecond.
		if gap := rs[i].at.Sub(rs[i-1].at); gap < l.minInterval-time.Millisecond {
			t.Errorf("requests %d and %d %s apart, want at least %s", i-1, i, gap, l.minInterval)
		}
	}
}

// TestLocateDeadline: the caller's deadline bounds the lookup, whatever
// the timeout.
func TestLocateDeadline(t *testing.T) {
	a := newAgent(t)
	a.mode(func(a *fakeAgent) { a.silent = true })
	l := testLocator(t, v2("sw", a))
	l.timeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := l.Locate(ctx, netip.MustParseAddr(hostIP))
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Locate() took %s with a 300ms deadline", el)
	}
	if err != nil || got.Status != Failed || !strings.Contains(got.Error, "time ran out") {
		t.Errorf("Locate() = %+v, %v; want failed, time ran out", got, err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := l.Locate(cctx, netip.MustParseAddr(hostIP)); err == nil {
		t.Errorf("Locate(cancelled) error = nil, want the context's")
	}
}

func TestNeighbourOn(t *testing.T) {
	f := lldpFacts{
		neighbours: []neighbour{{localPort: 3, sysName: "a"}, {localPort: 10005, sysName: "b"}, {localPort: 7, sysName: "c"}, {localPort: 9, sysName: "d"}},
		locPorts: map[uint32]locPort{
			3:     {idSubtype: portIfName, id: "Te1/1/1"},
			10005: {idSubtype: portIfName, id: "Gi1/0/99"},
			9:     {idSubtype: portLocal, id: "10109"},
		},
	}
	tests := []struct {
		ifIndex int
		names   []string
		want    string
	}{
		{10101, []string{"Te1/1/1"}, "a"},     // by name, port number differs
		{10101, []string{"te1/1/1", ""}, "a"}, // case-insensitive
		{10005, []string{"Gi1/0/5"}, ""},      // same number, other name
		{7, []string{"Gi1/0/7"}, "c"},         // no LLDP port name: number = ifIndex
		{10109, []string{"Gi1/0/109"}, "d"},   // LLDP port id is the ifIndex
		{9, []string{"Gi1/0/9"}, ""},          // LLDP port 9's id says it is ifIndex 10109
		{10005, nil, "b"},                     // no interface name: number = ifIndex
		{12, []string{"Gi1/0/12"}, ""},        // nothing
	}
	for _, tt := range tests {
		got := ""
		if n := f.neighbourOn(tt.ifIndex, tt.names...); n != nil {
			got = n.sysName
		}
		if got != tt.want {
			t.Errorf("neighbourOn(%d, %q) = %q, want %q", tt.ifIndex, tt.names, got, tt.want)
		}
	}
}

// TestProtocols: every protocol name the configuration accepts maps to
// gosnmp's.
func TestProtocols(t *testing.T) {
	for _, p := range []string{"SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"} {
		if _, ok := authProtos[p]; !ok {
			t.Errorf("auth_proto %s has no gosnmp protocol", p)
		}
	}
	for _, p := range []string{"AES", "AES-192", "AES-256", "AES-192-C", "AES-256-C"} {
		if _, ok := privProtos[p]; !ok {
			t.Errorf("priv_proto %s has no gosnmp protocol", p)
		}
	}
}

// TestLocateVendor: Location.Vendor comes from vendorOf, which the OUI
// list provides.
func TestLocateVendor(t *testing.T) {
	old := vendorOf
	t.Cleanup(func() { vendorOf = old })
	vendorOf = func(m string) string {
		if m == strings.ToLower(hostMAC) {
			return "Acme Networks"
		}
		return ""
	}
	a := newAgent(t)
	a.rows("public", arpRow(1, hostIP, hostMAC), fdbRow(hostMAC, 3))
	if got := locate(t, testLocator(t, v2("sw", a)), hostIP); got.Vendor != "Acme Networks" {
		t.Errorf("Locate() Vendor = %q, want Acme Networks", got.Vendor)
	}
}
