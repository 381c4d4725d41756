package locate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"
)

// The objects read, all read-only. Index layouts are in the comments; the
// MIBs are IP-MIB (RFC 4293), BRIDGE-MIB (RFC 4188), Q-BRIDGE-MIB
// (RFC 4363), IF-MIB (RFC 2863) and LLDP-MIB (IEEE 802.1AB-2005).
var (
	// ipNetToPhysicalPhysAddress.ifIndex.addrType.addrLen.addr...:
	// addrType 1 ipv4 (4 octets), 2 ipv6 (16).
	oidIPNetToPhysicalPhysAddress = oid{1, 3, 6, 1, 2, 1, 4, 35, 1, 4}
	// ipNetToMediaPhysAddress.ifIndex.a.b.c.d: IPv4 only, the older table.
	oidIPNetToMediaPhysAddress = oid{1, 3, 6, 1, 2, 1, 4, 22, 1, 2}

	// dot1dBaseBridgeAddress.0: the switch's own MAC.
	oidDot1dBaseBridgeAddress = oid{1, 3, 6, 1, 2, 1, 17, 1, 1, 0}
	// dot1dBasePortIfIndex.bridgePort = ifIndex.
	oidDot1dBasePortIfIndex = oid{1, 3, 6, 1, 2, 1, 17, 1, 4, 1, 2}
	// dot1dTpFdbPort.m1...m6 = bridgePort (0: unknown).
	oidDot1dTpFdbPort = oid{1, 3, 6, 1, 2, 1, 17, 4, 3, 1, 2}
	// dot1qTpFdbPort.fdbId.m1...m6 = bridgePort. The first index is the
	// filtering database's id, which equals the VLAN id only on some
	// switches: dot1qVlanFdbId maps them.
	oidDot1qTpFdbPort = oid{1, 3, 6, 1, 2, 1, 17, 7, 1, 2, 2, 1, 2}
	// dot1qVlanFdbId.timeMark.vlanIndex = fdbId (dot1qVlanCurrentTable).
	oidDot1qVlanFdbID = oid{1, 3, 6, 1, 2, 1, 17, 7, 1, 4, 2, 1, 3}

	oidIfDescr = oid{1, 3, 6, 1, 2, 1, 2, 2, 1, 2}     // .ifIndex
	oidIfName  = oid{1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1} // .ifIndex
	oidIfAlias = oid{1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18}

	// lldpLocPortEntry.column.lldpLocPortNum
	oidLocPort = oid{1, 0, 8802, 1, 1, 2, 1, 3, 7, 1}
	// lldpRemEntry.column.timeMark.localPortNum.remIndex
	oidRemSys = oid{1, 0, 8802, 1, 1, 2, 1, 4, 1, 1}
	// lldpRemManAddrIfSubtype.timeMark.localPortNum.remIndex.addrSubtype.addrLen.addr...
	oidRemMan = oid{1, 0, 8802, 1, 1, 2, 1, 4, 2, 1, 3}
	// lldpLocChassisIdSubtype.0 and lldpLocChassisId.0
	oidLocChas = oid{1, 0, 8802, 1, 1, 2, 1, 3, 1, 0}
	oidLocChID = oid{1, 0, 8802, 1, 1, 2, 1, 3, 2, 0}
)

// Columns of lldpRemEntry and lldpLocPortEntry used here.
const (
	remChassisIDSubtype = 4
	remChassisID        = 5
	remSysName          = 9
	locPortIDSubtype    = 2
	locPortID           = 3
	locPortDesc         = 4

	// LldpChassisIdSubtype macAddress(4); LldpPortIdSubtype
	// interfaceAlias(1), interfaceName(5), local(7).
	chassisMAC     = 4
	portIfAlias    = 1
	portIfName     = 5
	portLocal      = 7
	manAddrIPv4    = 1 // AddressFamilyNumbers ipV4(1)
	manAddrIPv6    = 2 // ipV6(2)
	maxLocPortGets = 256
)

// mac is an Ethernet address.
type mac [6]byte

// String is the lower-case colon form, e.g. 00:11:22:33:44:55.
func (m mac) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// sub is the MAC as six decimal sub-identifiers, as the FDB tables index it.
func (m mac) sub() oid {
	return oid{uint32(m[0]), uint32(m[1]), uint32(m[2]), uint32(m[3]), uint32(m[4]), uint32(m[5])}
}

// macOf reads a MAC from an OCTET STRING of 6 octets; an empty string (an
// incomplete neighbour entry), all zeros and multicast are none.
func macOf(v gosnmp.SnmpPDU) (mac, bool) {
	b, ok := bytesOf(v)
	var m mac
	if !ok || len(b) != 6 {
		return m, false
	}
	copy(m[:], b)
	if m == (mac{}) || m[0]&1 == 1 {
		return m, false
	}
	return m, true
}

// arp finds the address's MAC in the switch's neighbour table (IPv4 ARP,
// IPv6 neighbour discovery): ipNetToPhysicalTable, then, for IPv4,
// ipNetToMediaTable, which older switches and some Cisco releases keep for
// IPv4 while the newer table holds IPv6 only. It also returns the ifIndex
// of the routed interface the entry is on (a VLAN interface).
func (s *session) arp(ctx context.Context, a netip.Addr) (mac, uint32, bool, error) {
	raw := a.AsSlice()
	typ := uint32(1)
	if a.Is6() {
		typ = 2
	}
	addr := make(oid, len(raw))
	for i, b := range raw {
		addr[i] = uint32(b)
	}
	v, idx, ok, err := s.seek(ctx, 0, oidIPNetToPhysicalPhysAddress, func(k uint32) oid {
		return append(oid{k, typ, uint32(len(raw))}, addr...)
	})
	if ok {
		if m, good := macOf(v); good {
			return m, idx[0], true, nil
		}
	}
	if s.fatal != nil || !a.Is4() {
		return mac{}, 0, false, err
	}
	// Not in the newer table, or it is missing or garbled: the older.
	v, idx, ok, err2 := s.seek(ctx, 0, oidIPNetToMediaPhysAddress, func(k uint32) oid {
		return append(oid{k}, addr...)
	})
	if ok {
		if m, good := macOf(v); good {
			if err != nil {
				s.note("%v", err)
			}
			return m, idx[0], true, nil
		}
	}
	return mac{}, 0, false, errors.Join(err, err2)
}

// vlanIfRE reads the VLAN of a routed VLAN interface's ifName: Vlan20
// (Cisco, Arista), Vl20, vlan.20, VLAN-20, Vlanif20 (Huawei).
var vlanIfRE = regexp.MustCompile(`(?i)^(?:vlan|vl|vlanif|vlan-interface)[ ._-]?(\d{1,4})$`)

// vlanOfIf is the VLAN the routed interface ifIndex serves, 0 when its
// name does not say.
func (s *session) vlanOfIf(ctx context.Context, ifIndex uint32) int {
	vs, err := s.get(ctx, 0, oidIfName.child(ifIndex), oidIfDescr.child(ifIndex))
	if err != nil {
		return 0
	}
	for _, v := range vs {
		if m := vlanIfRE.FindStringSubmatch(textOf(v)); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= 1 && n <= 4094 {
				return n
			}
		}
	}
	return 0
}

// factCache keeps what a switch says about itself, which changes rarely,
// for the refresh interval; only complete answers are kept.
type factCache struct {
	mu   sync.Mutex
	self cached[[]mac]
	fdb  cached[fdbFacts]
	lldp cached[lldpFacts]
}

type cached[T any] struct {
	v  T
	at time.Time
	ok bool
}

func fetchCached[T any](mu *sync.Mutex, c *cached[T], ttl time.Duration, fetch func() (T, error)) (T, error) {
	mu.Lock()
	if c.ok && time.Since(c.at) < ttl {
		v := c.v
		mu.Unlock()
		return v, nil
	}
	mu.Unlock()
	v, err := fetch()
	if err != nil {
		return v, err
	}
	mu.Lock()
	c.v, c.at, c.ok = v, time.Now(), true
	mu.Unlock()
	return v, nil
}

// selfMACs are the switch's own MACs: dot1dBaseBridgeAddress and the LLDP
// chassis ID when it is a MAC. A port that has learnt one of them leads
// to that switch.
func (s *session) selfMACs(ctx context.Context) ([]mac, error) {
	return fetchCached(&s.sw.cache.mu, &s.sw.cache.self, s.loc.refresh, func() ([]mac, error) {
		vs, err := s.get(ctx, 0, oidDot1dBaseBridgeAddress, oidLocChas, oidLocChID)
		if err != nil {
			return nil, err
		}
		var out []mac
		if m, ok := macOf(vs[0]); ok {
			out = append(out, m)
		}
		if st, ok := intOf(vs[1]); ok && st == chassisMAC {
			if m, ok := macOf(vs[2]); ok && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
		return out, nil
	})
}

// fdbFacts maps Q-BRIDGE filtering database ids to the VLANs that use
// them (several VLANs share one FDB with shared VLAN learning).
type fdbFacts struct {
	vlans  map[uint32][]int
	byVLAN map[int]uint32
	ids    []uint32
}

// vlanOf is the VLAN of FDB id f: hint when it is one of f's VLANs, else
// the lowest. Without dot1qVlanCurrentTable the FDB id is taken as the
// VLAN id, as switches with independent VLAN learning number them.
func (f fdbFacts) vlanOf(id uint32, hint int) int {
	vl := f.vlans[id]
	if len(vl) == 0 {
		if id >= 1 && id <= 4094 {
			return int(id)
		}
		return 0
	}
	if slices.Contains(vl, hint) {
		return hint
	}
	return vl[0]
}

func (s *session) fdbFacts(ctx context.Context) (fdbFacts, error) {
	return fetchCached(&s.sw.cache.mu, &s.sw.cache.fdb, s.loc.refresh, func() (fdbFacts, error) {
		f := fdbFacts{vlans: map[uint32][]int{}, byVLAN: map[int]uint32{}}
		bad := 0
		err := s.walk(ctx, 0, oidDot1qVlanFdbID, func(idx oid, v gosnmp.SnmpPDU) bool {
			id, ok := intOf(v)
			if !ok || len(idx) != 2 || idx[1] < 1 || idx[1] > 4094 || id < 0 || id > 1<<31 {
				bad++
				return true
			}
			fid := uint32(id)
			f.byVLAN[int(idx[1])] = fid
			if !slices.Contains(f.vlans[fid], int(idx[1])) {
				f.vlans[fid] = append(f.vlans[fid], int(idx[1]))
			}
			return true
		})
		if bad > 0 {
			s.note("dot1qVlanFdbId: %d rows of an unexpected index or type ignored", bad)
		}
		if err != nil {
			return f, err
		}
		for id, vl := range f.vlans {
			slices.Sort(vl)
			f.ids = append(f.ids, id)
		}
		slices.Sort(f.ids)
		return f, nil
	})
}

// portHit is where a switch has learnt a MAC.
type portHit struct {
	bridgePort int
	ifIndex    int
	vlan       int
	name       string // ifName, else ifDescr
	descr      string // ifDescr
	alias      string // ifAlias
}

// label is the port's name for messages.
func (h portHit) label() string {
	if h.name != "" {
		return h.name
	}
	return "ifIndex " + strconv.Itoa(h.ifIndex)
}

// findMAC finds the port the switch learnt m on: Q-BRIDGE-MIB
// dot1qTpFdbTable first, then BRIDGE-MIB dot1dTpFdbTable, then the
// latter per VLAN (Cisco's per-VLAN bridge instances, for the switch's
// configured VLANs, hint first). A non-fatal error (a table missing or
// garbled) only moves on to the next way.
func (s *session) findMAC(ctx context.Context, m mac, hint int) (portHit, bool, error) {
	port, vlanCtx, vlan := 0, 0, 0
	if fdb, err := s.fdbFacts(ctx); err != nil && s.fatal != nil {
		return portHit{}, false, err
	} else if err == nil && len(fdb.ids) > 0 {
		// Direct GETs of dot1qTpFdbPort.fdbId.mac, the hint's FDB first.
		ids := fdb.ids
		if h, ok := fdb.byVLAN[hint]; ok {
			ids = append([]uint32{h}, slices.DeleteFunc(slices.Clone(ids), func(id uint32) bool { return id == h })...)
		}
	batches:
		for len(ids) > 0 {
			batch := ids[:min(len(ids), maxGetOIDs)]
			ids = ids[len(batch):]
			oids := make([]oid, len(batch))
			for i, id := range batch {
				oids[i] = oidDot1qTpFdbPort.child(id).child(m.sub()...)
			}
			vs, err := s.get(ctx, 0, oids...)
			if err != nil {
				if s.fatal != nil {
					return portHit{}, false, err
				}
				s.note("%v", err)
				break
			}
			for i, v := range vs {
				if p, ok := intOf(v); ok && p > 0 {
					port, vlan = int(p), fdb.vlanOf(batch[i], hint)
					break batches
				}
			}
		}
	} else {
		if err != nil {
			s.note("%v", err)
		}
		// No dot1qVlanCurrentTable (or it is garbled): find the FDB id
		// by seeking through dot1qTpFdbPort.
		v, idx, ok, err := s.seek(ctx, 0, oidDot1qTpFdbPort, func(k uint32) oid { return append(oid{k}, m.sub()...) })
		if err != nil {
			if s.fatal != nil {
				return portHit{}, false, err
			}
			s.note("%v", err)
		}
		if p, good := intOf(v); ok && good && p > 0 {
			port, vlan = int(p), fdb.vlanOf(idx[0], hint)
		}
	}
	if port == 0 {
		vs, err := s.get(ctx, 0, oidDot1dTpFdbPort.child(m.sub()...))
		if err != nil && s.fatal != nil {
			return portHit{}, false, err
		}
		if err == nil {
			if p, ok := intOf(vs[0]); ok && p > 0 {
				port = int(p)
			}
		}
	}
	if port == 0 {
		for _, v := range s.vlanOrder(hint) {
			vs, err := s.get(ctx, v, oidDot1dTpFdbPort.child(m.sub()...))
			if err != nil {
				if s.fatal != nil {
					return portHit{}, false, err
				}
				s.note("%v", err)
				continue
			}
			if p, ok := intOf(vs[0]); ok && p > 0 {
				port, vlanCtx, vlan = int(p), v, v
				break
			}
		}
	}
	if port == 0 {
		return portHit{}, false, s.fatal
	}
	h, err := s.resolvePort(ctx, vlanCtx, port)
	h.vlan = vlan
	return h, err == nil, err
}

// vlanOrder is the switch's configured VLANs, hint first.
func (s *session) vlanOrder(hint int) []int {
	vl := s.sw.cfg.VLANs
	if !slices.Contains(vl, hint) {
		return vl
	}
	out := []int{hint}
	for _, v := range vl {
		if v != hint {
			out = append(out, v)
		}
	}
	return out
}

// resolvePort maps a bridge port to its interface: dot1dBasePortIfIndex
// in the same bridge instance (Cisco numbers bridge ports per VLAN), or,
// where the switch has no such table or row, the bridge port itself, as
// many switches number bridge ports by ifIndex; then IF-MIB's names.
func (s *session) resolvePort(ctx context.Context, vlanCtx, bport int) (portHit, error) {
	h := portHit{bridgePort: bport, ifIndex: bport}
	vs, err := s.get(ctx, vlanCtx, oidDot1dBasePortIfIndex.child(uint32(bport)))
	if err != nil {
		if s.fatal != nil {
			return h, err
		}
		s.note("%v", err)
	} else if i, ok := intOf(vs[0]); ok && i > 0 && i <= 1<<31-1 {
		h.ifIndex = int(i)
	}
	i := uint32(h.ifIndex)
	vs, err = s.get(ctx, 0, oidIfName.child(i), oidIfDescr.child(i), oidIfAlias.child(i))
	if err != nil {
		if s.fatal != nil {
			return h, err
		}
		s.note("%v", err)
		return h, nil
	}
	h.name, h.descr, h.alias = textOf(vs[0]), textOf(vs[1]), textOf(vs[2])
	if h.name == "" {
		h.name = h.descr
	}
	return h, nil
}

// neighbour is one LLDP neighbour of the switch.
type neighbour struct {
	localPort  uint32 // lldpRemLocalPortNum, an lldpLocPortNum
	sysName    string
	chassisID  string // as text, or the MAC's colon form
	chassisMAC mac
	hasMAC     bool
	mgmt       []netip.Addr
}

// locPort is the switch's own description of one LLDP port.
type locPort struct {
	idSubtype int
	id        string
	desc      string
}

type lldpFacts struct {
	neighbours []neighbour
	locPorts   map[uint32]locPort
}

func (s *session) lldpFacts(ctx context.Context) (lldpFacts, error) {
	return fetchCached(&s.sw.cache.mu, &s.sw.cache.lldp, s.loc.refresh, func() (lldpFacts, error) {
		type key struct{ port, rem uint32 }
		byKey := map[key]*neighbour{}
		var order []key
		row := func(idx oid) (*neighbour, bool) {
			if len(idx) < 3 {
				return nil, false
			}
			k := key{idx[1], idx[2]}
			n, ok := byKey[k]
			if !ok {
				if len(order) >= s.loc.maxRows {
					return nil, false
				}
				n = &neighbour{localPort: idx[1]}
				byKey[k] = n
				order = append(order, k)
			}
			return n, true
		}
		subtypes := map[key]int64{}
		var errs []error
		for _, col := range []uint32{remChassisIDSubtype, remChassisID, remSysName} {
			err := s.walk(ctx, 0, oidRemSys.child(col), func(idx oid, v gosnmp.SnmpPDU) bool {
				n, ok := row(idx)
				if !ok || len(idx) != 3 {
					return true
				}
				switch col {
				case remChassisIDSubtype:
					subtypes[key{idx[1], idx[2]}], _ = intOf(v)
				case remChassisID:
					if subtypes[key{idx[1], idx[2]}] == chassisMAC {
						n.chassisMAC, n.hasMAC = macOf(v)
					}
					if n.hasMAC {
						n.chassisID = n.chassisMAC.String()
					} else {
						n.chassisID = textOf(v)
					}
				case remSysName:
					n.sysName = textOf(v)
				}
				return true
			})
			if err != nil {
				if s.fatal != nil {
					return lldpFacts{}, err
				}
				errs = append(errs, err)
			}
		}
		err := s.walk(ctx, 0, oidRemMan, func(idx oid, v gosnmp.SnmpPDU) bool {
			// timeMark.localPort.remIndex.addrSubtype[.len].addr...
			if len(idx) < 5 {
				return true
			}
			n, ok := byKey[key{idx[1], idx[2]}]
			if !ok {
				return true
			}
			rest := idx[4:]
			if len(rest) > 0 && int(rest[0]) == len(rest)-1 {
				rest = rest[1:]
			}
			b := make([]byte, 0, len(rest))
			for _, x := range rest {
				if x > 255 {
					return true
				}
				b = append(b, byte(x))
			}
			if a, ok := netip.AddrFromSlice(b); ok && ((idx[3] == manAddrIPv4 && a.Is4()) || (idx[3] == manAddrIPv6 && a.Is6())) && len(n.mgmt) < 8 {
				n.mgmt = append(n.mgmt, a.Unmap())
			}
			return true
		})
		if err != nil {
			if s.fatal != nil {
				return lldpFacts{}, err
			}
			errs = append(errs, err)
		}
		f := lldpFacts{locPorts: map[uint32]locPort{}}
		var ports []uint32
		for _, k := range order {
			f.neighbours = append(f.neighbours, *byKey[k])
			if !slices.Contains(ports, k.port) && len(ports) < maxLocPortGets {
				ports = append(ports, k.port)
			}
		}
		var oids []oid
		for _, p := range ports {
			oids = append(oids, oidLocPort.child(locPortIDSubtype, p), oidLocPort.child(locPortID, p), oidLocPort.child(locPortDesc, p))
		}
		vs, err := s.get(ctx, 0, oids...)
		if err != nil {
			if s.fatal != nil {
				return lldpFacts{}, err
			}
			errs = append(errs, err)
		} else {
			for i, p := range ports {
				st, _ := intOf(vs[3*i])
				id := ""
				if st == portIfAlias || st == portIfName || st == portLocal {
					id = textOf(vs[3*i+1])
				}
				if lp := (locPort{int(st), id, textOf(vs[3*i+2])}); lp != (locPort{}) {
					f.locPorts[p] = lp
				}
			}
		}
		return f, errors.Join(errs...)
	})
}

// neighbourOn is the LLDP neighbour on the interface ifIndex, whose
// names are ifName and ifDescr, or nil.
//
// LLDP numbers ports by lldpLocPortNum, which is not always the ifIndex.
// The assumption, in order: an LLDP port whose lldpLocPortId (subtype
// interfaceName, interfaceAlias or local) or lldpLocPortDesc is the
// ifIndex in decimal is that interface, and one whose such number is
// neither the ifIndex nor its own port number is another interface;
// when the switch names the LLDP port and the interface has a name, they
// match when a name is equal (case-insensitive); when either has no
// name, the port number must equal the ifIndex, which is what most
// switches do.
func (f lldpFacts) neighbourOn(ifIndex int, names ...string) *neighbour {
	var ours []string
	for _, n := range names {
		if n != "" {
			ours = append(ours, n)
		}
	}
	for i := range f.neighbours {
		n := &f.neighbours[i]
		lp := f.locPorts[n.localPort]
		var theirs []string
		other := false
		for _, t := range []string{lp.id, lp.desc} {
			if t == "" {
				continue
			}
			if x, err := strconv.Atoi(t); err == nil {
				if x == ifIndex {
					return n
				}
				if int64(x) != int64(n.localPort) {
					// An ifIndex of another interface.
					other = true
				}
				continue
			}
			theirs = append(theirs, t)
		}
		if len(theirs) > 0 && len(ours) > 0 {
			for _, t := range theirs {
				for _, o := range ours {
					if strings.EqualFold(t, o) {
						return n
					}
				}
			}
			continue
		}
		if !other && int64(n.localPort) == int64(ifIndex) {
			return n
		}
	}
	return nil
}
