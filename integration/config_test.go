package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

func TestBrokenConfig(t *testing.T) {
	l := needLab(t)
	bin := filepath.Join(l.Bin, "appliance")
	good := lab.Config("enforce", filepath.Join(l.Dir, "data-broken"), "")
	// An earlier test's daemon in enforce mode leaves its tables on purpose
	// (the failure behaviour); start from none, so that the check below
	// sees only what the failed starts leave.
	goodPath := filepath.Join(l.Dir, "good.yaml")
	if err := os.WriteFile(goodPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "exec", l.NS("box"), bin, "teardown", "--config", goodPath).CombinedOutput(); err != nil {
		t.Fatalf("teardown before the test: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, cfg, want string
	}{
		{"bad cidr", strings.Replace(good, "10.10.0.25/32", "10.10.0.300/32", 1), "relays[0].address"},
		{"unknown key", good + "colour: blue\n", "colour: unknown key"},
		{"unknown mode", strings.Replace(good, "mode: enforce", "mode: block", 1), "mode: unknown mode"},
		{"bad interface name", strings.Replace(good, "inside: eth1", "inside: eth1/../x", 1), "interfaces.inside"},
		{"empty relays in enforce", strings.Split(good, "relays:")[0] + "ports: [25]\ndata_dir: /tmp/x\n", "relays"},
		{"not yaml", "mode: [enforce\n", "line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(l.Dir, "broken.yaml")
			if err := os.WriteFile(path, []byte(tc.cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, verb := range []string{"check-config", "run"} {
				cmd := exec.Command("ip", "netns", "exec", l.NS("box"), bin, verb, "--config", path)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if err == nil || !errorsAs(err, &ee) || ee.ExitCode() != 1 {
					t.Fatalf("%s: err = %v, want exit status 1\n%s", verb, err, out)
				}
				msg := strings.TrimSpace(string(out))
				if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) {
					t.Errorf("%s: output = %q; want one line containing %q", verb, msg, tc.want)
				}
			}
		})
	}
	// The failed runs left nothing behind: no tables of ours.
	out, _ := l.Run(context.Background(), "box", "nft", "list", "tables")
	if strings.Contains(out, "relaygate") {
		t.Errorf("a failed start left tables behind:\n%s", out)
	}
	if out, err := exec.Command(bin, "check-config", "--config", filepath.Join(l.Dir, "nope.yaml")).CombinedOutput(); err == nil {
		t.Errorf("check-config of a missing file succeeded: %s", out)
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// TestLiveConfigChange: a running daemon keeps its configuration when given
// a broken one (SIGHUP or API), and applies a good one live.
func TestLiveConfigChange(t *testing.T) {
	a := startAppliance(t, "enforce", "")
	ctx := context.Background()
	orig, err := os.ReadFile(a.CfgPath)
	if err != nil {
		t.Fatal(err)
	}

	// A broken file and SIGHUP: the old configuration stays in force.
	if err := os.WriteFile(a.CfgPath, []byte(strings.Replace(string(orig), "10.10.0.25/32", "10.10.0.25/33", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.Output(), "keeping the running configuration") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload error logged:\n%s", a.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	sendOK(t, "relay", lab.MX4, uniqueSender(t, "relay"))
	if err := os.WriteFile(a.CfgPath, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	// A broken configuration through the API: 400 naming the key, nothing changes.
	var cur map[string]any
	if err := a.API(ctx, "GET", "/api/v1/config", nil, &cur); err != nil {
		t.Fatal(err)
	}
	cur["relays"] = []map[string]string{{"name": "bad", "address": "not-an-address"}}
	body, _ := json.Marshal(cur)
	code, resp, err := a.APIRaw(ctx, "PUT", "/api/v1/config", body)
	if err != nil || code != 400 || !strings.Contains(string(resp), "relays[0].address") {
		t.Errorf("PUT bad config: code %d err %v body %s; want 400 naming relays[0].address", code, err, resp)
	}
	if now, _ := os.ReadFile(a.CfgPath); string(now) != string(orig) {
		t.Errorf("a rejected configuration was written to disk")
	}

	// A good change, applied live: the PC becomes a relay.
	cur["relays"] = []map[string]string{
		{"name": "mail-relay", "address": "10.10.0.25/32"},
		{"name": "pc-now-allowed", "address": lab.PC4 + "/32"},
	}
	body, _ = json.Marshal(cur)
	if err := a.API(ctx, "PUT", "/api/v1/config", body, nil); err != nil {
		t.Fatal(err)
	}
	from := uniqueSender(t, "pc")
	sendOK(t, "pc", lab.MX4, from)
	if msg, err := theMX.WaitMessage(from, 10*time.Second); err != nil || msg.Client != lab.PC4 {
		t.Errorf("PC's mail after it became a relay: %+v, %v", msg, err)
	}
	ev := waitEvent(t, a, event.Relayed, lab.PC4, "")
	if ev.Relay != "pc-now-allowed" {
		t.Errorf("relayed event relay = %q; want pc-now-allowed", ev.Relay)
	}
	saved, _ := os.ReadFile(a.CfgPath)
	if !strings.Contains(string(saved), "pc-now-allowed") {
		t.Errorf("applied configuration not saved:\n%s", saved)
	}
	if _, err := os.Stat(a.CfgPath + ".prev"); err != nil {
		t.Errorf("previous configuration not kept: %v", err)
	}
}
