//go:build linux

package neighbor

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// childEnv makes the test binary the receiver inside the "box" namespace:
// its value is the interface to listen on.
const childEnv = "RELAYGATE_NEIGHBOR_LISTEN"

// listenResult is what the receiver prints.
type listenResult struct {
	Neighbors []Neighbor `json:"neighbors"`
	Stats     Stats      `json:"stats"`
}

// TestListenLLDPD: real lldpd, LLDP and CDP forced, runs in a "switch"
// namespace; Listen runs in a "box" namespace on a port of a Linux bridge
// (as the inside port is), in its own process. The neighbour appears with
// lldpd's system name, port and management addresses, and every frame
// received (LLDP and CDP, one of each a second) decoded.
func TestListenLLDPD(t *testing.T) {
	if iface := os.Getenv(childEnv); iface != "" {
		listenChild(t, iface)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and AF_PACKET (CI runs as root)")
	}
	lldpd, err := exec.LookPath("lldpd")
	if err != nil {
		t.Skip("lldpd not installed (apt-get install lldpd; .ci/run installs it)")
	}
	// lldpd drops privileges (user _lldpd): its socket's directory must
	// be reachable by that user, which t.TempDir's is not.
	dir, err := os.MkdirTemp("", "relaygate-lldpd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pfx := "rgnb" + strconv.Itoa(os.Getpid())
	sw, box := pfx+"s", pfx+"b"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{sw, box} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run("ip", "link", "add", "swp", "netns", sw, "type", "veth", "peer", "name", "eth1", "netns", box)
	run("ip", "-n", sw, "link", "set", "lo", "up")
	run("ip", "-n", sw, "addr", "add", "192.0.2.2/24", "dev", "swp")
	run("ip", "-n", sw, "addr", "add", "2001:db8::2/64", "dev", "swp", "nodad")
	run("ip", "-n", sw, "link", "set", "swp", "up")
	run("ip", "-n", box, "link", "add", "br0", "type", "bridge", "stp_state", "0")
	run("ip", "-n", box, "link", "set", "eth1", "master", "br0")
	run("ip", "-n", box, "link", "set", "eth1", "up")
	run("ip", "-n", box, "link", "set", "br0", "up")

	conf := filepath.Join(dir, "lldpd.conf")
	os.WriteFile(conf, []byte("configure system hostname access-sw1\n"+
		"configure lldp tx-interval 1\n"+
		"configure lldp portidsubtype ifname\n"+
		"configure ports swp lldp portdescription \"3F uplink\"\n"), 0o644)
	lcli, _ := exec.LookPath("lldpcli")
	// -l -ccc: send LLDP and CDPv2 whether or not a peer speaks them.
	cmd := exec.Command("ip", "netns", "exec", sw, lldpd, "-d", "-k", "-l", "-ccc",
		"-u", filepath.Join(dir, "lldpd.sock"), "-I", "swp", "-m", "192.0.2.2,2001:db8::2",
		"-O", conf, "-L", lcli)
	var lldpdLog strings.Builder
	cmd.Stdout, cmd.Stderr = &lldpdLog, &lldpdLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, "ip", "netns", "exec", box, os.Args[0], "-test.run=^TestListenLLDPD$")
	child.Env = append(os.Environ(), childEnv+"=eth1")
	out, err := child.Output()
	if err != nil {
		t.Fatalf("receiver: %v\n%s\nlldpd:\n%s", err, out, lldpdLog.String())
	}
	var res listenResult
	line := out
	if i := strings.Index(string(out), "{"); i >= 0 {
		line = out[i:]
		if j := strings.IndexByte(string(line), '\n'); j >= 0 {
			line = line[:j]
		}
	}
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatalf("receiver output %q: %v", out, err)
	}
	if len(res.Neighbors) != 1 {
		t.Fatalf("neighbours = %+v, want lldpd's", res.Neighbors)
	}
	n := res.Neighbors[0]
	got := []any{n.Interface, n.Side, n.Protocol, n.SystemName, n.PortID, n.PortDescription, n.ManagementAddresses}
	want := []any{"eth1", "inside", "lldp", "access-sw1", "swp", "3F uplink", []string{"192.0.2.2", "2001:db8::2"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("neighbour (-want +got):\n%s", diff)
	}
	if res.Stats.Frames < 4 || res.Stats.Garbage != 0 || res.Stats.Oversize != 0 {
		t.Errorf("stats = %+v, want >= 4 frames (LLDP and CDP), all decoded", res.Stats)
	}
}

// listenChild listens on iface until an LLDP neighbour and at least four
// frames arrived (or 20 s), then prints the table as JSON.
func listenChild(t *testing.T, iface string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tab := NewTable(nil)
	errc := make(chan error, 1)
	go func() { errc <- Listen(ctx, tab, iface, "inside", slog.New(slog.DiscardHandler)) }()
	for ctx.Err() == nil {
		ns := tab.Neighbors()
		if len(ns) > 0 && ns[0].Protocol == LLDP && tab.Stats().Frames >= 4 {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("Listen(%s) stopped: %v (stats %+v)", iface, err, tab.Stats())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Listen(%s) after cancel: %v", iface, err)
	}
	b, _ := json.Marshal(listenResult{Neighbors: tab.Neighbors(), Stats: tab.Stats()})
	os.Stdout.Write(append(b, '\n'))
}
