package webui

import (
	"strings"
	"testing"
	"time"
)

func TestDashboardAPI(t *testing.T) {
	h, _ := labHarness(t)
	w := h.do(t, "GET", "/api/v1/dashboard?minutes=60", bearer, "")
	if w.Code != 200 {
		t.Fatalf("GET /api/v1/dashboard = %d %s", w.Code, w.Body)
	}
	d := decode[dashboardData](t, w)
	if len(d.Minutes) != 60 || len(d.Blocked) != 60 || len(d.Relayed["mail-relay"]) != 60 || len(d.Relayed["crm-relay"]) != 60 {
		t.Errorf("dashboard series lengths: minutes %d, blocked %d, relayed %v", len(d.Minutes), len(d.Blocked), len(d.Relayed))
	}
	if d.Totals["relayed"] == 0 || d.Totals["blocked"] == 0 {
		t.Errorf("totals %v, want relayed and blocked > 0", d.Totals)
	}
	if len(d.TopHosts) == 0 || d.TopHosts[0].Key != "10.20.0.50" {
		t.Errorf("top hosts %v, want 10.20.0.50 first", d.TopHosts)
	}
	if len(d.Recent) != 5 || d.Recent[0].ID != 5 {
		t.Errorf("recent events %d, first %d, want 5 newest first", len(d.Recent), d.Recent[0].ID)
	}
	for _, q := range []string{"minutes=0", "minutes=x", "minutes=100000", "foo=1"} {
		if w := h.do(t, "GET", "/api/v1/dashboard?"+q, bearer, ""); w.Code != 400 || decodeError(t, w) == "" {
			t.Errorf("GET /api/v1/dashboard?%s = %d, want 400 with a message", q, w.Code)
		}
	}
}

func TestSeriesAPI(t *testing.T) {
	h, _ := labHarness(t)
	since := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	w := h.do(t, "GET", "/api/v1/series?metric=blocked&key=10.20.0.50&since="+since, bearer, "")
	if w.Code != 200 {
		t.Fatalf("GET /api/v1/series = %d %s", w.Code, w.Body)
	}
	r := decode[seriesResponse](t, w)
	if len(r.Points) == 0 {
		t.Fatal("no points")
	}
	for _, p := range r.Points {
		if p.Metric != "blocked" || p.Key != "10.20.0.50" {
			t.Errorf("point %+v, want blocked/10.20.0.50", p)
		}
	}
	for q, want := range map[string]string{
		"":                       "missing metric",
		"metric=blocked&since=x": `invalid since "x"`,
		"metric=blocked&bogus=1": `unknown parameter "bogus"`,
	} {
		if w := h.do(t, "GET", "/api/v1/series?"+q, bearer, ""); w.Code != 400 || !strings.Contains(decodeError(t, w), want) {
			t.Errorf("GET /api/v1/series?%s = %d %s, want 400 with %q", q, w.Code, w.Body, want)
		}
	}
}
