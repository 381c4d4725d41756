package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/relaygate/relaygate/internal/testutil/lab"
	"github.com/relaygate/relaygate/internal/testutil/lockedbuf"
)

// TestNonSMTPTraffic checks that everything but SMTP crosses the bridge
// untouched in both modes and while the daemon is stopped, and that
// 802.1Q-tagged SMTP is matched: a tagged relay passes, a tagged non-relay
// is dropped in enforce mode (also while the daemon is stopped).
func TestNonSMTPTraffic(t *testing.T) {
	l := needLab(t)
	echo, err := l.Start("mx", "echo.log", "socat", "TCP6-LISTEN:8080,fork,reuseaddr,ipv6only=0", "EXEC:cat")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Signal(syscall.SIGKILL, 5*time.Second)

	for _, mode := range []string{"monitor", "enforce", "stopped"} {
		t.Run(mode, func(t *testing.T) {
			switch mode {
			case "stopped":
				a := startAppliance(t, "enforce", "")
				if err := a.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
					t.Fatal(err)
				}
			default:
				startAppliance(t, mode, "")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for _, host := range []string{"pc", "relay"} {
				for _, dst := range []string{lab.MX4, lab.MX6} {
					if out, err := l.Run(ctx, host, "ping", "-c1", "-W3", dst); err != nil {
						t.Errorf("ping %s -> %s: %v\n%s", host, dst, err, out)
					}
					addr := "TCP:" + dst + ":8080"
					if strings.Contains(dst, ":") {
						addr = "TCP6:[" + dst + "]:8080"
					}
					cmd := l.Command(ctx, host, "socat", "-T3", "-", addr)
					cmd.Stdin = strings.NewReader("hello across the bridge\n")
					out, err := cmd.CombinedOutput()
					if err != nil || !strings.Contains(string(out), "hello across the bridge") {
						t.Errorf("TCP echo %s -> %s:8080: %v\n%s", host, dst, err, out)
					}
				}
			}

			swMAC, rtMAC := linkMAC(t, "switch", "sw-up"), linkMAC(t, "router", "rt-in")
			udp4 := taggedFrame(t, swMAC, rtMAC, 100, lab.PC4, lab.MX4, &layers.UDP{SrcPort: 40000, DstPort: 9999})
			if !captureWhile(t, "router", "rt-in", "vlan 100 and udp port 9999", "switch", "sw-up", udp4) {
				t.Errorf("tagged IPv4 UDP frame did not cross the bridge")
			}
			udp6 := taggedFrame(t, swMAC, rtMAC, 100, lab.PC6, lab.MX6, &layers.UDP{SrcPort: 40000, DstPort: 9999})
			if !captureWhile(t, "router", "rt-in", "vlan 100 and ip6 and udp port 9999", "switch", "sw-up", udp6) {
				t.Errorf("tagged IPv6 UDP frame did not cross the bridge")
			}
			relaySyn := taggedFrame(t, swMAC, rtMAC, 100, lab.Relay4, lab.MX4, &layers.TCP{SrcPort: 40001, DstPort: 25, SYN: true, Seq: 1, Window: 64240})
			if !captureWhile(t, "router", "rt-in", "vlan 100 and tcp dst port 25", "switch", "sw-up", relaySyn) {
				t.Errorf("tagged SYN from the relay did not cross the bridge")
			}
			pcSyn := taggedFrame(t, swMAC, rtMAC, 100, lab.PC4, lab.MX4, &layers.TCP{SrcPort: 40002, DstPort: 25, SYN: true, Seq: 1, Window: 64240})
			if mode == "monitor" {
				if !captureWhile(t, "router", "rt-in", "vlan 100 and tcp dst port 25", "switch", "sw-up", pcSyn) {
					t.Errorf("monitor: tagged SYN from the PC did not cross the bridge")
				}
				return
			}
			before := taggedDropped(t)
			if captureWhile(t, "router", "rt-in", "vlan 100 and tcp dst port 25", "switch", "sw-up", pcSyn) {
				t.Errorf("%s: tagged SYN from the PC crossed the bridge", mode)
			}
			if after := taggedDropped(t); after <= before {
				t.Errorf("%s: tagged_dropped counter %d -> %d; want it to count the PC's tagged SYN", mode, before, after)
			}
		})
	}
}

// taggedDropped reads the ruleset's tagged_dropped counter with nft.
func taggedDropped(t *testing.T) int {
	t.Helper()
	out, err := theLab.Run(context.Background(), "box", "nft", "list", "counter", "netdev", "relaygate", "tagged_dropped")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if i := strings.Index(out, "packets "); i >= 0 {
		fmt.Sscanf(out[i:], "packets %d", &n)
	}
	return n
}

func linkMAC(t *testing.T, host, dev string) net.HardwareAddr {
	t.Helper()
	out, err := theLab.Run(context.Background(), host, "ip", "-j", "link", "show", "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v: %s", dev, err, out)
	}
	mac, err := net.ParseMAC(links[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// taggedFrame builds an 802.1Q-tagged Ethernet frame carrying l4 (TCP or UDP).
func taggedFrame(t *testing.T, src, dst net.HardwareAddr, vlan uint16, from, to string, l4 gopacket.SerializableLayer) []byte {
	t.Helper()
	fromIP, toIP := net.ParseIP(from), net.ParseIP(to)
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeDot1Q}
	tag := &layers.Dot1Q{VLANIdentifier: vlan}
	var ip gopacket.NetworkLayer
	var ipLayer gopacket.SerializableLayer
	proto := layers.IPProtocolUDP
	if _, ok := l4.(*layers.TCP); ok {
		proto = layers.IPProtocolTCP
	}
	if v4 := fromIP.To4(); v4 != nil {
		tag.Type = layers.EthernetTypeIPv4
		p := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: v4, DstIP: toIP.To4()}
		ip, ipLayer = p, p
	} else {
		tag.Type = layers.EthernetTypeIPv6
		p := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: fromIP, DstIP: toIP}
		ip, ipLayer = p, p
	}
	payload := gopacket.Payload("relaygate lab frame")
	switch x := l4.(type) {
	case *layers.TCP:
		x.SetNetworkLayerForChecksum(ip)
		payload = nil
	case *layers.UDP:
		x.SetNetworkLayerForChecksum(ip)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, tag, ipLayer, l4, payload); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// captureWhile starts tcpdump on capHost/capDev with filter, injects the
// frames on injHost/injDev, and reports whether a matching packet was seen.
func captureWhile(t *testing.T, capHost, capDev, filter, injHost, injDev string, frames ...[]byte) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	cmd := theLab.Command(ctx, capHost, "tcpdump", "-i", capDev, "-n", "-c", "1", "-l", filter)
	var stdout bytes.Buffer
	stderr := &lockedbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50 && !strings.Contains(stderr.String(), "listening on"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	for _, f := range frames {
		inject(t, injHost, injDev, f)
	}
	cmd.Wait()
	return strings.Contains(stderr.String(), "1 packet captured")
}

// inject writes a raw frame on dev in host's namespace, from a child
// process (this test binary re-executed), so that no thread of the test
// process changes namespace.
func inject(t *testing.T, host, dev string, frame []byte) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", theLab.NS(host), self, "-test.run=^TestFrameHelper$")
	cmd.Env = append(os.Environ(), "RELAYGATE_FRAME_HELPER=1", "FRAME_DEV="+dev, "FRAME_HEX="+hex.EncodeToString(frame))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("inject frame on %s/%s: %v\n%s", host, dev, err, out)
	}
}

// TestFrameHelper is the child side of inject; it does nothing in a normal run.
func TestFrameHelper(t *testing.T) {
	if os.Getenv("RELAYGATE_FRAME_HELPER") == "" {
		t.Skip("helper process for inject")
	}
	frame, err := hex.DecodeString(os.Getenv("FRAME_HEX"))
	if err != nil {
		t.Fatal(err)
	}
	ifi, err := net.InterfaceByName(os.Getenv("FRAME_DEV"))
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
		t.Fatal(fmt.Errorf("sendto %s: %w", ifi.Name, err))
	}
}
