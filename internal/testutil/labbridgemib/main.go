// Command labbridgemib is a net-snmp pass_persist program for the lab's
// switches: it serves what snmpd does not read from a Linux namespace by
// itself, straight from sysfs, fresh on every request (a real switch
// answers with its current forwarding table, not a cached one).
//
//	pass_persist .1.3.6.1.2.1.17 /path/labbridgemib -bridge acc0
//	pass_persist .1.3.6.1.2.1.31.1.1.1.18 /path/labbridgemib -ifalias
//
// With -bridge it serves the bridge's BRIDGE-MIB (dot1dBaseBridgeAddress,
// dot1dBaseNumPorts, dot1dBaseType, dot1dBasePortTable, dot1dTpFdbTable)
// and Q-BRIDGE-MIB (dot1qTpFdbTable in FDB 1, dot1qVlanFdbId of VLAN 1)
// from /sys/class/net/BRIDGE/brforward. With -ifalias it serves IF-MIB
// ifAlias from /sys/class/net/*/ifalias (`ip link set dev X alias ...`);
// snmpd's own ifXTable keeps ifAlias in its persistent store only.
//
// Debian's snmp-bridge-mib is not used: it is an AgentX sub-agent that
// needs libsnmp-perl and caches the forwarding table for 60 seconds, so a
// host that talked after the first walk stays invisible for a minute.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// OID prefixes served.
var (
	oidBridge  = []int{1, 3, 6, 1, 2, 1, 17}
	oidIfAlias = []int{1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18}
)

func main() {
	bridge := flag.String("bridge", "", "serve BRIDGE-MIB and Q-BRIDGE-MIB of this Linux bridge")
	ifAlias := flag.Bool("ifalias", false, "serve IF-MIB ifAlias of every interface")
	sysNet := flag.String("sys", "/sys/class/net", "sysfs network directory")
	flag.Parse()
	if (*bridge == "") == !*ifAlias {
		fmt.Fprintln(os.Stderr, "usage: labbridgemib -bridge NAME | -ifalias")
		os.Exit(2)
	}
	load := func() ([]varbind, error) { return ifAliases(*sysNet) }
	if *bridge != "" {
		load = func() ([]varbind, error) { return bridgeMIB(*sysNet, *bridge) }
	}
	if err := serve(os.Stdin, os.Stdout, load); err != nil {
		fmt.Fprintln(os.Stderr, "labbridgemib:", err)
		os.Exit(1)
	}
}

// varbind is one object instance with its pass_persist type and value.
type varbind struct {
	oid   []int
	typ   string // integer, octet, string, gauge
	value string
}

// serve speaks the pass_persist protocol: PING, get OID, getnext OID,
// set OID (refused: the lab's switches are read-only).
func serve(r io.Reader, w io.Writer, load func() ([]varbind, error)) error {
	in := bufio.NewScanner(r)
	out := bufio.NewWriter(w)
	line := func() (string, bool) {
		if !in.Scan() {
			return "", false
		}
		return strings.TrimSpace(in.Text()), true
	}
	for {
		cmd, ok := line()
		if !ok {
			return in.Err()
		}
		switch cmd {
		case "":
			continue
		case "PING":
			fmt.Fprintln(out, "PONG")
		case "get", "getnext":
			arg, ok := line()
			if !ok {
				return in.Err()
			}
			vbs, err := load()
			if err != nil {
				fmt.Fprintln(os.Stderr, "labbridgemib:", err)
			}
			vb, found := lookup(vbs, parseOID(arg), cmd == "getnext")
			if !found {
				fmt.Fprintln(out, "NONE")
				break
			}
			fmt.Fprintf(out, "%s\n%s\n%s\n", formatOID(vb.oid), vb.typ, vb.value)
		case "set":
			line()
			line()
			fmt.Fprintln(out, "not-writable")
		default:
			fmt.Fprintln(out, "NONE")
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// lookup finds oid (get) or the first instance after it (getnext) in vbs,
// which is sorted.
func lookup(vbs []varbind, oid []int, next bool) (varbind, bool) {
	for _, vb := range vbs {
		c := compareOID(vb.oid, oid)
		if (!next && c == 0) || (next && c > 0) {
			return vb, true
		}
	}
	return varbind{}, false
}

func parseOID(s string) []int {
	var oid []int
	for _, p := range strings.Split(strings.Trim(s, "."), ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return oid
		}
		oid = append(oid, n)
	}
	return oid
}

func formatOID(oid []int) string {
	var b strings.Builder
	for _, n := range oid {
		b.WriteString("." + strconv.Itoa(n))
	}
	return b.String()
}

func compareOID(a, b []int) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

func oid(prefix []int, sub ...int) []int {
	return append(append([]int(nil), prefix...), sub...)
}

func sortVarbinds(vbs []varbind) []varbind {
	sort.Slice(vbs, func(i, j int) bool { return compareOID(vbs[i].oid, vbs[j].oid) < 0 })
	return vbs
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// ifAliases returns ifAlias.<ifIndex> of every interface.
func ifAliases(sysNet string) ([]varbind, error) {
	dirs, err := os.ReadDir(sysNet)
	if err != nil {
		return nil, err
	}
	var vbs []varbind
	for _, d := range dirs {
		idx, err := readTrim(filepath.Join(sysNet, d.Name(), "ifindex"))
		if err != nil {
			continue
		}
		n, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		alias, _ := readTrim(filepath.Join(sysNet, d.Name(), "ifalias"))
		vbs = append(vbs, varbind{oid(oidIfAlias, n), "string", alias})
	}
	return sortVarbinds(vbs), nil
}

// fdbEntry is one struct __fdb_entry of brforward (linux/if_bridge.h).
type fdbEntry struct {
	mac   [6]byte
	port  int
	local bool
}

// readFDB parses /sys/class/net/BRIDGE/brforward.
func readFDB(path string) ([]fdbEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	const size = 16 // mac[6], port_no u8, is_local u8, ageing u32, port_hi u8, pad u8, unused u16
	var out []fdbEntry
	for ; len(b) >= size; b = b[size:] {
		var e fdbEntry
		copy(e.mac[:], b[:6])
		e.port = int(b[12])<<8 | int(b[6])
		e.local = b[7] != 0
		out = append(out, e)
	}
	return out, nil
}

func hexOctets(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, " ")
}

// FDB entry status values of dot1dTpFdbStatus and dot1qTpFdbStatus.
const (
	statusLearned = "3"
	statusSelf    = "4"
)

// bridgeMIB returns the BRIDGE-MIB and Q-BRIDGE-MIB objects of bridge.
func bridgeMIB(sysNet, bridge string) ([]varbind, error) {
	brDir := filepath.Join(sysNet, bridge)
	addr, err := readTrim(filepath.Join(brDir, "address"))
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", bridge, err)
	}
	brMAC, err := parseMAC(addr)
	if err != nil {
		return nil, fmt.Errorf("bridge %s address: %w", bridge, err)
	}
	ports, err := os.ReadDir(filepath.Join(brDir, "brif"))
	if err != nil {
		return nil, fmt.Errorf("bridge %s ports: %w", bridge, err)
	}
	vbs := []varbind{
		{oid(oidBridge, 1, 1, 0), "octet", hexOctets(brMAC)}, // dot1dBaseBridgeAddress
		{oid(oidBridge, 1, 2, 0), "integer", strconv.Itoa(len(ports))},
		{oid(oidBridge, 1, 3, 0), "integer", "2"},              // dot1dBaseType: transparent-only
		{oid(oidBridge, 7, 1, 4, 2, 1, 3, 0, 1), "gauge", "1"}, // dot1qVlanFdbId.0.1: VLAN 1 learns in FDB 1
	}
	for _, p := range ports {
		no, err1 := readTrim(filepath.Join(brDir, "brif", p.Name(), "port_no"))
		idx, err2 := readTrim(filepath.Join(sysNet, p.Name(), "ifindex"))
		if err1 != nil || err2 != nil {
			continue
		}
		port, err1 := strconv.ParseInt(no, 0, 32)
		ifIndex, err2 := strconv.Atoi(idx)
		if err1 != nil || err2 != nil {
			continue
		}
		vbs = append(vbs,
			varbind{oid(oidBridge, 1, 4, 1, 1, int(port)), "integer", strconv.Itoa(int(port))},
			varbind{oid(oidBridge, 1, 4, 1, 2, int(port)), "integer", strconv.Itoa(ifIndex)})
	}
	fdb, err := readFDB(filepath.Join(brDir, "brforward"))
	if err != nil {
		return nil, fmt.Errorf("bridge %s forwarding table: %w", bridge, err)
	}
	for _, e := range fdb {
		status := statusLearned
		if e.local {
			status = statusSelf
		}
		idx := make([]int, 6)
		for i, c := range e.mac {
			idx[i] = int(c)
		}
		port := strconv.Itoa(e.port)
		vbs = append(vbs,
			varbind{oid(oid(oidBridge, 4, 3, 1, 1), idx...), "octet", hexOctets(e.mac[:])},
			varbind{oid(oid(oidBridge, 4, 3, 1, 2), idx...), "integer", port},
			varbind{oid(oid(oidBridge, 4, 3, 1, 3), idx...), "integer", status},
			varbind{oid(oid(oidBridge, 7, 1, 2, 2, 1, 2, 1), idx...), "integer", port},
			varbind{oid(oid(oidBridge, 7, 1, 2, 2, 1, 3, 1), idx...), "integer", status})
	}
	return sortVarbinds(vbs), nil
}

func parseMAC(s string) ([]byte, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return nil, fmt.Errorf("not a MAC: %q", s)
	}
	out := make([]byte, 6)
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("not a MAC: %q", s)
		}
		out[i] = byte(n)
	}
	return out, nil
}
