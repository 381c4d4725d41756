package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// inspectHelper builds the inspect package's test binary, whose
// TestLiveCapture captures on the bridge ports when told by its environment.
func inspectHelper(t *testing.T, l *lab.Lab) string {
	t.Helper()
	return buildOnce(t, l, "inspect.test", "test", "-c", "./inspect/")
}

var (
	buildMu   sync.Mutex
	buildDone = map[string]error{}
)

// buildOnce runs `go ARGS -o l.Dir/NAME` from the repository root once per
// test binary run, and returns the path of what it built.
func buildOnce(t *testing.T, l *lab.Lab, name string, args ...string) string {
	t.Helper()
	out := filepath.Join(l.Dir, name)
	buildMu.Lock()
	defer buildMu.Unlock()
	err, done := buildDone[out]
	if !done {
		cmd := exec.Command("go", append(append([]string{}, args[0], "-o", out), args[1:]...)...)
		cmd.Dir = lab.Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, cerr := cmd.CombinedOutput(); cerr != nil {
			err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), cerr, b)
		}
		buildDone[out] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type liveResult struct {
	Packets     uint64           `json:"packets"`
	KernelDrops uint64           `json:"kernel_drops"`
	QueueDrops  uint64           `json:"queue_drops"`
	FlowsTotal  int64            `json:"flows_total"`
	Messages    uint64           `json:"messages"`
	WouldBlock  []string         `json:"would_block_events"`
	Series      map[string]int64 `json:"series"`
}

// TestInspectMonitor sends SMTP through the bridge in monitor mode while
// live capture (AF_PACKET rings and the BPF filter on the box's bridge
// ports) runs: the PC's direct SMTP, IPv4 and IPv6, shows up as would_block
// with its envelope and message count, the relay's messages are counted,
// and, once the daemon runs inspection itself, its API shows the same.
func TestInspectMonitor(t *testing.T) {
	l := needLab(t)
	a := startAppliance(t, "monitor", "inspect:\n  reverse_dns: false\n")
	bin := inspectHelper(t, l)
	helper, err := l.Start("box", "inspect-helper.log", "env", "RELAYGATE_INSPECT_LIVE=eth1,eth2",
		"RELAYGATE_INSPECT_SECONDS=120", bin, "-test.run", "^TestLiveCapture$", "-test.v")
	if err != nil {
		t.Fatal(err)
	}
	defer helper.Signal(syscall.SIGKILL, 5*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(helper.Output(), "capturing") {
		if time.Now().After(deadline) {
			t.Fatalf("live capture did not start:\n%s", helper.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}

	from4, from6 := uniqueSender(t, "pc4"), uniqueSender(t, "pc6")
	sendOK(t, "pc", lab.MX4, from4)
	sendOK(t, "pc", lab.MX6, from6)
	relayFrom := uniqueSender(t, "relay")
	for range 3 {
		sendOK(t, "relay", lab.MX4, relayFrom)
	}
	// 802.1Q-tagged SMTP, IPv4 and IPv6, injected on the switch's uplink:
	// the kernel moves the tag into metadata before the capture sees it.
	for _, v := range []struct{ src, dst, from string }{
		{"10.20.0.77", lab.MX4, "vlan4@pc.example"},
		{"2001:db8:20::77", lab.MX6, "vlan6@pc.example"},
	} {
		for _, fr := range taggedSMTP(t, v.src, v.dst, v.from) {
			inject(t, "switch", "sw-up", fr)
		}
	}
	// Let the last FINs cross before the capture stops.
	time.Sleep(time.Second)
	if err := helper.Signal(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("stop live capture: %v\n%s", err, helper.Output())
	}
	var res liveResult
	for _, line := range strings.Split(helper.Output(), "\n") {
		if strings.HasPrefix(line, "{") {
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatalf("live capture result: %v\n%s", err, line)
			}
		}
	}
	if res.Packets == 0 {
		t.Fatalf("live capture saw no frames:\n%s", helper.Output())
	}
	for _, want := range []string{lab.PC4 + " " + from4 + " messages=1", lab.PC6 + " " + from6 + " messages=1"} {
		if !slices.Contains(res.WouldBlock, want) {
			t.Errorf("would_block events %q lack %q", res.WouldBlock, want)
		}
	}
	for _, want := range []string{"10.20.0.77 vlan4@pc.example messages=0", "2001:db8:20::77 vlan6@pc.example messages=0"} {
		if !slices.Contains(res.WouldBlock, want) {
			t.Errorf("would_block events %q lack the tagged flow %q", res.WouldBlock, want)
		}
	}
	for _, e := range res.WouldBlock {
		if strings.HasPrefix(e, lab.Relay4+" ") {
			t.Errorf("relay reported as would_block: %q", e)
		}
	}
	if got := res.Series["inspect_messages/"+lab.Relay4]; got != 3 {
		t.Errorf("inspect_messages for the relay = %d, want 3 (series %v)", got, res.Series)
	}
	if res.KernelDrops != 0 || res.QueueDrops != 0 {
		t.Logf("capture dropped frames: kernel %d, queue %d", res.KernelDrops, res.QueueDrops)
	}

	t.Run("daemon", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, body, err := a.APIRaw(ctx, "GET", "/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), "relaygate_inspect_packets_total") {
			t.Fatal("passive inspection is not running in the daemon (no relaygate_inspect_packets_total in /metrics)")
		}
		e := waitEvent(t, a, event.WouldBlock, lab.PC4, from4)
		if e.Messages != 1 || len(e.Rcpt) != 1 || e.Helo != "pc.lab.example" || !strings.Contains(e.Detail, "seen passively") {
			t.Errorf("would_block event = %+v, want 1 message, 1 recipient, HELO pc.lab.example", e)
		}
		waitEvent(t, a, event.WouldBlock, lab.PC6, from6)
		for _, e := range events(t, a, event.WouldBlock, lab.Relay4) {
			t.Errorf("relay reported as would_block: %+v", e)
		}
		code, pcap, err := a.APIRaw(ctx, "GET", "/api/v1/hosts/"+lab.PC4+"/pcap", nil)
		if err != nil {
			t.Fatal(err)
		}
		if code == 404 && len(pcap) > 0 && pcap[0] == '{' {
			t.Fatal("GET /api/v1/hosts/{addr}/pcap does not serve the evidence (404)")
		}
		if code != 200 || len(pcap) < 24 {
			t.Fatalf("GET /api/v1/hosts/%s/pcap = %d, %d bytes", lab.PC4, code, len(pcap))
		}
		// Both capture ports feed the evidence; the file must still be in
		// capture order, or tshark misreads the dialogue.
		pr, err := pcapgo.NewReader(bytes.NewReader(pcap))
		if err != nil {
			t.Fatalf("evidence pcap: %v", err)
		}
		var last time.Time
		for n := 1; ; n++ {
			_, ci, err := pr.ReadPacketData()
			if err != nil {
				break
			}
			if ci.Timestamp.Before(last) {
				t.Errorf("evidence packet %d captured at %s follows one captured at %s", n, ci.Timestamp.Format(time.StampMicro), last.Format(time.StampMicro))
			}
			last = ci.Timestamp
		}
		path := filepath.Join(t.TempDir(), "pc.pcap")
		if err := os.WriteFile(path, pcap, 0o600); err != nil {
			t.Fatal(err)
		}
		tshark, err := exec.LookPath("tshark")
		if err != nil {
			t.Skip("tshark not installed: pcap not checked with tshark -r")
		}
		out, err := exec.Command(tshark, "-r", path, "-Y", "smtp").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "MAIL FROM") {
			t.Errorf("tshark -r %s: %v\n%s", path, err, out)
		}
	})
}

// taggedSMTP crafts a client's SYN, its first commands and a RST, in VLAN 100.
func taggedSMTP(t *testing.T, src, dst, from string) [][]byte {
	t.Helper()
	s, d := net.ParseIP(src), net.ParseIP(dst)
	var out [][]byte
	seq := uint32(7000)
	for i, payload := range []string{"", "EHLO vlan.example\r\nMAIL FROM:<" + from + ">\r\n", ""} {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0x77, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0x77, 2},
			EthernetType: layers.EthernetTypeDot1Q}
		tcp := &layers.TCP{SrcPort: 45077, DstPort: 25, Seq: seq, Window: 65535}
		switch i {
		case 0:
			tcp.SYN = true
			seq++
		case 1:
			tcp.PSH, tcp.ACK = true, true
			seq += uint32(len(payload))
		case 2:
			tcp.RST = true
		}
		var ip gopacket.SerializableLayer
		q := &layers.Dot1Q{VLANIdentifier: 100}
		if s.To4() != nil {
			q.Type = layers.EthernetTypeIPv4
			ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s.To4(), DstIP: d.To4()}
			tcp.SetNetworkLayerForChecksum(ip4)
			ip = ip4
		} else {
			q.Type = layers.EthernetTypeIPv6
			ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: s, DstIP: d}
			tcp.SetNetworkLayerForChecksum(ip6)
			ip = ip6
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, q, ip, tcp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}
