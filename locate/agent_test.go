package locate

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

// fakeAgent is an SNMPv2c agent on 127.0.0.1, built on gosnmp's packet
// codec, that answers GET, GETNEXT and GETBULK from an OID map per
// community (a community it does not know gets no answer, as real agents
// do). Tests fill it with the rows helpers below and read back the
// requests it had.
type fakeAgent struct {
	t    *testing.T
	conn *net.UDPConn

	mu    sync.Mutex
	views map[string]*view
	// silent: read every request, answer none (an unreachable switch).
	silent bool
	// endless is a column under which GETNEXT always answers one row
	// more: a table without end.
	endless oid
	// backwards: GETNEXT and GETBULK answer an OID before the one asked.
	backwards bool
	// junk: every answer is these bytes.
	junk     []byte
	requests []request
}

// request is what the agent was asked.
type request struct {
	at        time.Time
	community string
	pdu       gosnmp.PDUType
	oids      []string
}

type view struct {
	oids []oid // sorted
	vals map[string]gosnmp.SnmpPDU
}

func newAgent(t *testing.T) *fakeAgent {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{t: t, conn: conn, views: map[string]*view{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return a
}

// addr is the agent's address as locate.switches[].address takes it.
func (a *fakeAgent) addr() string { return a.conn.LocalAddr().String() }

func (a *fakeAgent) serve() {
	buf := make([]byte, 65536)
	dec := &gosnmp.GoSNMP{Version: gosnmp.Version2c}
	for {
		n, from, err := a.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		req, err := dec.SnmpDecodePacket(slices.Clone(buf[:n]))
		if err != nil {
			a.t.Logf("fake agent: undecodable request: %v", err)
			continue
		}
		out := a.answer(req)
		if out != nil {
			a.conn.WriteToUDP(out, from)
		}
	}
}

func (a *fakeAgent) answer(req *gosnmp.SnmpPacket) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := request{at: time.Now(), community: req.Community, pdu: req.PDUType}
	for _, v := range req.Variables {
		r.oids = append(r.oids, v.Name)
	}
	a.requests = append(a.requests, r)
	v, ok := a.views[req.Community]
	if a.silent || !ok {
		return nil
	}
	if a.junk != nil {
		return a.junk
	}
	var vars []gosnmp.SnmpPDU
	switch req.PDUType {
	case gosnmp.GetRequest:
		for _, q := range req.Variables {
			vars = append(vars, v.get(mustOID(q.Name)))
		}
	case gosnmp.GetNextRequest:
		for _, q := range req.Variables {
			vars = append(vars, a.next(v, mustOID(q.Name)))
		}
	case gosnmp.GetBulkRequest:
		nr := min(int(req.NonRepeaters), len(req.Variables))
		for _, q := range req.Variables[:nr] {
			vars = append(vars, a.next(v, mustOID(q.Name)))
		}
		cur := make([]oid, 0, len(req.Variables)-nr)
		for _, q := range req.Variables[nr:] {
			cur = append(cur, mustOID(q.Name))
		}
		for range min(int(req.MaxRepetitions), 50) {
			for i := range cur {
				nv := a.next(v, cur[i])
				vars = append(vars, nv)
				if o, ok := parseOID(nv.Name); ok {
					cur[i] = o
				}
			}
		}
	default:
		return nil
	}
	resp := &gosnmp.SnmpPacket{
		Version:   gosnmp.Version2c,
		Community: req.Community,
		PDUType:   gosnmp.GetResponse,
		RequestID: req.RequestID,
		Variables: vars,
	}
	out, err := resp.MarshalMsg()
	if err != nil {
		a.t.Errorf("fake agent: marshal: %v", err)
		return nil
	}
	return out
}

// knownColumns are the objects the fake agent says exist (NoSuchInstance
// for a missing row) when it has any row under them; any other missing
// OID is NoSuchObject.
var knownColumns = []oid{
	oidIPNetToPhysicalPhysAddress, oidIPNetToMediaPhysAddress, oidDot1dBasePortIfIndex,
	oidDot1dTpFdbPort, oidDot1qTpFdbPort, oidDot1qVlanFdbID, oidIfDescr, oidIfName, oidIfAlias,
	oidLocPort.child(locPortIDSubtype), oidLocPort.child(locPortID), oidLocPort.child(locPortDesc),
}

func (v *view) get(o oid) gosnmp.SnmpPDU {
	if pdu, ok := v.vals[o.String()]; ok {
		return pdu
	}
	for _, c := range knownColumns {
		if o.under(c) {
			i, _ := slices.BinarySearchFunc(v.oids, c, cmpOID)
			if i < len(v.oids) && v.oids[i].under(c) {
				return gosnmp.SnmpPDU{Name: o.String(), Type: gosnmp.NoSuchInstance}
			}
		}
	}
	return gosnmp.SnmpPDU{Name: o.String(), Type: gosnmp.NoSuchObject}
}

func (a *fakeAgent) next(v *view, o oid) gosnmp.SnmpPDU {
	if a.backwards && len(v.oids) > 0 {
		return v.vals[v.oids[0].String()]
	}
	i, found := slices.BinarySearchFunc(v.oids, o, cmpOID)
	if found {
		i++
	}
	var nx oid
	if i < len(v.oids) {
		nx = v.oids[i]
	}
	if e := a.endless; e != nil && (o.under(e) || cmpOID(o, e) <= 0) && (nx == nil || cmpOID(nx, e) > 0) {
		n := uint32(1)
		if o.under(e) {
			n = o[len(e)] + 1
		}
		return gosnmp.SnmpPDU{Name: e.child(n).String(), Type: gosnmp.Integer, Value: int(n)}
	}
	if nx == nil {
		return gosnmp.SnmpPDU{Name: o.String(), Type: gosnmp.EndOfMibView}
	}
	return v.vals[nx.String()]
}

func mustOID(s string) oid {
	o, ok := parseOID(s)
	if !ok {
		panic("bad OID " + s)
	}
	return o
}

// set stores one object in community's view.
func (a *fakeAgent) set(community string, o oid, typ gosnmp.Asn1BER, val any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.views[community]
	if v == nil {
		v = &view{vals: map[string]gosnmp.SnmpPDU{}}
		a.views[community] = v
	}
	key := o.String()
	if _, ok := v.vals[key]; !ok {
		i, _ := slices.BinarySearchFunc(v.oids, o, cmpOID)
		v.oids = slices.Insert(v.oids, i, o.child())
	}
	v.vals[key] = gosnmp.SnmpPDU{Name: key, Type: typ, Value: val}
}

// rows fills community's view with the given rows.
func (a *fakeAgent) rows(community string, rs ...row) {
	for _, r := range rs {
		a.set(community, r.o, r.typ, r.val)
	}
}

// mode changes how the agent answers (silent, endless, backwards, junk).
func (a *fakeAgent) mode(f func(a *fakeAgent)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

// reqs is the requests the agent has had.
func (a *fakeAgent) reqs() []request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// row is one object of a fake agent's MIB.
type row struct {
	o   oid
	typ gosnmp.Asn1BER
	val any
}

func macBytes(s string) []byte {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func macSub(s string) oid {
	var m mac
	copy(m[:], macBytes(s))
	return m.sub()
}

func str(o oid, s string) row { return row{o, gosnmp.OctetString, []byte(s)} }
func num(o oid, n int) row    { return row{o, gosnmp.Integer, n} }

// arpRow is an ipNetToPhysicalTable entry.
func arpRow(ifIndex uint32, addr string, hw string) row {
	a := netip.MustParseAddr(addr)
	typ := uint32(1)
	if a.Is6() {
		typ = 2
	}
	o := oidIPNetToPhysicalPhysAddress.child(ifIndex, typ, uint32(a.BitLen()/8))
	for _, b := range a.AsSlice() {
		o = append(o, uint32(b))
	}
	return row{o, gosnmp.OctetString, macBytes(hw)}
}

// mediaRow is an ipNetToMediaTable entry.
func mediaRow(ifIndex uint32, addr string, hw string) row {
	o := oidIPNetToMediaPhysAddress.child(ifIndex)
	for _, b := range netip.MustParseAddr(addr).AsSlice() {
		o = append(o, uint32(b))
	}
	return row{o, gosnmp.OctetString, macBytes(hw)}
}

func qfdbRow(fdbID uint32, hw string, port int) row {
	return num(oidDot1qTpFdbPort.child(fdbID).child(macSub(hw)...), port)
}
func vlanFdbRow(vlan, fdbID uint32) row { return num(oidDot1qVlanFdbID.child(0, vlan), int(fdbID)) }
func fdbRow(hw string, port int) row    { return num(oidDot1dTpFdbPort.child(macSub(hw)...), port) }
func basePortRow(port, ifIndex uint32) row {
	return num(oidDot1dBasePortIfIndex.child(port), int(ifIndex))
}
func bridgeAddrRow(hw string) row {
	return row{oidDot1dBaseBridgeAddress, gosnmp.OctetString, macBytes(hw)}
}

// ifRows are an interface's ifName, ifDescr and ifAlias.
func ifRows(ifIndex uint32, name, alias string) []row {
	return []row{
		str(oidIfDescr.child(ifIndex), name),
		str(oidIfName.child(ifIndex), name),
		str(oidIfAlias.child(ifIndex), alias),
	}
}

// lldpRows are one LLDP neighbour on local port localPort: its chassis
// MAC, system name and management address.
func lldpRows(localPort, remIndex uint32, sysName, chassis, mgmt string) []row {
	idx := oid{0, localPort, remIndex}
	rs := []row{
		num(oidRemSys.child(remChassisIDSubtype).child(idx...), chassisMAC),
		{oidRemSys.child(remChassisID).child(idx...), gosnmp.OctetString, macBytes(chassis)},
		str(oidRemSys.child(remSysName).child(idx...), sysName),
	}
	if mgmt != "" {
		a := netip.MustParseAddr(mgmt)
		o := oidRemMan.child(idx...).child(manAddrIPv4, 4)
		for _, b := range a.AsSlice() {
			o = append(o, uint32(b))
		}
		rs = append(rs, num(o, 2))
	}
	return rs
}

// locPortRows are the switch's own LLDP port localPort, named name.
func locPortRows(localPort uint32, subtype int, name string) []row {
	return []row{
		num(oidLocPort.child(locPortIDSubtype, localPort), subtype),
		str(oidLocPort.child(locPortID, localPort), name),
		str(oidLocPort.child(locPortDesc, localPort), name),
	}
}

func flat(groups ...[]row) []row {
	var out []row
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// TestFakeAgent pins the fake agent's own behaviour against gosnmp.
func TestFakeAgent(t *testing.T) {
	a := newAgent(t)
	a.rows("public", flat(ifRows(1, "Gi1/0/1", "desk"), ifRows(2, "Gi1/0/2", ""))...)
	host, port, _ := net.SplitHostPort(a.addr())
	p, _ := strconv.Atoi(port)
	c := &gosnmp.GoSNMP{Target: host, Port: uint16(p), Community: "public", Version: gosnmp.Version2c, Timeout: time.Second}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.BulkWalkAll(oidIfName.String())
	if err != nil || len(got) != 2 || string(got[1].Value.([]byte)) != "Gi1/0/2" {
		t.Fatalf("BulkWalkAll(ifName) = %v, %v; want 2 rows", got, err)
	}
	r, err := c.Get([]string{oidIfName.child(3).String(), oidDot1dTpFdbPort.child(1, 2, 3, 4, 5, 6).String()})
	if err != nil || r.Variables[0].Type != gosnmp.NoSuchInstance || r.Variables[1].Type != gosnmp.NoSuchObject {
		t.Fatalf("Get(missing) = %+v, %v; want NoSuchInstance, NoSuchObject", r, err)
	}
}
