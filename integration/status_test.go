package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	return metricValue(t, a, "relaygate_serving")
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
		ctx := context.Background()
		refused := func(when string) {
			t.Helper()
			out, err := theLab.Swaks(ctx, "pc", lab.MX4, uniqueSender(t, "bot"), "victim@remote.example")
			if err == nil || !strings.Contains(out, "554") {
				t.Errorf("%s the PC should be refused at the SMTP level:\n%s", when, out)
			}
		}

		// Another tool takes the bridge table away under the daemon: the
		// next heartbeat installs the whole ruleset again.
		if out, err := theLab.Run(ctx, "box", "nft", "delete", "table", "bridge", "relaygate"); err != nil {
			t.Fatalf("nft delete table bridge relaygate: %v\n%s", err, out)
		}
		waitLog(t, a, "ruleset was damaged by another tool", 10*time.Second)
		waitDataPath(t, a, "diverting")
		if got := metricValue(t, a, "relaygate_ruleset_restored_total"); got != "1" {
			t.Errorf("relaygate_ruleset_restored_total = %s, want 1", got)
		}
		refused("after the ruleset was restored")

		// The kernel refuses the heartbeat: a table of the same name,
		// owned by another process (nft's "owner" flag), cannot be
		// replaced. The data path is fail_safe, logged once for the streak.
		holder := theLab.Command(ctx, "box", "nft", "-i")
		in, err := holder.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := holder.Start(); err != nil {
			t.Fatalf("nft -i: %v", err)
		}
		release := func() {
			in.Close()
			holder.Wait()
		}
		defer release()
		if _, err := fmt.Fprintln(in, "delete table bridge relaygate; add table bridge relaygate { flags owner ; }"); err != nil {
			t.Fatal(err)
		}
		waitDataPath(t, a, "fail_safe")
		// Several failed heartbeats later: logged once for the streak.
		time.Sleep(3 * bridge.HeartbeatInterval)
		waitDataPath(t, a, "fail_safe")
		if n := strings.Count(a.Output(), "heartbeat failed"); n != 1 {
			t.Errorf("%d heartbeat failures logged during one streak, want 1:\n%s", n, a.Output())
		}

		// The other process ends, its table goes with it: the heartbeat
		// installs the ruleset by itself and succeeds again.
		release()
		waitDataPath(t, a, "diverting")
		if !strings.Contains(a.Output(), "heartbeat succeeds again") {
			t.Errorf("recovery not logged:\n%s", a.Output())
		}
		refused("after recovery")
	})
}

// waitLog waits until the appliance's output holds s.
func waitLog(t *testing.T, a *lab.Appliance, s string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); !strings.Contains(a.Output(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged within %s:\n%s", s, within, a.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue returns the value of an unlabelled metric from /metrics.
func metricValue(t *testing.T, a *lab.Appliance, name string) string {
	t.Helper()
	code, body, err := a.APIRaw(context.Background(), "GET", "/metrics", nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("GET /metrics: no %s", name)
	return ""
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
