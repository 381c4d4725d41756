package bridge

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/relaygate/relaygate/internal/testutil/lockedbuf"
	"golang.org/x/sys/unix"
)

// errInjected is the failure the fail-after-guard child injects between
// installing the ruleset and setting up the links.
var errInjected = errors.New("injected failure after the guard")

// TestGuardBeforeLinks: an Apply that fails after its first step never
// leaves a bridge that forwards a non-relay's SMTP. A failure is injected
// right after the ruleset is installed; then a non-relay's SYN to port 25,
// sent into the inside port, must not come out of the outside port:
//   - fresh: no bridge existed; the ports must not forward at all;
//   - existing bridge: a bridge left forwarding by an earlier run (monitor
//     mode, or torn down) is adopted in enforce mode; the guard must hold
//     while a relay's SYN still crosses (the failure behaviour).
func TestGuardBeforeLinks(t *testing.T) {
	for _, existing := range []bool{false, true} {
		name := "fresh"
		if existing {
			name = "existing bridge"
		}
		t.Run(name, func(t *testing.T) {
			n := newNetns(t)
			if existing {
				n.ip("-n", n.name, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
				for _, l := range []string{"in0", "out0"} {
					n.ip("-n", n.name, "link", "set", l, "master", "br0")
				}
				for _, l := range []string{"br0", "in0", "out0"} {
					n.ip("-n", n.name, "link", "set", l, "up")
				}
				// The bridge forwards before Apply: a non-relay's SYN
				// crosses (the test's topology carries SMTP).
				if !n.crosses(synFrame(t, "192.168.7.5", "192.168.7.9", 40001), "dst port 25 and src host 192.168.7.5") {
					t.Fatal("the pre-existing bridge did not forward a SYN; the test cannot tell the guard from a broken topology")
				}
			}
			n.apply("fail-after-guard", "enforce")
			if n.crosses(synFrame(t, "192.168.7.5", "192.168.7.9", 40002), "dst port 25 and src host 192.168.7.5") {
				t.Error("after an Apply that failed after the guard step, a non-relay's SYN to port 25 crossed the bridge")
			}
			if existing && !n.crosses(synFrame(t, "10.10.0.5", "10.10.9.9", 40003), "dst port 25 and src host 10.10.0.5") {
				t.Error("a relay's SYN did not cross the bridge in the failure behaviour")
			}
			if !existing {
				if out := n.run("ip", "link", "show", "in0"); strings.Contains(out, "master") {
					t.Errorf("a fresh Apply that failed after the guard step enslaved the inside port:\n%s", out)
				}
			}
		})
	}
}

// TestHeartbeatRestoresRuleset: when another tool removes relaygate's
// ruleset or a table of it while the daemon serves, the next heartbeat
// installs it again (the child checks the chains, the diversion and the
// count after each removal), and the guard holds afterwards: a non-relay's
// SYN to port 25 does not cross.
func TestHeartbeatRestoresRuleset(t *testing.T) {
	n := newNetns(t)
	n.apply("restore", "enforce")
	if n.crosses(synFrame(t, "192.168.7.5", "192.168.7.9", 40011), "dst port 25 and src host 192.168.7.5") {
		t.Error("after the ruleset was restored, a non-relay's SYN to port 25 crossed the bridge")
	}
}

// TestBridgeIgnoresRouterAdvertisements: br0 takes no IPv6 router
// advertisement unless interfaces.bridge_accept_ra says so. An RA with a
// SLAAC prefix sent from the LAN side must add neither an address nor a
// default route; with bridge_accept_ra: true the same RA adds both (which
// shows the RA is one the kernel would act on).
func TestBridgeIgnoresRouterAdvertisements(t *testing.T) {
	for _, accept := range []bool{false, true} {
		name := "default"
		if accept {
			name = "bridge_accept_ra"
		}
		t.Run(name, func(t *testing.T) {
			n := newNetns(t)
			cfg := testConfig("enforce")
			if accept {
				cfg = strings.Replace(cfg, "  bridge_mac:", "  bridge_accept_ra: true\n  bridge_mac:", 1)
			}
			n.applyConfigs("apply", cfg)
			want := "0"
			if accept {
				want = "1"
			}
			if got := strings.TrimSpace(n.run("cat", "/proc/sys/net/ipv6/conf/br0/accept_ra")); got != want {
				t.Errorf("net.ipv6.conf.br0.accept_ra = %s, want %s", got, want)
			}
			n.inject("in1", raFrame(t))
			learned := func() string {
				addrs := n.run("ip", "-6", "addr", "show", "dev", "br0")
				routes := n.run("ip", "-6", "route", "show", "default", "dev", "br0")
				if strings.Contains(addrs, "2001:db8:77:") || strings.Contains(routes, "fe80::77") {
					return addrs + routes
				}
				return ""
			}
			var got string
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				if got = learned(); got != "" {
					break
				}
			}
			switch {
			case !accept && got != "":
				t.Errorf("br0 took a router advertisement from the LAN:\n%s", got)
			case accept && got == "":
				t.Errorf("with bridge_accept_ra: true, br0 did not take the router advertisement:\n%s%s",
					n.run("ip", "-6", "addr", "show", "dev", "br0"), n.run("ip", "-6", "route"))
			}
		})
	}
}

// raFrame is a router advertisement from fe80::77 to all nodes: default
// router for 30 minutes, prefix 2001:db8:77::/64 on-link and autonomous.
func raFrame(t *testing.T) []byte {
	t.Helper()
	src := net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x77}
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: net.ParseIP("fe80::77"), DstIP: net.ParseIP("ff02::1")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeRouterAdvertisement, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	prefix := []byte{64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x0e, 0x10, 0, 0, 0, 0}
	prefix = append(prefix, net.ParseIP("2001:db8:77::")...)
	ra := &layers.ICMPv6RouterAdvertisement{HopLimit: 64, RouterLifetime: 1800, Options: layers.ICMPv6Options{
		{Type: layers.ICMPv6OptSourceAddress, Data: src},
		{Type: layers.ICMPv6OptPrefixInfo, Data: prefix},
	}}
	return serializeLayers(t, eth, ip, icmp, ra)
}

// synFrame is an Ethernet frame with a TCP SYN from one IPv4 address to
// another's port 25, to an unknown MAC (the bridge floods it).
func synFrame(t *testing.T, from, to string, sport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 5}, DstMAC: net.HardwareAddr{0x02, 0x5e, 0, 0, 0, 9}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(from).To4(), DstIP: net.ParseIP(to).To4()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 25, SYN: true, Seq: 1, Window: 64240}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serializeLayers(t, eth, ip, tcp)
}

func serializeLayers(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// crosses injects frame on in1 (the LAN side of the inside port) and
// reports whether tcpdump on out1 (the router's side of the outside port)
// saw a packet matching filter.
func (n *netns) crosses(frame []byte, filter string) bool {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.name, "tcpdump", "-i", "out1", "-n", "-c", "1", "-l", filter)
	var stdout bytes.Buffer
	stderr := &lockedbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("tcpdump: %v", err)
	}
	for i := 0; i < 50 && !strings.Contains(stderr.String(), "listening on"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	n.inject("in1", frame)
	cmd.Wait()
	return strings.Contains(stderr.String(), "1 packet captured")
}

// inject writes frame on dev from a child process in the namespace.
func (n *netns) inject(dev string, frame []byte) {
	n.t.Helper()
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", n.name, self, "-test.run=^TestInjectChild$", "-test.v")
	cmd.Env = append(os.Environ(), injectEnv+"="+dev, "RELAYGATE_BRIDGE_FRAME="+hex.EncodeToString(frame))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestInjectChild") {
		n.t.Fatalf("inject on %s: %v\n%s", dev, err, out)
	}
}

const injectEnv = "RELAYGATE_BRIDGE_INJECT"

// TestInjectChild is the child side of inject; it does nothing in a normal run.
func TestInjectChild(t *testing.T) {
	dev := os.Getenv(injectEnv)
	if dev == "" {
		t.Skip("helper process for the privileged bridge tests")
	}
	frame, err := hex.DecodeString(os.Getenv("RELAYGATE_BRIDGE_FRAME"))
	if err != nil {
		t.Fatal(err)
	}
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	copy(sa.Addr[:], frame[:6])
	if err := unix.Sendto(fd, frame, 0, sa); err != nil {
		t.Fatalf("sendto %s: %v", dev, err)
	}
}
