package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// metricsToken creates a metrics-scope token on a's data directory.
func metricsToken(t *testing.T, l *lab.Lab, a *lab.Appliance) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(l.Bin, "appliance"), "token", "create", "--data-dir", a.DataDir,
		"--name", "prometheus", "--scope", "metrics").Output()
	if err != nil {
		t.Fatalf("appliance token create --scope metrics: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// promQuery asks the Prometheus at addr, from namespace host of l, for
// path (an API path with its query) and decodes the JSON answer's data.
func promQuery(ctx context.Context, l *lab.Lab, addr, path string, data any) error {
	out, err := l.Command(ctx, "admin", "curl", "-sf", "--max-time", "5", "http://"+addr+path).Output()
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	var resp struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.Status != "success" {
		return fmt.Errorf("GET %s: %q: %v", path, out, err)
	}
	return json.Unmarshal(resp.Data, data)
}

// TestPrometheusScrapesTwoBoxes: Debian's Prometheus scrapes two boxes
// (two labs, each with its daemon) over HTTPS with a metrics-scope token
// each and the contrib rules loaded; both boxes' relaygate_serving series
// are there with their box label; after one box's daemon is killed, the
// RelaygateNotServing alert fires for that box and not for the other.
//
// Prometheus runs in the first lab's admin namespace and reaches the
// second lab's management address through a socat pair joined by a unix
// socket (the labs' management networks are separate namespaces with the
// same addresses). The rules are loaded from a copy with "for: 5s", so
// that the alert fires within the test's time.
func TestPrometheusScrapesTwoBoxes(t *testing.T) {
	la := needLab(t)
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not installed: apt-get install --no-install-recommends prometheus (.ci/run does)")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "lab"), 0o755); err != nil {
		t.Fatal(err)
	}
	lb, err := lab.Up(fmt.Sprintf("rgf%d", os.Getpid()%100000), filepath.Join(dir, "lab"), la.Bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lb.Down(); err != nil {
			t.Errorf("second lab down: %v", err)
		}
	})
	hq := startApplianceIn(t, la, "monitor", "")
	branch := startApplianceIn(t, lb, "monitor", "")
	hqToken, branchToken := metricsToken(t, la, hq), metricsToken(t, lb, branch)

	ctx := context.Background()
	sock := filepath.Join(dir, "branch.sock")
	startGroup(t, lb.Command(ctx, "admin", "socat", "UNIX-LISTEN:"+sock+",fork", "TCP:"+lab.Mgmt4+":8443"))
	startGroup(t, la.Command(ctx, "admin", "socat", "TCP-LISTEN:18443,bind=127.0.0.1,reuseaddr,fork", "UNIX-CONNECT:"+sock))

	rules, err := os.ReadFile(filepath.Join(lab.Root(), "contrib", "prometheus", "relaygate-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	short := regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(rules, []byte("$1 5s"))
	if bytes.Equal(short, rules) {
		t.Fatal("no for: durations found in relaygate-rules.yml to shorten")
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), short, 0o644); err != nil {
		t.Fatal(err)
	}
	job := func(box, target, token string) string {
		return fmt.Sprintf(`  - job_name: relaygate-%s
    scheme: https
    tls_config: {insecure_skip_verify: true}
    authorization: {credentials: %q}
    static_configs:
      - targets: [%q]
        labels: {job: relaygate, box: %s}
`, box, token, target, box)
	}
	promCfg := "global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}\n" +
		"rule_files: [rules.yml]\nscrape_configs:\n" +
		job("hq", lab.Mgmt4+":8443", hqToken) + job("branch", "127.0.0.1:18443", branchToken)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const promAddr = "127.0.0.1:19090"
	cmd := la.Command(ctx, "admin", prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+promAddr, "--log.level=warn")
	var promLog bytes.Buffer
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})

	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  []any             `json:"value"`
	}
	query := "/api/v1/query?query=" + url.QueryEscape("relaygate_serving")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var res struct {
			Result []sample `json:"result"`
		}
		err := promQuery(ctx, la, promAddr, query, &res)
		var boxes []string
		for _, s := range res.Result {
			if len(s.Value) == 2 && s.Value[1] == "1" {
				boxes = append(boxes, s.Metric["box"])
			}
		}
		slices.Sort(boxes)
		if err == nil && slices.Equal(boxes, []string{"branch", "hq"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relaygate_serving == 1 for boxes %v (%v), want branch and hq", boxes, err)
		}
		time.Sleep(500 * time.Millisecond)
	}

	if err := branch.Signal(syscall.SIGKILL, 5*time.Second); err != nil {
		t.Fatalf("kill branch's daemon: %v", err)
	}
	type alert struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	}
	deadline = time.Now().Add(40 * time.Second)
	for {
		var res struct {
			Alerts []alert `json:"alerts"`
		}
		err := promQuery(ctx, la, promAddr, "/api/v1/alerts", &res)
		var firing []string
		for _, a := range res.Alerts {
			if a.Labels["alertname"] == "RelaygateNotServing" && a.State == "firing" {
				firing = append(firing, a.Labels["box"])
			}
		}
		if slices.Contains(firing, "hq") {
			t.Fatalf("RelaygateNotServing fires for hq, whose daemon runs: %v", res.Alerts)
		}
		if err == nil && slices.Equal(firing, []string{"branch"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RelaygateNotServing firing for %v (%v), want branch; alerts %+v", firing, err, res.Alerts)
		}
		time.Sleep(time.Second)
	}
}

// labelledOnly are metrics the daemon exports only once a series has its
// label values (a blocklist check done, a limit hit): they are checked
// as names compiled into the binary instead of in /metrics.
var labelledOnly = map[string]string{
	"relaygate_reputation_listed":     "a series per address and zone once checked",
	"relaygate_proxy_deferrals_total": "a series per limit once it deferred",
	// A series per collector in export.syslog.
	"relaygate_export_spool_bytes":           "a series per collector",
	"relaygate_export_oldest_unsent_seconds": "a series per collector",
}

// contribMetricNames returns the metric names the dashboard's queries and
// the rules' expressions read.
func contribMetricNames(t *testing.T) []string {
	t.Helper()
	var exprs []string
	b, err := os.ReadFile(filepath.Join(lab.Root(), "contrib", "grafana", "relaygate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("relaygate.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	b, err = os.ReadFile(filepath.Join(lab.Root(), "contrib", "prometheus", "relaygate-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("relaygate-rules.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	seen := map[string]bool{}
	name := regexp.MustCompile(`\brelaygate_[a-z0-9_]+\b`)
	for _, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			seen[n] = true
		}
	}
	if len(seen) == 0 {
		t.Fatal("no metric names found in contrib/")
	}
	return slices.Sorted(func(yield func(string) bool) {
		for n := range seen {
			if !yield(n) {
				return
			}
		}
	})
}

// TestContribMetricNames: every metric the Grafana dashboard and the
// Prometheus rules read is one the running daemon exports on /metrics
// (histogram and summary series by their family's name).
func TestContribMetricNames(t *testing.T) {
	a := startAppliance(t, "monitor", "")
	m := *a
	m.Token = metricsToken(t, theLab, a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, body, err := m.APIRaw(ctx, "GET", "/metrics", nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics = %d, %v", code, err)
	}
	exported := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n, _, _ := strings.Cut(line, "{")
		n, _, _ = strings.Cut(n, " ")
		exported[n] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok {
				exported[base] = true
			}
		}
	}
	bin, err := os.ReadFile(filepath.Join(theLab.Bin, "appliance"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range contribMetricNames(t) {
		inBinary := bytes.Contains(bin, []byte(n))
		switch {
		case exported[n]:
		case labelledOnly[n] != "" && inBinary:
		default:
			t.Errorf("contrib/ reads %s, which the daemon does not export", n)
		}
	}
}
