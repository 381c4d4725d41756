package bridge

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/relaygate/relaygate/config"
)

// Bridge applies a configuration to the kernel. It is safe for concurrent use.
type Bridge struct {
	log *slog.Logger

	mu      sync.Mutex
	cfg     *config.Config // last applied
	mac     net.HardwareAddr
	serving bool
	addrs   []netip.Prefix    // bridge addresses we installed
	base    map[string]uint64 // counter totals carried over ruleset replacements
	guard   guardFamily       // where the failure behaviour's chain lives
	chains  []chainID         // our chains as last installed (Heartbeat checks them)

	restored atomic.Uint64 // rulesets installed again after another tool removed part of them

	// afterGuard, when set (by tests), runs in Apply between installing
	// the ruleset and setting up links; its error ends Apply there.
	afterGuard func() error
}

func (g guardFamily) String() string {
	if g == guardBridge {
		return "bridge"
	}
	return "netdev"
}

// install builds and sends the ruleset in one transaction; withAlive
// pre-fills the liveness sets (the proxy serves).
func (b *Bridge) install(c *config.Config, mac net.HardwareAddr, g guardFamily, withAlive bool) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables.New: %w", err)
	}
	if err := build(conn, rulesetFor(c, mac), withAlive && c.Mode == config.Enforce, g); err != nil {
		return err
	}
	return conn.Flush()
}

// New returns a Bridge that logs to logger.
func New(logger *slog.Logger) *Bridge {
	return &Bridge{log: logger.With("component", "bridge"), base: map[string]uint64{}}
}

// Apply brings links, addressing, routing and the ruleset in line with c.
// Applying the same configuration twice gives the same result. On error the
// kernel may hold part of the new state; the caller re-applies the previous
// configuration.
//
// The ruleset goes in first, before any port is enslaved or brought up: a
// failure in a later step leaves the box with its guard (in enforce mode
// the failure behaviour: relays bridged, every other source's SMTP reset or
// dropped), never as a bridge that forwards unguarded. On a re-apply the
// one transaction that replaces the ruleset never leaves it absent.
func (b *Bridge) Apply(ctx context.Context, c *config.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := setSysctls(c); err != nil {
		return err
	}
	inside, err := netlink.LinkByName(c.Interfaces.Inside)
	if err != nil {
		return fmt.Errorf("LinkByName(%s) (interfaces.inside): %w", c.Interfaces.Inside, err)
	}
	mac, err := bridgeMAC(c, inside)
	if err != nil {
		return fmt.Errorf("bridge MAC: %w", err)
	}
	// While the bridge's MAC is about to change, the diversion stays off:
	// frames readdressed to a MAC the bridge does not own yet would be
	// flooded out of the outside port. The heartbeat turns it on again.
	macMoves := false
	if br, err := netlink.LinkByName(c.Interfaces.Bridge); err == nil {
		macMoves = br.Attrs().HardwareAddr.String() != mac.String()
	}
	if err := b.installRuleset(c, mac, b.serving && !macMoves); err != nil {
		return err
	}
	if b.afterGuard != nil {
		if err := b.afterGuard(); err != nil {
			return err
		}
	}
	if err := b.setupLinks(c, inside, mac); err != nil {
		return err
	}
	if err := b.setupAddresses(c); err != nil {
		return err
	}
	if err := setupRouting(c); err != nil {
		return err
	}
	b.cfg, b.mac = c, mac
	b.log.Info("applied", "mode", c.Mode, "bridge", c.Interfaces.Bridge, "mac", mac.String(), "relays", len(c.Relays))
	return nil
}

// installRuleset replaces our tables with the ruleset for c. The failure
// behaviour's reject lives in a netdev ingress chain where the kernel has
// netdev reject, else in the bridge table (Debian's kernels lack
// NFT_REJECT_NETDEV; the CI kernel lacks NFT_BRIDGE_REJECT). Each attempt is
// one transaction: a failed one changes nothing.
func (b *Bridge) installRuleset(c *config.Config, mac net.HardwareAddr, withAlive bool) error {
	b.carryCounters()
	var errs []error
	for _, g := range []guardFamily{b.guard, 1 - b.guard} {
		err := b.install(c, mac, g, withAlive)
		if err == nil {
			if g != b.guard {
				b.log.Info("failure behaviour installed in the other table family", "family", g.String())
			}
			b.guard = g
			b.chains = b.installedChains()
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", g, err))
		if c.Mode != config.Enforce {
			break // no reject in monitor mode: the family is not the cause
		}
	}
	return fmt.Errorf("install nftables ruleset: %w", errors.Join(errs...))
}

// installedChains lists our chains right after an install, for Heartbeat
// to check; nil (nothing checked) if the kernel cannot be asked.
func (b *Bridge) installedChains() []chainID {
	conn, err := nftables.New()
	if err == nil {
		var cs []chainID
		if cs, err = ourChains(conn); err == nil {
			return cs
		}
	}
	b.log.Warn("cannot list the installed nftables chains; the heartbeat will not check them", "err", err)
	return nil
}

// SetServing says whether the proxy is serving; in enforce mode this turns
// the diversion on at once, or off (into the failure behaviour).
func (b *Bridge) SetServing(on bool) error {
	b.mu.Lock()
	b.serving = on
	b.mu.Unlock()
	return b.Heartbeat()
}

// Heartbeat refreshes the liveness sets while serving; call it every
// HeartbeatInterval. Without it the diversion stops after AliveTimeout.
//
// In enforce mode it also makes sure relaygate's ruleset is still whole: a
// chain of ours that another tool removed (`nft flush ruleset`, a table
// deleted by hand), or a refresh that fails, has the whole ruleset
// installed again at once, with the diversion as serving says. Without
// this the box would forward every source's SMTP unguarded until the next
// Apply. Each reinstall is logged and counted (Restored).
func (b *Bridge) Heartbeat() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg == nil || b.cfg.Mode != config.Enforce {
		return nil
	}
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables.New: %w", err)
	}
	missing, err := missingChains(conn, b.chains)
	if err == nil && len(missing) == 0 {
		refreshAlive(conn, b.serving, b.guard)
		if err = conn.Flush(); err == nil {
			return nil
		}
		err = fmt.Errorf("refresh liveness sets: %w", err)
	}
	if rerr := b.installRuleset(b.cfg, b.mac, b.serving); rerr != nil {
		return errors.Join(err, rerr)
	}
	b.restored.Add(1)
	b.log.Warn("relaygate's nftables ruleset was damaged by another tool; installed it again",
		"missing_chains", chainNames(missing), "err", err)
	return nil
}

// Restored returns how many times Heartbeat installed the ruleset again
// since New.
func (b *Bridge) Restored() uint64 { return b.restored.Load() }

// chainID names one of our chains: family and chain (the table is ours).
type chainID struct {
	family nftables.TableFamily
	name   string
}

// ourChains lists the chains of relaygate's tables in the kernel.
func ourChains(conn *nftables.Conn) ([]chainID, error) {
	all, err := conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	var out []chainID
	for _, c := range all {
		if c.Table != nil && c.Table.Name == TableName {
			out = append(out, chainID{c.Table.Family, c.Name})
		}
	}
	return out, nil
}

// missingChains returns those of want that the kernel no longer has.
func missingChains(conn *nftables.Conn, want []chainID) ([]chainID, error) {
	have, err := ourChains(conn)
	if err != nil {
		return nil, err
	}
	var missing []chainID
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing, nil
}

func chainNames(cs []chainID) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s %s %s", familyName(c.family), TableName, c.name)
	}
	return out
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return fmt.Sprintf("family %d", f)
}

// Stop is called when the daemon exits. In enforce mode the ruleset stays
// and the liveness sets are emptied, so the box drops into its failure
// behaviour at once: relays bridged straight through, everyone else reset.
// In monitor mode nothing is enforced, so our tables are removed. The bridge
// keeps forwarding either way.
func (b *Bridge) Stop() error {
	b.mu.Lock()
	cfg := b.cfg
	b.serving = false
	b.mu.Unlock()
	if cfg == nil {
		return nil
	}
	if cfg.Mode == config.Enforce {
		return b.Heartbeat()
	}
	return Teardown(cfg)
}

// Teardown removes everything relaygate installed except the bridge and its
// ports (which keep forwarding): our nftables tables, policy routing rules
// and tables.
func Teardown(c *config.Config) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables.New: %w", err)
	}
	deleteTables(conn)
	var errs []error
	if err := conn.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("delete nftables tables: %w", err))
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		for i, mark := range []int{DivertMark, ReplyMark, OnwardMark} {
			r := ourRule(fam, mark, rulePriorityBase+i)
			if err := netlink.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("RuleDel(fwmark %#x): %w", mark, err))
			}
			if err := flushTable(fam, mark); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Counters returns the ruleset's named counters (packets), including what
// earlier rulesets counted before a replacement.
func (b *Bridge) Counters() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]uint64{}
	for k, v := range b.base {
		out[k] = v
	}
	for k, v := range readCounters() {
		out[k] += v
	}
	return out
}

// carryCounters adds the current counter values to the base before the
// ruleset is replaced (which resets them).
func (b *Bridge) carryCounters() {
	for k, v := range readCounters() {
		b.base[k] += v
	}
}

func readCounters() map[string]uint64 {
	out := map[string]uint64{}
	conn, err := nftables.New()
	if err != nil {
		return out
	}
	brT, ndT, inT := tables()
	for _, t := range []*nftables.Table{brT, ndT, inT} {
		objs, err := conn.GetNamedObjects(t)
		if err != nil {
			continue
		}
		for _, o := range objs {
			switch c := o.(type) {
			case *nftables.CounterObj:
				out[c.Name] = c.Packets
			case *nftables.NamedObj:
				// What the kernel returns: the counter is in Obj.
				if ctr, ok := c.Obj.(*expr.Counter); ok {
					out[c.Name] = ctr.Packets
				}
			}
		}
	}
	return out
}

// Ports returns the state of the appliance's links.
func (b *Bridge) Ports() []PortStatus {
	b.mu.Lock()
	c := b.cfg
	b.mu.Unlock()
	if c == nil {
		return nil
	}
	var out []PortStatus
	for _, p := range []struct{ name, role string }{
		{c.Interfaces.Bridge, "bridge"}, {c.Interfaces.Inside, "inside"},
		{c.Interfaces.Outside, "outside"}, {c.Interfaces.Management, "management"},
	} {
		ps := PortStatus{Name: p.name, Role: p.role, OperState: "missing"}
		if l, err := netlink.LinkByName(p.name); err == nil {
			a := l.Attrs()
			ps.OperState, ps.MTU, ps.MAC = a.OperState.String(), a.MTU, a.HardwareAddr.String()
			if s := a.Statistics; s != nil {
				ps.RxBytes, ps.TxBytes, ps.RxPackets, ps.TxPackets = s.RxBytes, s.TxBytes, s.RxPackets, s.TxPackets
				ps.RxDropped, ps.TxDropped = s.RxDropped, s.TxDropped
			}
		}
		out = append(out, ps)
	}
	return out
}

func writeSysctl(path, val string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", path), []byte(val), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", path, val, err)
	}
	return nil
}

func setSysctls(c *config.Config) error {
	// br_netfilter must be off: at 1 it runs the inet prerouting chain
	// inside the bridge pass and the TPROXY socket assignment is lost when
	// the frame goes up to the bridge device. The files exist only while the
	// br_netfilter module is loaded.
	for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		p := "net/bridge/" + k
		if _, err := os.Stat(filepath.Join("/proc/sys", p)); err == nil {
			if err := writeSysctl(p, "0"); err != nil {
				return err
			}
		}
	}
	var errs []error
	errs = append(errs, writeSysctl("net/ipv4/conf/all/rp_filter", "0"))
	for _, port := range []string{c.Interfaces.Inside, c.Interfaces.Outside} {
		// The ports are pure bridge ports: no addresses, no neighbour discovery.
		if _, err := os.Stat(filepath.Join("/proc/sys/net/ipv6/conf", port)); err == nil {
			errs = append(errs, writeSysctl("net/ipv6/conf/"+port+"/disable_ipv6", "1"))
		}
	}
	return errors.Join(errs...)
}

// setAcceptRA says whether the bridge takes IPv6 router advertisements;
// set before the bridge comes up. The box's own addressing on the bridge is
// static (interfaces.bridge_addresses and .bridge_gateways), and an RA from
// a LAN host would otherwise add an address and a default route to it
// (and so to the proxy's routing), unless interfaces.bridge_accept_ra asks
// for them.
func setAcceptRA(c *config.Config) error {
	p := "net/ipv6/conf/" + c.Interfaces.Bridge + "/accept_ra"
	if _, err := os.Stat(filepath.Join("/proc/sys", p)); err != nil {
		return nil // IPv6 is off on this kernel or link
	}
	v := "0"
	if c.Interfaces.BridgeAcceptRA {
		v = "1"
	}
	return writeSysctl(p, v)
}

// bridgeMAC is the configured MAC, or one derived from the inside port's
// MAC: locally administered, stable across reboots. The bridge's MAC must be
// pinned, or it follows the lowest port MAC and the divert rules go stale.
func bridgeMAC(c *config.Config, inside netlink.Link) (net.HardwareAddr, error) {
	if c.Interfaces.BridgeMAC != "" {
		return net.ParseMAC(c.Interfaces.BridgeMAC)
	}
	sum := sha256.Sum256(append([]byte("relaygate-bridge:"), inside.Attrs().HardwareAddr...))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] &^ 0x01) | 0x02
	return mac, nil
}

// setupLinks creates or adopts the bridge with mac, enslaves the ports and
// brings everything up.
func (b *Bridge) setupLinks(c *config.Config, inside netlink.Link, mac net.HardwareAddr) error {
	outside, err := netlink.LinkByName(c.Interfaces.Outside)
	if err != nil {
		return fmt.Errorf("LinkByName(%s) (interfaces.outside): %w", c.Interfaces.Outside, err)
	}
	br, err := netlink.LinkByName(c.Interfaces.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("LinkByName(%s): %w", c.Interfaces.Bridge, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = c.Interfaces.Bridge
		la.HardwareAddr = mac
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return fmt.Errorf("LinkAdd(bridge %s): %w", la.Name, err)
		}
		if br, err = netlink.LinkByName(la.Name); err != nil {
			return fmt.Errorf("LinkByName(%s): %w", la.Name, err)
		}
		b.log.Info("created bridge", "bridge", la.Name)
	} else if br.Type() != "bridge" {
		return fmt.Errorf("interfaces.bridge: %s exists and is a %s, not a bridge", c.Interfaces.Bridge, br.Type())
	}
	if br.Attrs().HardwareAddr.String() != mac.String() {
		if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("LinkSetHardwareAddr(%s, %s): %w", c.Interfaces.Bridge, mac, err)
		}
	}
	if err := setAcceptRA(c); err != nil {
		return err
	}
	if err := setBridgeTimers(br.Attrs().Index); err != nil {
		return fmt.Errorf("bridge %s: STP off, forward delay 0: %w", c.Interfaces.Bridge, err)
	}
	mtu := min(inside.Attrs().MTU, outside.Attrs().MTU)
	if inside.Attrs().MTU != outside.Attrs().MTU {
		b.log.Warn("bridge ports have different MTUs; using the smaller on both",
			"inside_mtu", inside.Attrs().MTU, "outside_mtu", outside.Attrs().MTU, "mtu", mtu)
	}
	for _, port := range []netlink.Link{inside, outside} {
		name := port.Attrs().Name
		if port.Attrs().MTU != mtu {
			if err := netlink.LinkSetMTU(port, mtu); err != nil {
				return fmt.Errorf("LinkSetMTU(%s, %d): %w", name, mtu, err)
			}
		}
		if port.Attrs().MasterIndex != br.Attrs().Index {
			if err := netlink.LinkSetMaster(port, br); err != nil {
				return fmt.Errorf("LinkSetMaster(%s, %s): %w", name, c.Interfaces.Bridge, err)
			}
		}
		if err := netlink.LinkSetUp(port); err != nil {
			return fmt.Errorf("LinkSetUp(%s): %w", name, err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("LinkSetUp(%s): %w", c.Interfaces.Bridge, err)
	}
	return nil
}

// setBridgeTimers turns STP off and the forward delay to 0 on an existing
// bridge; netlink's Bridge type has no fields for them.
func setBridgeTimers(index int) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(0))
	data.AddRtAttr(nl.IFLA_BR_FORWARD_DELAY, nl.Uint32Attr(0))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func (b *Bridge) setupAddresses(c *config.Config) error {
	br, err := netlink.LinkByName(c.Interfaces.Bridge)
	if err != nil {
		return fmt.Errorf("LinkByName(%s): %w", c.Interfaces.Bridge, err)
	}
	want := slices.Clone(c.Interfaces.BridgeAddresses)
	for _, old := range b.addrs {
		if !containsPrefix(want, old) {
			if err := netlink.AddrDel(br, netlinkAddr(old)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("AddrDel(%s, %s): %w", c.Interfaces.Bridge, old, err)
			}
		}
	}
	for _, p := range want {
		if err := netlink.AddrReplace(br, netlinkAddr(p)); err != nil {
			return fmt.Errorf("AddrReplace(%s, %s): %w", c.Interfaces.Bridge, p, err)
		}
	}
	b.addrs = want
	return nil
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func netlinkAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		// No duplicate address detection: a tentative address cannot be
		// used for neighbour discovery toward the gateways for seconds.
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func ourRule(family, mark, prio int) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = family
	r.Mark = uint32(mark)
	mask := uint32(0xffffffff)
	r.Mask = &mask
	r.Table = mark
	r.Priority = prio
	return r
}

// setupRouting installs the three policy routing tables and their rules:
// DivertMark delivers diverted packets locally (TPROXY), ReplyMark routes
// answers to LAN clients through the inside gateway, OnwardMark routes
// onward connections through the bridge gateway.
func setupRouting(c *config.Config) error {
	br, err := netlink.LinkByName(c.Interfaces.Bridge)
	if err != nil {
		return fmt.Errorf("LinkByName(%s): %w", c.Interfaces.Bridge, err)
	}
	idx := br.Attrs().Index
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("LinkByName(lo): %w", err)
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		is4 := fam == unix.AF_INET
		any := netip.IPv6Unspecified()
		if is4 {
			any = netip.IPv4Unspecified()
		}
		var routes [3][]*netlink.Route
		routes[0] = append(routes[0], &netlink.Route{
			Dst: prefixNet(netip.PrefixFrom(any, 0)), LinkIndex: lo.Attrs().Index,
			Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST, Table: DivertMark, Family: fam,
		})
		for i, gws := range [][]netip.Addr{c.Interfaces.InsideGateways, c.Interfaces.BridgeGateways} {
			table := ReplyMark
			if i == 1 {
				table = OnwardMark
			}
			for _, p := range c.Interfaces.BridgeAddresses {
				if p.Addr().Is4() == is4 {
					routes[i+1] = append(routes[i+1], &netlink.Route{Dst: prefixNet(p.Masked()), LinkIndex: idx, Scope: netlink.SCOPE_LINK, Table: table, Family: fam})
				}
			}
			for _, gw := range gws {
				if gw.Is4() == is4 {
					routes[i+1] = append(routes[i+1], &netlink.Route{Dst: prefixNet(netip.PrefixFrom(any, 0)), Gw: gw.AsSlice(), LinkIndex: idx, Table: table, Family: fam, Flags: int(netlink.FLAG_ONLINK)})
				}
			}
		}
		for i, mark := range []int{DivertMark, ReplyMark, OnwardMark} {
			if err := flushTable(fam, mark); err != nil {
				return err
			}
			for _, r := range routes[i] {
				if err := netlink.RouteReplace(r); err != nil {
					return fmt.Errorf("RouteReplace(table %#x, %s via %s): %w", mark, r.Dst, r.Gw, err)
				}
			}
			rule := ourRule(fam, mark, rulePriorityBase+i)
			if err := netlink.RuleAdd(rule); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("RuleAdd(fwmark %#x lookup %#x): %w", mark, mark, err)
			}
		}
	}
	return nil
}

func flushTable(family, table int) error {
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("RouteList(table %#x): %w", table, err)
	}
	for i := range routes {
		if err := netlink.RouteDel(&routes[i]); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("RouteDel(table %#x, %s): %w", table, routes[i].Dst, err)
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
