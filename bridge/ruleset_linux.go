package bridge

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/internal/sourcekey"
)

// ruleset is everything the nftables tables are built from.
type ruleset struct {
	Enforce   bool
	Inside    string
	Outside   string
	Bridge    string
	BridgeMAC net.HardwareAddr
	Ports     []uint16
	ProxyPort uint16
	Relays4   []netip.Prefix
	Relays6   []netip.Prefix
	// NewConnsPerSource sheds non-relay connection floods (per second; 0 off).
	NewConnsPerSource int
}

func rulesetFor(c *config.Config, mac net.HardwareAddr) ruleset {
	r := ruleset{
		Enforce:   c.Mode == config.Enforce,
		Inside:    c.Interfaces.Inside,
		Outside:   c.Interfaces.Outside,
		Bridge:    c.Interfaces.Bridge,
		BridgeMAC: mac,
		ProxyPort: uint16(c.Proxy.Port),
	}
	for _, p := range c.Ports {
		r.Ports = append(r.Ports, uint16(p))
	}
	slices.Sort(r.Ports)
	relays := make([]netip.Prefix, 0, len(c.Relays))
	for _, rl := range c.Relays {
		relays = append(relays, rl.Address.Net())
	}
	r.Relays4, r.Relays6 = splitFamilies(relays)
	r.NewConnsPerSource = max(0, c.Proxy.NewConnsPerSource)
	return r
}

func tables() (br, nd, in *nftables.Table) {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyBridge},
		&nftables.Table{Name: TableName, Family: nftables.TableFamilyNetdev},
		&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88a8 // 802.1ad service tag
	etherType9100 = 0x9100 // pre-802.1ad vendor outer tag
)

// vlanTPIDs are the tag protocol identifiers of the VLAN tags the stacked
// chain looks through.
var vlanTPIDs = []uint16{etherTypeVLAN, etherTypeQinQ, etherType9100}

// ip6TCPOrExt are the IPv6 next-header values behind which TCP may hide:
// TCP itself and the extension headers (RFC 8200, RFC 7045's list).
var ip6TCPOrExt = []byte{0, unix.IPPROTO_TCP, 43, 44, 51, 60, 135, 139, 140, 253, 254}

// maxParsedTags is how many stacked tags the stacked chain reads through to
// the IP header; a frame with more is dropped (see stackedRules).
const maxParsedTags = 3

// Rule building blocks. Register 1 is the scratch register throughout.

func ifname(name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

func etherType(t uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)},
	}
}

// vlanInner matches the ether type inside an 802.1Q tag. nftables rebuilds
// an offloaded tag in the link-layer header it reads, so this works whether
// or not the driver stripped the tag.
func vlanInner(t uint16) []expr.Any {
	return append(etherType(etherTypeVLAN),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 16, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)},
	)
}

func metaProtocol(t uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)},
	}
}

func nfproto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func tcp() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
}

// tcpPort matches the TCP destination (offset 2) or source (offset 0) port
// against a set; tcp() must come first.
func tcpPort(offset uint32, set *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
	}
}

func alive(set *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
	}
}

func saddrIn(v6 bool, set *nftables.Set) []expr.Any {
	if v6 {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
	}
}

func counter(name string) expr.Any { return &expr.Objref{Type: 1, Name: name} }

func accept() expr.Any { return &expr.Verdict{Kind: expr.VerdictAccept} }

func tcpReset() expr.Any { return &expr.Reject{Type: unix.NFT_REJECT_TCP_RST} }

// toHost readdresses the frame to the bridge's own MAC and marks it for the
// local host: there is no broute on this kernel, and ip_rcv drops frames the
// bridge already classified as PACKET_OTHERHOST.
func toHost(mac net.HardwareAddr) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: []byte{unix.PACKET_HOST}},
		&expr.Meta{Key: expr.MetaKeyPKTTYPE, SourceRegister: true, Register: 1},
		&expr.Immediate{Register: 1, Data: []byte(mac)},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 6},
	}
}

func setMark(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

func join(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func aliveElement() []nftables.SetElement {
	return []nftables.SetElement{{Key: []byte{unix.IPPROTO_TCP}, Timeout: AliveTimeout}}
}

func portElements(ports []uint16) []nftables.SetElement {
	var els []nftables.SetElement
	for _, p := range ports {
		els = append(els, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
	}
	return els
}

// intervalElements turns prefixes into the start/end elements of an interval
// set. Overlapping and adjacent prefixes are merged first: the kernel refuses
// overlapping intervals.
func intervalElements(ps []netip.Prefix) []nftables.SetElement {
	type span struct{ lo, hi netip.Addr }
	var spans []span
	for _, p := range ps {
		p = p.Masked()
		spans = append(spans, span{p.Addr(), lastAddr(p)})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.lo.Compare(b.lo) })
	var merged []span
	for _, s := range spans {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			if next := last.hi.Next(); !next.IsValid() || s.lo.Compare(next) <= 0 {
				if s.hi.Compare(last.hi) > 0 {
					last.hi = s.hi
				}
				continue
			}
		}
		merged = append(merged, s)
	}
	var els []nftables.SetElement
	for i, s := range merged {
		if i == 0 && !s.lo.IsUnspecified() {
			// The rbtree set wants an interval end at the start of the
			// address space, as nft itself adds.
			els = append(els, nftables.SetElement{Key: make([]byte, s.lo.BitLen()/8), IntervalEnd: true})
		}
		els = append(els, nftables.SetElement{Key: s.lo.AsSlice()})
		if end := s.hi.Next(); end.IsValid() {
			els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
		}
	}
	return els
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// guardFamily says where the failure behaviour's chain lives.
type guardFamily int

const (
	guardNetdev guardFamily = iota // netdev ingress on the inside port
	guardBridge                    // bridge prerouting, before the divert
)

// build queues the whole ruleset on conn: our three tables are created (so
// that deleting them cannot fail), deleted and created anew, all in the one
// transaction that Flush sends. withAlive pre-fills the liveness sets.
func build(conn *nftables.Conn, r ruleset, withAlive bool, g guardFamily) error {
	brT, ndT, inT := tables()
	for _, t := range []*nftables.Table{brT, ndT, inT} {
		conn.AddTable(t)
		conn.DelTable(t)
	}
	conn.AddTable(brT)

	// Bridge family: count, and in enforce mode divert to the host.
	brPorts := &nftables.Set{Table: brT, Name: "smtp_ports", KeyType: nftables.TypeInetService}
	if err := conn.AddSet(brPorts, portElements(r.Ports)); err != nil {
		return fmt.Errorf("AddSet(bridge smtp_ports): %w", err)
	}
	for _, name := range []string{CounterSMTPPackets, CounterDiverted, CounterReturned} {
		conn.AddObj(&nftables.CounterObj{Table: brT, Name: name})
	}
	brChain := conn.AddChain(&nftables.Chain{
		Name: "prerouting", Table: brT, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-300),
	})
	conn.AddRule(&nftables.Rule{Table: brT, Chain: brChain, Exprs: join(
		ifname(r.Inside), tcp(), tcpPort(2, brPorts), []expr.Any{counter(CounterSMTPPackets)})})

	// Inet family: nobody reaches the proxy's listener on its own port,
	// on any interface. Diverted packets keep their SMTP destination port
	// (TPROXY does not rewrite them), so this drops only connections made
	// to the box itself, in either mode.
	conn.AddTable(inT)
	conn.AddObj(&nftables.CounterObj{Table: inT, Name: CounterProxyPortDropped})
	inInput := conn.AddChain(&nftables.Chain{
		Name: "input", Table: inT, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter,
	})
	conn.AddRule(&nftables.Rule{Table: inT, Chain: inInput, Exprs: join(tcp(),
		[]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.ProxyPort)},
		},
		drop(CounterProxyPortDropped))})

	if !r.Enforce {
		return nil
	}
	brAlive := &nftables.Set{Table: brT, Name: "alive", KeyType: nftables.TypeInetProto, HasTimeout: true}
	var aliveEls []nftables.SetElement
	if withAlive {
		aliveEls = aliveElement()
	}
	if err := conn.AddSet(brAlive, aliveEls); err != nil {
		return fmt.Errorf("AddSet(bridge alive): %w", err)
	}
	for _, et := range []uint16{etherTypeIPv4, etherTypeIPv6} {
		conn.AddRule(&nftables.Rule{Table: brT, Chain: brChain, Exprs: join(
			ifname(r.Inside), etherType(et), tcp(), tcpPort(2, brPorts), alive(brAlive),
			[]expr.Any{counter(CounterDiverted)}, toHost(r.BridgeMAC))})
	}
	for _, et := range []uint16{etherTypeIPv4, etherTypeIPv6} {
		conn.AddRule(&nftables.Rule{Table: brT, Chain: brChain, Exprs: join(
			ifname(r.Outside), etherType(et), tcp(), tcpPort(0, brPorts), alive(brAlive),
			[]expr.Any{counter(CounterReturned)}, toHost(r.BridgeMAC))})
	}

	// The failure behaviour and 802.1Q-tagged SMTP (which the proxy cannot
	// terminate), on the inside port: in a netdev ingress chain where the
	// kernel has netdev reject (NFT_REJECT_NETDEV), else in the bridge table
	// before the divert (Debian's kernels have bridge reject but not netdev
	// reject; the CI kernel the other way round).
	gt, gPorts, gAlive := ndT, (*nftables.Set)(nil), (*nftables.Set)(nil)
	var gChain *nftables.Chain
	var inside []expr.Any
	if g == guardBridge {
		gt, gPorts, gAlive = brT, brPorts, brAlive
		gChain = conn.AddChain(&nftables.Chain{
			Name: "inside_guard", Table: brT, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-310),
		})
		inside = ifname(r.Inside)
	} else {
		conn.AddTable(ndT)
		gPorts = &nftables.Set{Table: ndT, Name: "smtp_ports", KeyType: nftables.TypeInetService}
		gAlive = &nftables.Set{Table: ndT, Name: "alive", KeyType: nftables.TypeInetProto, HasTimeout: true}
		for _, s := range []struct {
			set *nftables.Set
			els []nftables.SetElement
		}{{gPorts, portElements(r.Ports)}, {gAlive, aliveEls}} {
			if err := conn.AddSet(s.set, s.els); err != nil {
				return fmt.Errorf("AddSet(netdev %s): %w", s.set.Name, err)
			}
		}
		gChain = conn.AddChain(&nftables.Chain{
			Name: "inside_ingress", Table: ndT, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityRef(0),
			Device: r.Inside,
		})
	}
	relays4 := &nftables.Set{Table: gt, Name: "relays4", KeyType: nftables.TypeIPAddr, Interval: true}
	relays6 := &nftables.Set{Table: gt, Name: "relays6", KeyType: nftables.TypeIP6Addr, Interval: true}
	for _, s := range []struct {
		set *nftables.Set
		els []nftables.SetElement
	}{{relays4, intervalElements(r.Relays4)}, {relays6, intervalElements(r.Relays6)}} {
		if err := conn.AddSet(s.set, s.els); err != nil {
			return fmt.Errorf("AddSet(%s): %w", s.set.Name, err)
		}
	}
	for _, name := range []string{CounterReset, CounterTaggedRelay, CounterTaggedDropped, CounterStackedDropped, CounterFragDropped, CounterFloodDropped} {
		conn.AddObj(&nftables.CounterObj{Table: gt, Name: name})
	}
	tpids := &nftables.Set{Table: gt, Name: "vlan_tpids", KeyType: nftables.TypeEtherType, Constant: true}
	var tpidEls []nftables.SetElement
	for _, tp := range vlanTPIDs {
		tpidEls = append(tpidEls, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(tp)})
	}
	tcpOrExt := &nftables.Set{Table: gt, Name: "ip6_tcp_or_ext", KeyType: nftables.TypeInetProto, Constant: true}
	var extEls []nftables.SetElement
	for _, nh := range ip6TCPOrExt {
		extEls = append(extEls, nftables.SetElement{Key: []byte{nh}})
	}
	for _, s := range []struct {
		set *nftables.Set
		els []nftables.SetElement
	}{{tpids, tpidEls}, {tcpOrExt, extEls}} {
		if err := conn.AddSet(s.set, s.els); err != nil {
			return fmt.Errorf("AddSet(%s): %w", s.set.Name, err)
		}
	}
	add := func(e []expr.Any) { conn.AddRule(&nftables.Rule{Table: gt, Chain: gChain, Exprs: join(inside, e)}) }
	add(join(vlanInner(etherTypeIPv4), saddrIn(false, relays4), tcp(), tcpPort(2, gPorts), []expr.Any{counter(CounterTaggedRelay), accept()}))
	add(join(vlanInner(etherTypeIPv6), saddrIn(true, relays6), tcp(), tcpPort(2, gPorts), []expr.Any{counter(CounterTaggedRelay), accept()}))
	add(join(etherType(etherTypeVLAN), tcp(), tcpPort(2, gPorts), []expr.Any{counter(CounterTaggedDropped), &expr.Verdict{Kind: expr.VerdictDrop}}))
	// Other and stacked tags, in a chain of their own: one lookup for
	// untagged frames.
	stChain := conn.AddChain(&nftables.Chain{Name: "stacked", Table: gt})
	for _, e := range stackedRules(tpids, tcpOrExt, gPorts, relays4, relays6) {
		conn.AddRule(&nftables.Rule{Table: gt, Chain: stChain, Exprs: e})
	}
	add(join(llIn(12, 2, tpids), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: stChain.Name}}))
	add(fragRules4(relays4))
	add(fragRules6(tcpOrExt, relays6))
	if r.NewConnsPerSource > 0 {
		if err := floodRules(conn, gt, add, gPorts, relays4, relays6, r.NewConnsPerSource); err != nil {
			return err
		}
	}
	add(join(alive(gAlive), []expr.Any{accept()}))
	add(join(metaProtocol(etherTypeIPv4), saddrIn(false, relays4), tcp(), tcpPort(2, gPorts), []expr.Any{accept()}))
	add(join(metaProtocol(etherTypeIPv6), saddrIn(true, relays6), tcp(), tcpPort(2, gPorts), []expr.Any{accept()}))
	add(join(tcp(), tcpPort(2, gPorts), []expr.Any{counter(CounterReset), tcpReset()}))

	// Inet family: hand diverted connections to the proxy's socket.
	inPorts := &nftables.Set{Table: inT, Name: "smtp_ports", KeyType: nftables.TypeInetService}
	if err := conn.AddSet(inPorts, portElements(r.Ports)); err != nil {
		return fmt.Errorf("AddSet(inet smtp_ports): %w", err)
	}
	inChain := conn.AddChain(&nftables.Chain{
		Name: "prerouting", Table: inT, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle,
	})
	// Packets of the proxy's own connections go to their socket. A new
	// connection (SYN) does not: it may meet a TIME_WAIT socket of the
	// proxy's that a client reopens with the same ports (a relay walking
	// its port range toward one MX), which is "transparent" too; handed to
	// TCP as it is, that socket would answer with an ACK and the client
	// would stall a second for its SYN retransmission. tproxy below
	// reopens it onto the listener instead.
	conn.AddRule(&nftables.Rule{Table: inT, Chain: inChain, Exprs: join(
		ifname(r.Bridge), tcp(), newConn(expr.CmpOpNeq),
		[]expr.Any{
			&expr.Socket{Key: expr.SocketKeyTransparent, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1}},
		},
		setMark(DivertMark), []expr.Any{accept()})})
	port := binaryutil.BigEndian.PutUint16(r.ProxyPort)
	for _, fam := range []byte{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6} {
		conn.AddRule(&nftables.Rule{Table: inT, Chain: inChain, Exprs: join(
			ifname(r.Bridge), nfproto(fam), tcp(), tcpPort(2, inPorts),
			[]expr.Any{
				&expr.Immediate{Register: 1, Data: port},
				&expr.TProxy{Family: fam, TableFamily: unix.NFPROTO_INET, RegPort: 1},
			},
			setMark(DivertMark), []expr.Any{accept()})})
	}
	return nil
}

// Raw link-layer payload matches, for what the kernel does not parse. The
// offsets are those of the frame as sent: nftables rebuilds a tag the
// kernel took off into metadata (vlan offload, or skb_vlan_untag for
// 802.1Q and 802.1ad on receive) in the link-layer header it reads.

func ll(off, n uint32) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: off, Len: n}
}

func llEq(off, n uint32, v []byte) []expr.Any {
	return []expr.Any{ll(off, n), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: v}}
}

func llIn(off, n uint32, set *nftables.Set) []expr.Any {
	return []expr.Any{ll(off, n), &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID}}
}

// masked tests (register 1 & mask) with op against zero.
func masked(mask []byte, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(mask)), Mask: mask, Xor: make([]byte, len(mask))},
		&expr.Cmp{Op: op, Register: 1, Data: make([]byte, len(mask))},
	}
}

func drop(name string) []expr.Any {
	return []expr.Any{counter(name), &expr.Verdict{Kind: expr.VerdictDrop}}
}

// stackedRules are the rules of the chain the guard jumps to for a frame
// whose first tag is any of tpids: a single 802.1ad or 0x9100 tag, or
// stacked tags (Q-in-Q and the like), which the proxy cannot terminate and
// the kernel does not parse past the first tag (no meta l4proto, no tcp
// dport). The IP header is read at its offset behind 1 to maxParsedTags
// tags; a single 802.1Q tag is the guard's own business (the chain has no
// rule for it). In each encapsulation, IPv4 or IPv6:
//   - a relay's TCP to an SMTP port, in a plain header, is bridged
//     (tagged_relay), as for a single 802.1Q tag;
//   - TCP to an SMTP port is dropped (stacked_dropped), and so is TCP
//     whose port cannot be read at a fixed offset: an IPv4 header with
//     options, an IPv4 fragment, an IPv6 packet whose first extension
//     header is followed by TCP or by another extension header;
//   - anything else (UDP, ICMP, other TCP, IPv6 with one extension header
//     before UDP or ICMPv6, as MLD sends) passes.
//
// A frame with more than maxParsedTags tags is dropped whatever it carries.
func stackedRules(tpids, tcpOrExt, ports, relays4, relays6 *nftables.Set) [][]expr.Any {
	var rules [][]expr.Any
	tcp4 := []byte{unix.IPPROTO_TCP}
	for depth := 1; depth <= maxParsedTags; depth++ {
		var prefix []expr.Any
		for i := 0; i < depth; i++ {
			prefix = append(prefix, llIn(uint32(12+4*i), 2, tpids)...)
		}
		if depth == 1 {
			// A lone 802.1Q tag is handled by the guard's tagged rules.
			prefix = append(prefix, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.BigEndian.PutUint16(etherTypeVLAN)})
		}
		typeOff := uint32(12 + 4*depth)
		ip := typeOff + 2
		v4 := join(prefix, llEq(typeOff, 2, binaryutil.BigEndian.PutUint16(etherTypeIPv4)), llEq(ip+9, 1, tcp4))
		rules = append(rules,
			join(v4, llEq(ip, 1, []byte{0x45}), []expr.Any{ll(ip+6, 2)}, masked([]byte{0x3f, 0xff}, expr.CmpOpEq),
				llIn(ip+12, 4, relays4), llIn(ip+22, 2, ports), []expr.Any{counter(CounterTaggedRelay), accept()}),
			join(v4, llIn(ip+22, 2, ports), drop(CounterStackedDropped)),
			join(v4, []expr.Any{ll(ip, 1), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0x45}}}, drop(CounterStackedDropped)),
			join(v4, []expr.Any{ll(ip+6, 2)}, masked([]byte{0x3f, 0xff}, expr.CmpOpNeq), drop(CounterStackedDropped)),
		)
		v6 := join(prefix, llEq(typeOff, 2, binaryutil.BigEndian.PutUint16(etherTypeIPv6)))
		rules = append(rules,
			join(v6, llEq(ip+6, 1, tcp4), llIn(ip+8, 16, relays6), llIn(ip+42, 2, ports), []expr.Any{counter(CounterTaggedRelay), accept()}),
			join(v6, llEq(ip+6, 1, tcp4), llIn(ip+42, 2, ports), drop(CounterStackedDropped)),
			join(v6, llIn(ip+6, 1, tcpOrExt), []expr.Any{&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: tcp4}},
				llIn(ip+40, 1, tcpOrExt), drop(CounterStackedDropped)),
		)
	}
	var deeper []expr.Any
	for i := 0; i <= maxParsedTags; i++ {
		deeper = append(deeper, llIn(uint32(12+4*i), 2, tpids)...)
	}
	return append(rules, join(deeper, drop(CounterStackedDropped)))
}

// fragRules4 drops IPv4 TCP fragments from non-relays, first fragments
// included: a fragment after the first has no TCP header to match a port
// on, and TCP is not fragmented on a LAN (path MTU discovery sets DF), so
// none of them can be told apart from SMTP.
func fragRules4(relays4 *nftables.Set) []expr.Any {
	return join(metaProtocol(etherTypeIPv4),
		[]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
		},
		masked([]byte{0x3f, 0xff}, expr.CmpOpNeq),
		notRelay(false, relays4), drop(CounterFragDropped))
}

// fragRules6 drops, from non-relays, IPv6 fragments whose fragmentable part
// starts with TCP or with an extension header (behind which TCP may
// follow): the kernel finds no TCP header in them to match a port on when
// the fragment is not the first or an extension header pushed TCP out of
// the first. Fragments of UDP and ICMPv6 pass.
func fragRules6(tcpOrExt, relays6 *nftables.Set) []expr.Any {
	return join(metaProtocol(etherTypeIPv6),
		[]expr.Any{
			&expr.Exthdr{Op: expr.ExthdrOpIpv6, DestRegister: 1, Type: 44, Offset: 0, Len: 1},
			&expr.Lookup{SourceRegister: 1, SetName: tcpOrExt.Name, SetID: tcpOrExt.ID},
		},
		notRelay(true, relays6), drop(CounterFragDropped))
}

func notRelay(v6 bool, set *nftables.Set) []expr.Any {
	e := saddrIn(v6, set)
	e[1].(*expr.Lookup).Invert = true
	return e
}

// newConn matches "tcp flags & (syn|ack) == syn" (op CmpOpEq: the first
// packet of a connection) or "!= syn" (CmpOpNeq: any other); after tcp().
func newConn(op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{0x02}},
	}
}

// refreshAlive queues the heartbeat: flush and re-add the element, because
// re-adding an existing element does not restart its timer.
func refreshAlive(conn *nftables.Conn, on bool, g guardFamily) {
	brT, ndT, _ := tables()
	ts := []*nftables.Table{brT, ndT}
	if g == guardBridge {
		ts = ts[:1]
	}
	for _, t := range ts {
		s := &nftables.Set{Table: t, Name: "alive", KeyType: nftables.TypeInetProto, HasTimeout: true}
		conn.FlushSet(s)
		if on {
			_ = conn.SetAddElements(s, aliveElement())
		}
	}
}

// deleteTables queues the removal of our tables, each created first so that
// the deletion cannot fail when it is absent.
func deleteTables(conn *nftables.Conn) {
	brT, ndT, inT := tables()
	for _, t := range []*nftables.Table{brT, ndT, inT} {
		conn.AddTable(t)
		conn.DelTable(t)
	}
}

// floodRules sheds connection floods from non-relays in the kernel: a SYN
// toward an SMTP port from a source (IPv4 address, IPv6 /64) that is not a
// relay passes through a per-source token bucket (dynamic sets with a limit
// per element, as `nft` writes "add @flood4 { ip saddr limit rate over
// N/second burst 2N packets }"); over the rate it is dropped before it can
// cost the proxy a session. Sources idle for a minute leave the sets.
func floodRules(conn *nftables.Conn, t *nftables.Table, add func([]expr.Any), ports, relays4, relays6 *nftables.Set, rate int) error {
	flood4 := &nftables.Set{Table: t, Name: "flood4", KeyType: nftables.TypeIPAddr, Dynamic: true, HasTimeout: true, Timeout: time.Minute, Size: 65536}
	flood6 := &nftables.Set{Table: t, Name: "flood6", KeyType: nftables.TypeIP6Addr, Dynamic: true, HasTimeout: true, Timeout: time.Minute, Size: 65536}
	for _, set := range []*nftables.Set{flood4, flood6} {
		if err := conn.AddSet(set, nil); err != nil {
			return fmt.Errorf("AddSet(%s): %w", set.Name, err)
		}
	}
	limit := func(set *nftables.Set) []expr.Any {
		return []expr.Any{
			&expr.Dynset{SrcRegKey: 1, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_ADD,
				Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(rate), Over: true,
					Unit: expr.LimitTimeSecond, Burst: uint32(2 * rate)}}},
			counter(CounterFloodDropped),
			&expr.Verdict{Kind: expr.VerdictDrop},
		}
	}
	syn := newConn(expr.CmpOpEq)
	add(join(metaProtocol(etherTypeIPv4), notRelay(false, relays4), tcp(), tcpPort(2, ports), syn,
		[]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}},
		limit(flood4)))
	add(join(metaProtocol(etherTypeIPv6), notRelay(true, relays6), tcp(), tcpPort(2, ports), syn,
		[]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: floodMask6(), Xor: make([]byte, 16)},
		},
		limit(flood6)))
	return nil
}

// floodMask6 is the mask that makes an IPv6 source address the key of the
// flood sets: its sourcekey prefix (/64), the same source as the proxy's
// per-source cap and the web UI's login throttle count.
func floodMask6() []byte {
	return net.CIDRMask(sourcekey.IPv6Bits, 128)
}
