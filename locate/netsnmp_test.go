package locate

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/relaygate/relaygate/config"
)

// documentedSnmpdConf is the net-snmp example of docs/configuration.md.
func documentedSnmpdConf(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "net-snmp (`snmpd.conf`")
	if ok {
		_, rest, ok = strings.Cut(rest, "```\n")
	}
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(block, "createUser relaygate") {
		t.Fatal("docs/configuration.md has no net-snmp example with createUser relaygate")
	}
	return block
}

// arpEntries are the complete entries of the kernel's ARP table, which
// net-snmp's ipNetToPhysicalTable shows.
func arpEntries() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/net/arp")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// IP address, HW type, Flags (0x2: complete), HW address, ...
		if len(fields) >= 4 && fields[2] == "0x2" && fields[3] != "00:00:00:00:00:00" {
			out[fields[0]] = fields[3]
		}
	}
	return out
}

// TestNetSNMP: net-snmp's snmpd, configured as docs/configuration.md
// says, answers the locator over v2c and v3 SHA-256/AES; wrong v3
// credentials are told apart (net-snmp answers them with reports).
func TestNetSNMP(t *testing.T) {
	bin, err := exec.LookPath("snmpd")
	if err != nil {
		bin = "/usr/sbin/snmpd"
		if _, err := os.Stat(bin); err != nil {
			t.Skip("snmpd is not installed (Debian package snmpd): skipping the test against net-snmp")
		}
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "snmpd.conf")
	text := "agentAddress udp:" + addr + "\n" + strings.ReplaceAll(documentedSnmpdConf(t), "10.0.255.3", "127.0.0.1")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	// -C: this file only; -f: in the foreground, ended by the test.
	cmd := exec.Command(bin, "-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "pid"), "--persistentDir="+dir)
	cmd.Env = append(os.Environ(), "MIBS=", "MIBDIRS="+dir)
	exited := startAgent(t, cmd)
	host, port, _ := net.SplitHostPort(addr)
	c := &gosnmp.GoSNMP{Target: host, Port: uint16(mustAtoi(port)), Community: "s3cret", Version: gosnmp.Version2c, Timeout: 200 * time.Millisecond}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := c.GetNext([]string{oidIPNetToPhysicalPhysAddress.String()}); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatal("snmpd exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("snmpd did not answer on %s within 10s", addr)
		}
	}

	v3 := config.Switch{Name: "linux", Address: addr, Version: "3", User: "relaygate", AuthProto: "SHA-256",
		AuthPass: "auth passphrase", PrivProto: "AES", PrivPass: "priv passphrase"}
	v2 := config.Switch{Name: "linux", Address: addr, Version: "2c", Community: "s3cret"}
	const absent = "192.0.2.123"
	tests := []struct {
		name   string
		sw     config.Switch
		status Status
		err    string
	}{
		{"v2c", v2, NotFound, ""},
		{"v3 SHA-256 AES", v3, NotFound, ""},
		{"v3 unknown user", func() config.Switch { s := v3; s.User = "mallory"; return s }(), Failed, `linux: SNMPv3 user "mallory" unknown to the switch`},
		{"v3 wrong auth_pass", func() config.Switch { s := v3; s.AuthPass = "wrong passphrase"; return s }(), Failed, "linux: SNMPv3 authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := testLocator(t, tt.sw)
			got := locate(t, l, absent)
			if got.Status != tt.status || (tt.err == "" && got.Error != "") || !strings.Contains(got.Error, tt.err) {
				t.Errorf("Locate(%s) = %+v, want status %s, error %q", absent, got, tt.status, tt.err)
			}
		})
	}

	// A neighbour the machine really has, if any: the kernel's ARP table
	// as net-snmp reads it, real ifIndexes and all. An entry may age out
	// meanwhile; then it must be gone from /proc too.
	for ip, hw := range arpEntries() {
		got := locate(t, testLocator(t, v3), ip)
		if got.Status == NotFound {
			if _, still := arpEntries()[ip]; !still {
				continue
			}
		}
		if got.MAC != hw || got.Status != MACOnly || got.Addr != netip.MustParseAddr(ip) {
			t.Errorf("Locate(%s) = %+v, want MAC %s (mac_only: no bridge tables)", ip, got, hw)
		}
		break
	}
}

func mustAtoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}
