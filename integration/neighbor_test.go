package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/neighbor"
)

// TestNeighborLLDP: lldpd runs on the lab's routing switch, on its port
// towards the box (sw-up, cabled to the box's inside port eth1); the
// daemon hears it through the bridge port and GET /api/v1/neighbors names
// the switch, its port and its management address.
func TestNeighborLLDP(t *testing.T) {
	l := needLab(t)
	lldpd, err := exec.LookPath("lldpd")
	if err != nil {
		t.Skip("lldpd not installed (apt-get install lldpd; .ci/run installs it)")
	}
	lldpcli, _ := exec.LookPath("lldpcli")
	a := startAppliance(t, "monitor", "")

	// lldpd drops privileges to _lldpd: its socket's directory must be
	// reachable by that user.
	dir, err := os.MkdirTemp("", "relaygate-lldpd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	conf := filepath.Join(dir, "lldpd.conf")
	os.WriteFile(conf, []byte("configure system hostname core-sw\n"+
		"configure lldp tx-interval 1\n"+
		"configure lldp portidsubtype ifname\n"+
		"configure ports sw-up lldp portdescription \"uplink relaygate\"\n"), 0o644)
	p, err := l.Start("switch", "lldpd.log", lldpd, "-d", "-k", "-l",
		"-u", filepath.Join(dir, "lldpd.sock"), "-I", "sw-up", "-m", "10.0.255.2", "-O", conf, "-L", lldpcli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Signal(syscall.SIGTERM, 5*time.Second) })

	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	var got []neighbor.Neighbor
	for time.Now().Before(deadline) {
		got = nil
		if err := a.API(ctx, "GET", "/api/v1/neighbors", nil, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 && got[0].SystemName == "core-sw" {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(got) != 1 {
		t.Fatalf("GET /api/v1/neighbors = %+v, want the routing switch\nlldpd: %s", got, p.Output())
	}
	n := got[0]
	if n.Interface != "eth1" || n.Side != "inside" || n.Protocol != "lldp" || n.SystemName != "core-sw" ||
		n.PortID != "sw-up" || n.PortDescription != "uplink relaygate" || !slices.Equal(n.ManagementAddresses, []string{"10.0.255.2"}) {
		t.Errorf("neighbour = %+v, want core-sw port sw-up (uplink relaygate) at 10.0.255.2 on eth1, inside", n)
	}
	if n.SeenAt.IsZero() || !n.ExpiresAt.After(n.SeenAt) {
		t.Errorf("seen %v, expires %v: want a time and a TTL", n.SeenAt, n.ExpiresAt)
	}
}
