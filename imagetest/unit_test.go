package imagetest

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// unitFile is the daemon's systemd unit as the image ships it.
const unitFile = "../image/rootfs/usr/lib/systemd/system/relaygate.service"

// maxExposure is the highest `systemd-analyze security` exposure level the
// daemon's unit may have: measured 2.4 (systemd 252) with the sandbox, 9.6
// without it. What remains is what the daemon needs: root (it writes the
// root slots and the ESP), the host's network with NET_ADMIN, NET_RAW and
// NET_BIND_SERVICE, packet and netlink sockets, and the slot devices.
const maxExposure = 2.5

// TestDaemonUnitSandbox runs systemd-analyze security on the unit (offline,
// no systemd needed) and fails when its exposure rises above maxExposure,
// or when the unit's capabilities are anything but the three it needs.
// It runs in `make test` (no image needed); the image test proves the
// daemon works under the sandbox.
func TestDaemonUnitSandbox(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	out, err := exec.Command(sa, "security", "--offline=yes", "--no-pager", unitFile).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for relaygate\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		if strings.Contains(string(out), "offline") {
			t.Skipf("this systemd-analyze cannot check a unit offline: %s", out)
		}
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security: exposure %.1f (at most %.1f)", score, maxExposure)
	if score > maxExposure {
		t.Errorf("relaygate.service exposure %.1f, want at most %.1f:\n%s", score, maxExposure, out)
	}

	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := []string{"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}
	keys := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if len(keys[k]) != 1 {
			t.Errorf("%s= set %d times, want once", k, len(keys[k]))
			continue
		}
		got := strings.Fields(keys[k][0])
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s=%s, want exactly %s", k, keys[k][0], strings.Join(want, " "))
		}
	}
	for _, k := range []string{"NoNewPrivileges", "ProtectSystem", "MemoryMax"} {
		if len(keys[k]) == 0 {
			t.Errorf("%s= missing", k)
		}
	}
}
