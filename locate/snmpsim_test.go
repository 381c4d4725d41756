package locate

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/internal/testutil/lockedbuf"
)

// simUser is an SNMPv3 user of snmpsimd, protocols in its spelling.
type simUser struct{ name, auth, priv string }

// startSnmpsim runs Debian's snmpsimd (package snmpsim) on 127.0.0.1
// with one data file per entry of files: its name is the v2c community
// and the v3 context name. It returns the agent's address.
func startSnmpsim(t *testing.T, files map[string][]row, users []simUser) string {
	t.Helper()
	bin, err := exec.LookPath("snmpsimd")
	if err != nil {
		t.Skip("snmpsimd is not installed (Debian package snmpsim): skipping the test against a real SNMP agent")
	}
	// snmpsimd drops root for --process-user, which must read the data
	// and write the index cache: a directory of its own, not TempDir's
	// 0700 parents.
	dir, err := os.MkdirTemp("", "relaygate-snmpsim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, cache := filepath.Join(dir, "data"), filepath.Join(dir, "cache")
	for _, d := range []string{dir, data, cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cache, 0o777); err != nil {
		t.Fatal(err)
	}
	first := ""
	for name, rows := range files {
		if first == "" || name < first {
			first = name
		}
		if err := os.WriteFile(filepath.Join(data, name+".snmprec"), snmprec(rows), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A free port: snmpsimd takes it a moment later.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()

	args := []string{"--data-dir=" + data, "--cache-dir=" + cache, "--agent-udpv4-endpoint=" + addr, "--logging-method=stderr"}
	if os.Geteuid() == 0 {
		// It refuses to run as root.
		group := "nogroup"
		if _, err := user.LookupGroup(group); err != nil {
			group = "nobody"
		}
		args = append(args, "--process-user=nobody", "--process-group="+group)
	}
	for _, u := range users {
		args = append(args, "--v3-user="+u.name, "--v3-auth-key=authpass123", "--v3-auth-proto="+u.auth,
			"--v3-priv-key=privpass123", "--v3-priv-proto="+u.priv)
	}
	cmd := exec.Command(bin, args...)
	exited := startAgent(t, cmd)

	// Ready when it answers.
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c := &gosnmp.GoSNMP{Target: host, Port: uint16(p), Community: first, Version: gosnmp.Version2c, Timeout: 200 * time.Millisecond}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.GetNext([]string{".1.0"}); err == nil {
			return addr
		}
		select {
		case <-exited:
			t.Fatal("snmpsimd exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("snmpsimd did not answer on %s within 15s", addr)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// snmprec writes rows in snmpsim's format, OID|tag|value, in OID order.
func snmprec(rows []row) []byte {
	rs := slices.Clone(rows)
	slices.SortFunc(rs, func(a, b row) int { return cmpOID(a.o, b.o) })
	var b bytes.Buffer
	for _, r := range rs {
		o := strings.TrimPrefix(r.o.String(), ".")
		switch r.typ {
		case gosnmp.Integer:
			fmt.Fprintf(&b, "%s|2|%d\n", o, r.val.(int))
		case gosnmp.OctetString:
			fmt.Fprintf(&b, "%s|4x|%s\n", o, hex.EncodeToString(r.val.([]byte)))
		default:
			panic(fmt.Sprintf("snmprec: type %v", r.typ))
		}
	}
	return b.Bytes()
}

// TestSnmpsim locates hosts on a real SNMP agent, snmpsimd: v2c, and v3
// authPriv with SHA-256/AES, SHA-512/AES-256 and SHA/AES-192 (Cisco's key
// extension), the per-VLAN instance by community@vlan and by context
// vlan-N, and wrong credentials.
func TestSnmpsim(t *testing.T) {
	const (
		v6      = "2001:db8:20::5"
		ciscoIP = "10.40.0.7"
	)
	core := flat(noise(),
		[]row{arpRow(120, hostIP, hostMAC), arpRow(120, v6, hostMAC), bridgeAddrRow(coreMAC),
			vlanFdbRow(1, 1), vlanFdbRow(20, 7), vlanFdbRow(30, 8),
			qfdbRow(7, hostMAC, 5), qfdbRow(7, otherMC, 48), qfdbRow(8, accMAC, 48),
			basePortRow(5, 10005), basePortRow(48, 10048)},
		ifRows(120, "Vlan20", ""), ifRows(10005, "Gi1/0/5", "3F room 12"), ifRows(10048, "Te1/0/48", "uplink"),
		lldpRows(48, 1, "access-9", accMAC, "10.0.0.9"),
	)
	// A Cisco-like switch: IPv4 neighbours in ipNetToMediaTable only, the
	// forwarding table per VLAN; the routed interface's name is not a
	// VLAN's, so every configured VLAN is asked in order.
	cisco := flat([]row{mediaRow(40, "10.40.0.1", otherMC), mediaRow(40, ciscoIP, hostMAC)}, ifRows(10115, "Gi1/0/15", "lab bench"))
	perVLAN := []row{fdbRow(otherMC, 2), fdbRow(hostMAC, 15), basePortRow(15, 10115)}
	addr := startSnmpsim(t, map[string][]row{
		"core": core, "cisco": cisco, "cisco@20": perVLAN, "vlan-20": perVLAN,
	}, []simUser{{"relaygate", "SHA256", "AES"}, {"strong", "SHA512", "AES256"}, {"legacy", "SHA", "AES192"}})

	atCore := Location{
		Addr: netip.MustParseAddr(hostIP), Status: Found, MAC: strings.ToLower(hostMAC),
		Switch: "core", Port: "Gi1/0/5", PortDescription: "3F room 12", IfIndex: 10005, VLAN: 20, Path: []string{"core"},
	}
	atCisco := Location{
		Addr: netip.MustParseAddr(ciscoIP), Status: Found, MAC: strings.ToLower(hostMAC),
		Switch: "cisco", Port: "Gi1/0/15", PortDescription: "lab bench", IfIndex: 10115, VLAN: 20, Path: []string{"cisco"},
	}
	v3 := func(name, user, auth, priv, context string, vlans ...int) config.Switch {
		return config.Switch{Name: name, Address: addr, Version: "3", User: user, AuthProto: auth, AuthPass: "authpass123",
			PrivProto: priv, PrivPass: "privpass123", Context: context, VLANs: vlans}
	}
	simLocator := func(sw config.Switch) *SNMP {
		l := testLocator(t, sw)
		l.timeout = 700 * time.Millisecond
		return l
	}
	tests := []struct {
		name string
		sw   config.Switch
		addr string
		want Location
		errs []string
	}{
		{"v2c Q-BRIDGE", config.Switch{Name: "core", Address: addr, Version: "2c", Community: "core"}, hostIP, atCore, nil},
		{"v2c IPv6", config.Switch{Name: "core", Address: addr, Version: "2c", Community: "core"}, v6,
			func() Location { l := atCore; l.Addr = netip.MustParseAddr(v6); return l }(), nil},
		{"v2c community@vlan", config.Switch{Name: "cisco", Address: addr, Version: "2c", Community: "cisco", VLANs: []int{10, 20}}, ciscoIP,
			atCisco, []string{"cisco: VLAN 10: no answer"}},
		{"v3 SHA-256 AES", v3("core", "relaygate", "SHA-256", "AES", "core"), hostIP, atCore, nil},
		{"v3 SHA-512 AES-256 context vlan-N", v3("cisco", "strong", "SHA-512", "AES-256", "cisco", 10, 20), ciscoIP,
			atCisco, []string{"cisco: VLAN 10: no answer"}},
		{"v3 SHA AES-192-C", v3("core", "legacy", "SHA", "aes-192-c", "core"), hostIP, atCore, nil},
		{"v3 wrong auth_pass", func() config.Switch {
			s := v3("core", "relaygate", "SHA-256", "AES", "core")
			s.AuthPass = "wrongpass123"
			return s
		}(), hostIP,
			Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, []string{"core: SNMPv3 authentication failed"}},
		{"v3 wrong priv_pass", func() config.Switch {
			s := v3("core", "relaygate", "SHA-256", "AES", "core")
			s.PrivPass = "wrongpass123"
			return s
		}(), hostIP,
			Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, []string{"core: no answer", "passwords"}},
		{"v3 wrong auth_proto", v3("core", "relaygate", "SHA-384", "AES", "core"), hostIP,
			Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, []string{"core: SNMPv3 authentication failed"}},
		{"v3 unknown user", v3("core", "mallory", "SHA-256", "AES", "core"), hostIP,
			Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, []string{"core: no answer", "wrong user"}},
		{"v2c wrong community", config.Switch{Name: "core", Address: addr, Version: "2c", Community: "private"}, hostIP,
			Location{Addr: netip.MustParseAddr(hostIP), Status: Failed}, []string{"core: no answer", "wrong community"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got := locate(t, simLocator(tt.sw), tt.addr)
			checkLocation(t, got, tt.want, tt.errs...)
			t.Logf("%s in %s: %+v", tt.name, time.Since(start).Round(time.Millisecond), got)
		})
	}
}

// startAgent starts an SNMP agent for the test and kills it when the test
// ends; a failing test logs the end of the agent's output. The channel is
// closed when the agent exits.
func startAgent(t *testing.T, cmd *exec.Cmd) <-chan struct{} {
	t.Helper()
	var out lockedbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), tail(out.String(), 4000))
		}
	})
	return exited
}
