package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// dataPathStatus is the part of GET /api/v1/status these tests read.
type dataPathStatus struct {
	Serving  bool              `json:"serving"`
	DataPath string            `json:"data_path"`
	Counters map[string]uint64 `json:"counters"`
}

func status(t *testing.T, a *lab.Appliance) dataPathStatus {
	t.Helper()
	var st dataPathStatus
	if err := a.API(context.Background(), "GET", "/api/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// servingGauge reads relaygate_serving from GET /metrics.
func servingGauge(t *testing.T, a *lab.Appliance) string {
	t.Helper()
	code, body, err := a.APIRaw(context.Background(), "GET", "/metrics", nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "relaygate_serving "); ok {
			return v
		}
	}
	t.Fatalf("GET /metrics: no relaygate_serving")
	return ""
}

// waitDataPath polls the status until data_path is want (10 s at most) and
// checks that serving and relaygate_serving agree with it.
func waitDataPath(t *testing.T, a *lab.Appliance, want string) {
	t.Helper()
	var st dataPathStatus
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st = status(t, a); st.DataPath == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("data_path = %q after 10s, want %q", st.DataPath, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wantServing := want == "diverting" || want == "watching"
	if st.Serving != wantServing {
		t.Errorf("data_path %s: serving = %v, want %v", want, st.Serving, wantServing)
	}
	gauge := map[bool]string{true: "1", false: "0"}[wantServing]
	if got := servingGauge(t, a); got != gauge {
		t.Errorf("data_path %s: relaygate_serving = %s, want %s", want, got, gauge)
	}
}

// TestDataPathStatus checks that serving and data_path in the status say
// what the data path does: capture in monitor mode (and not when the
// configuration turns inspection off), the kernel's diversion in enforce
// mode (and fail_safe while the heartbeat cannot refresh it).
func TestDataPathStatus(t *testing.T) {
	t.Run("monitor", func(t *testing.T) {
		a := startAppliance(t, "monitor", "")
		waitDataPath(t, a, "watching")

		ctx := context.Background()
		var cur map[string]any
		if err := a.API(ctx, "GET", "/api/v1/config", nil, &cur); err != nil {
			t.Fatal(err)
		}
		put := func(enabled bool) {
			t.Helper()
			in, _ := cur["inspect"].(map[string]any)
			if in == nil {
				in = map[string]any{}
			}
			in["enabled"] = enabled
			cur["inspect"] = in
			body, _ := json.Marshal(cur)
			if err := a.API(ctx, "PUT", "/api/v1/config", body, nil); err != nil {
				t.Fatal(err)
			}
		}
		put(false)
		waitDataPath(t, a, "not_watching")
		put(true)
		waitDataPath(t, a, "watching")
	})

	t.Run("enforce", func(t *testing.T) {
		a := startAppliance(t, "enforce", "")
		waitDataPath(t, a, "diverting")

		// Take the bridge table away under the daemon: its next heartbeat
		// cannot refresh the alive set (the product never does this; the
		// kernel refusing a refresh looks the same to it).
		ctx := context.Background()
		if out, err := theLab.Run(ctx, "box", "nft", "delete", "table", "bridge", "relaygate"); err != nil {
			t.Fatalf("nft delete table bridge relaygate: %v\n%s", err, out)
		}
		waitDataPath(t, a, "fail_safe")
		// Several failed heartbeats later: logged once for the streak.
		time.Sleep(3 * bridge.HeartbeatInterval)
		waitDataPath(t, a, "fail_safe")
		if n := strings.Count(a.Output(), "heartbeat failed"); n != 1 {
			t.Errorf("%d heartbeat failures logged during one streak, want 1:\n%s", n, a.Output())
		}

		// SIGHUP re-applies the configuration, which rebuilds the tables:
		// the heartbeat succeeds again.
		if err := a.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitDataPath(t, a, "diverting")
		if !strings.Contains(a.Output(), "heartbeat succeeds again") {
			t.Errorf("recovery not logged:\n%s", a.Output())
		}
		// And the diversion really works again: the PC is refused by the proxy.
		out, err := theLab.Swaks(ctx, "pc", lab.MX4, uniqueSender(t, "bot"), "victim@remote.example")
		if err == nil || !strings.Contains(out, "554") {
			t.Errorf("after recovery the PC should be refused at the SMTP level:\n%s", out)
		}
	})
}

// TestShedSeries floods the proxy with SYNs from the PC beyond
// proxy.new_conns_per_source and checks that the series "shed" counts
// exactly what the ruleset's flood_dropped counter counted meanwhile.
func TestShedSeries(t *testing.T) {
	a := startAppliance(t, "enforce", "proxy:\n  new_conns_per_source: 2\n")
	seriesSum := func() int64 {
		t.Helper()
		var resp struct {
			Points []struct {
				Key   string `json:"key"`
				Value int64  `json:"value"`
			} `json:"points"`
		}
		if err := a.API(context.Background(), "GET", "/api/v1/series?metric=shed&key=flood_dropped", nil, &resp); err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, p := range resp.Points {
			if p.Key != "flood_dropped" || p.Value <= 0 {
				t.Errorf("shed series point %+v; want key flood_dropped and a positive value", p)
			}
			sum += p.Value
		}
		return sum
	}
	c0, s0 := status(t, a).Counters["flood_dropped"], seriesSum()

	// 150 connection attempts at once, each given up after 3 s (a dropped
	// SYN is retransmitted, and the retransmissions are dropped too).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	flood := fmt.Sprintf(`for i in $(seq 150); do timeout 3 bash -c 'exec 3<>/dev/tcp/%s/25' 2>/dev/null & done; wait`, lab.MX4)
	if out, err := theLab.Run(ctx, "pc", "bash", "-c", flood); err != nil {
		t.Fatalf("flood: %v\n%s", err, out)
	}

	var dc uint64
	var ds int64
	for deadline := time.Now().Add(30 * time.Second); ; {
		dc = status(t, a).Counters["flood_dropped"] - c0
		ds = seriesSum() - s0
		if dc > 0 && ds == int64(dc) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: flood_dropped grew by %d, the shed series by %d; want equal and > 0", dc, ds)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("flood_dropped grew by %d, the shed series by %d", dc, ds)
}
