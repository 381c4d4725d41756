package bridge

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestIntervalElements(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []netip.Prefix
		want []string // start, end pairs as "a" / "a)" (interval end)
	}{
		{"single", pfx("10.10.0.25/32"), []string{"0.0.0.0)", "10.10.0.25", "10.10.0.26)"}},
		{"overlap merged", pfx("10.10.0.0/16", "10.10.0.25/32"), []string{"0.0.0.0)", "10.10.0.0", "10.11.0.0)"}},
		{"adjacent merged", pfx("10.0.0.0/25", "10.0.0.128/25"), []string{"0.0.0.0)", "10.0.0.0", "10.0.1.0)"}},
		{"unsorted", pfx("192.0.2.0/24", "10.0.0.1/32"), []string{"0.0.0.0)", "10.0.0.1", "10.0.0.2)", "192.0.2.0", "192.0.3.0)"}},
		{"everything", pfx("0.0.0.0/0"), []string{"0.0.0.0"}},
		{"top of space", pfx("255.255.255.255/32"), []string{"0.0.0.0)", "255.255.255.255"}},
		{"ipv6", pfx("2001:db8:10::25/128"), []string{"::)", "2001:db8:10::25", "2001:db8:10::26)"}},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range intervalElements(tc.in) {
				a, _ := netip.AddrFromSlice(e.Key)
				s := a.String()
				if e.IntervalEnd {
					s += ")"
				}
				got = append(got, s)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("intervalElements(%v) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// The privileged tests below build a namespace with two veth ports and run
// Apply in a child process inside it (this test binary re-executed), so
// that no thread of the test process changes namespace.

const childEnv = "RELAYGATE_BRIDGE_CHILD"

func testConfig(mode string) string {
	return fmt.Sprintf(`mode: %s
interfaces:
  bridge: br0
  inside: in0
  outside: out0
  management: lo
  bridge_addresses: [10.0.255.3/29, "2001:db8:ff::3/64"]
  bridge_gateways: [10.0.255.1, "2001:db8:ff::1"]
  inside_gateways: [10.0.255.2]
  bridge_mac: 02:52:47:00:00:01
relays:
  - {name: a, address: 10.10.0.0/16}
  - {name: b, address: 10.10.0.25/32}
  - {name: c, address: "2001:db8:10::/48"}
ports: [25, 587]
data_dir: /tmp/unused
`, mode)
}

// TestApplyChild is the child side; it does nothing in a normal run.
func TestApplyChild(t *testing.T) {
	verb := os.Getenv(childEnv)
	if verb == "" {
		t.Skip("helper process for the privileged bridge tests")
	}
	b := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if verb == "fail-after-guard" {
		b.afterGuard = func() error { return errInjected }
	}
	var c *config.Config
	for _, path := range strings.Split(os.Getenv("RELAYGATE_BRIDGE_CONFIGS"), ",") {
		var err error
		if c, err = config.Load(path); err != nil {
			t.Fatal(err)
		}
		err = b.Apply(context.Background(), c)
		if verb == "fail-after-guard" {
			if !errors.Is(err, errInjected) {
				t.Fatalf("Apply = %v, want the injected failure", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	switch verb {
	case "serve":
		if err := b.SetServing(true); err != nil {
			t.Fatal(err)
		}
	case "stop":
		if err := b.SetServing(true); err != nil {
			t.Fatal(err)
		}
		if err := b.Stop(); err != nil {
			t.Fatal(err)
		}
	case "teardown":
		if err := Teardown(c); err != nil {
			t.Fatal(err)
		}
	case "restore":
		restoreChild(t, b)
	}
}

// restoreChild serves, then removes parts of the ruleset as another tool
// would; after each, one Heartbeat must put back every chain, with the
// diversion on, and count it.
func restoreChild(t *testing.T, b *Bridge) {
	if err := b.SetServing(true); err != nil {
		t.Fatal(err)
	}
	nft := func(args ...string) string {
		out, err := exec.Command("nft", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	want := nft("list", "chains")
	for i, damage := range [][]string{
		{"flush", "ruleset"},
		{"delete", "table", "inet", TableName},
		{"delete", "table", "bridge", TableName},
	} {
		nft(damage...)
		if err := b.Heartbeat(); err != nil {
			t.Fatalf("after nft %s: Heartbeat = %v", strings.Join(damage, " "), err)
		}
		if got := nft("list", "chains"); got != want {
			t.Errorf("after nft %s and a heartbeat, the chains are\n%s\nwant\n%s", strings.Join(damage, " "), got, want)
		}
		if got := nft("list", "set", "bridge", TableName, "alive"); !strings.Contains(got, "elements") {
			t.Errorf("after nft %s and a heartbeat, the diversion is off:\n%s", strings.Join(damage, " "), got)
		}
		if got := b.Restored(); got != uint64(i+1) {
			t.Errorf("after nft %s: Restored() = %d, want %d", strings.Join(damage, " "), got, i+1)
		}
	}
	if err := b.Heartbeat(); err != nil || b.Restored() != 3 {
		t.Errorf("a heartbeat on a whole ruleset: err %v, Restored() = %d, want nil and 3", err, b.Restored())
	}
}

type netns struct {
	t    *testing.T
	name string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace, a bridge and nftables tables (CI runs as root)")
	}
	n := &netns{t: t, name: fmt.Sprintf("rgbr%d", os.Getpid()%100000)}
	exec.Command("ip", "netns", "del", n.name).Run()
	n.ip("netns", "add", n.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() })
	n.ip("-n", n.name, "link", "add", "in0", "type", "veth", "peer", "name", "in1")
	n.ip("-n", n.name, "link", "add", "out0", "type", "veth", "peer", "name", "out1")
	for _, l := range []string{"lo", "in1", "out1"} {
		n.ip("-n", n.name, "link", "set", l, "up")
	}
	return n
}

func (n *netns) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (n *netns) run(args ...string) string {
	n.t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.name}, args...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// apply runs the child with the test configuration of the given modes
// applied in order, then verb.
func (n *netns) apply(verb string, modes ...string) {
	n.t.Helper()
	var cfgs []string
	for _, m := range modes {
		cfgs = append(cfgs, testConfig(m))
	}
	n.applyConfigs(verb, cfgs...)
}

// applyConfigs runs the child with the given configurations applied in
// order, then verb.
func (n *netns) applyConfigs(verb string, cfgs ...string) {
	n.t.Helper()
	var paths []string
	for i, cfg := range cfgs {
		p := filepath.Join(n.t.TempDir(), fmt.Sprintf("c%d.yaml", i))
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			n.t.Fatal(err)
		}
		paths = append(paths, p)
	}
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", n.name, self, "-test.run=^TestApplyChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+verb, "RELAYGATE_BRIDGE_CONFIGS="+strings.Join(paths, ","))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestApplyChild") {
		n.t.Fatalf("child %s: %v\n%s", verb, err, out)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestRulesetGolden(t *testing.T) {
	for _, mode := range []string{"monitor", "enforce"} {
		t.Run(mode, func(t *testing.T) {
			n := newNetns(t)
			n.apply("apply", mode)
			first := n.run("nft", "list", "ruleset")
			golden(t, "ruleset-"+mode+".nft", first)
			// The same configuration again: the same ruleset.
			n.apply("apply", mode, mode)
			if again := n.run("nft", "list", "ruleset"); again != first {
				t.Errorf("applying twice changed the ruleset:\n%s", cmp.Diff(first, again))
			}
		})
	}
}

func TestModeSwitchAndLinks(t *testing.T) {
	n := newNetns(t)
	n.apply("serve", "monitor", "enforce")
	rs := n.run("nft", "list", "ruleset")
	golden(t, "ruleset-enforce-serving.nft", stripTimeouts(rs))
	links := n.run("ip", "-d", "link", "show", "br0")
	for _, want := range []string{"02:52:47:00:00:01", "stp_state 0", "forward_delay 0", "state UP"} {
		if !strings.Contains(links, want) {
			t.Errorf("br0 lacks %q:\n%s", want, links)
		}
	}
	for _, port := range []string{"in0", "out0"} {
		if out := n.run("ip", "link", "show", port); !strings.Contains(out, "master br0") {
			t.Errorf("%s not enslaved to br0:\n%s", port, out)
		}
	}
	rules := n.run("ip", "rule")
	for _, want := range []string{"fwmark 0x2525 lookup 9509", "fwmark 0x2526 lookup 9510", "fwmark 0x2527 lookup 9511"} {
		if !strings.Contains(rules, want) {
			t.Errorf("ip rule lacks %q:\n%s", want, rules)
		}
	}
	if out := n.run("ip", "route", "show", "table", "9511"); !strings.Contains(out, "default via 10.0.255.1 dev br0") {
		t.Errorf("onward table:\n%s", out)
	}
	if out := n.run("ip", "route", "show", "table", "9510"); !strings.Contains(out, "default via 10.0.255.2 dev br0") {
		t.Errorf("reply table:\n%s", out)
	}
}

func TestStopAndTeardown(t *testing.T) {
	n := newNetns(t)
	n.apply("stop", "enforce")
	if out := n.run("nft", "list", "set", "netdev", "relaygate", "alive"); strings.Contains(out, "elements") {
		t.Errorf("stop left the liveness element:\n%s", out)
	}
	// Another table of someone else's must survive teardown.
	n.run("nft", "add", "table", "inet", "someone_else")
	n.apply("teardown", "enforce")
	out := n.run("nft", "list", "tables")
	if strings.Contains(out, "relaygate") || !strings.Contains(out, "someone_else") {
		t.Errorf("after teardown, tables:\n%s", out)
	}
	if out := n.run("ip", "rule"); strings.Contains(out, "0x2525") {
		t.Errorf("teardown left ip rules:\n%s", out)
	}
	if out := n.run("ip", "link", "show", "in0"); !strings.Contains(out, "master br0") {
		t.Errorf("teardown must leave the bridge forwarding:\n%s", out)
	}
	// Monitor mode: stopping removes the tables.
	n.apply("stop", "monitor")
	if out := n.run("nft", "list", "tables"); strings.Contains(out, "relaygate") {
		t.Errorf("monitor stop left tables:\n%s", out)
	}
}

// stripTimeouts removes the remaining-time part of set elements, which
// changes from run to run.
func stripTimeouts(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if i := strings.Index(line, " expires "); i >= 0 {
			j := strings.IndexAny(line[i+9:], " }\n")
			if j >= 0 {
				line = line[:i] + line[i+9+j:]
			}
		}
		b.WriteString(line)
	}
	return b.String()
}
