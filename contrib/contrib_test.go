// Package contrib holds files for the tools around the appliance: the
// Prometheus rules and the Grafana dashboard (docs/fleet.md). Its tests
// check them with the tools themselves.
package contrib

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPrometheusRules runs promtool on the rules and on their unit tests
// (each alert firing for one box and not for another).
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skip("promtool not installed (apt-get install prometheus; CI installs it and runs as root)")
		}
		t.Fatal("promtool not installed: apt-get install --no-install-recommends prometheus (.ci/run does)")
	}
	for _, args := range [][]string{
		{"check", "rules", "relaygate-rules.yml"},
		{"test", "rules", "relaygate-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestDashboardBoxVariable: the dashboard has the box variable and every
// query of a relaygate metric is filtered by it, so that boxes can be
// chosen and shown side by side.
func TestDashboardBoxVariable(t *testing.T) {
	b, err := os.ReadFile("grafana/relaygate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
				Multi bool   `json:"multi"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/relaygate.json: %v", err)
	}
	found := false
	for _, v := range d.Templating.List {
		if v.Name == "box" {
			found = true
			q, _ := json.Marshal(v.Query)
			if !strings.Contains(string(q), "label_values(relaygate_serving, box)") || !v.Multi {
				t.Errorf("box variable: query %s, multi %v; want label_values(relaygate_serving, box), multi", q, v.Multi)
			}
		}
	}
	if !found {
		t.Error("no box variable")
	}
	if len(d.Panels) == 0 {
		t.Fatal("no panels")
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `box=~"$box"`) || !strings.Contains(q.Expr, "by (box") {
				t.Errorf("panel %q: %s is not filtered and grouped by box", p.Title, q.Expr)
			}
		}
	}
}
