package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/webui"
)

type modeStatus struct{ mode config.Mode }

func (m modeStatus) Status(ctx context.Context) webui.Status { return webui.Status{Mode: m.mode} }

// TestDashboardFromStore feeds the real store with what the proxy and
// inspection record (events, and events a throttle held back) and reads
// the dashboard and the hosts through the API: every total is what was
// recorded, and the dashboard and the host cards agree.
func TestDashboardFromStore(t *testing.T) {
	ctx := context.Background()
	st, deps := webStoreDeps(t, modeStatus{config.Enforce}, func(cfg *config.Config) {
		cfg.Relays = []config.Relay{{Name: "mail-relay", Address: config.MustParsePrefix("10.10.0.0/16")}, {Name: "relay-narrow", Address: config.MustParsePrefix("10.10.0.25/32")}}
	})
	srv := httptest.NewTLSServer(webui.NewRouter(deps))
	defer srv.Close()
	tok, err := st.CreateToken(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(path string, out any) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %s", path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}

	now := time.Now()
	pc, relay := netip.MustParseAddr("10.20.0.50"), netip.MustParseAddr("10.10.0.25")
	for range 3 {
		st.Record(event.Event{Time: now, Kind: event.Blocked, Client: pc, MailFrom: "bot@pc.example"})
	}
	st.Record(event.Event{Time: now, Kind: event.Refused, Client: pc})
	st.Tally(event.Event{Time: now, Kind: event.Refused, Client: pc}) // held back by the throttle
	for range 5 {
		st.Record(event.Event{Time: now, Kind: event.Relayed, Client: relay, Relay: "relay-narrow", MailFrom: "thief@corp.example", Messages: 1})
	}
	st.Record(event.Event{Time: now, Kind: event.Relayed, Client: relay, Relay: "relay-narrow", TLS: "passthrough"})
	st.Record(event.Event{Time: now, Kind: event.Deferred, Client: relay, Relay: "relay-narrow"})
	st.Tally(event.Event{Time: now, Kind: event.Deferred, Client: relay, Relay: "relay-narrow"})
	st.Record(event.Event{Time: now, Kind: event.Alert, Client: relay, Relay: "relay-narrow", MailFrom: "thief@corp.example", Detail: "burst"})
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var d struct {
		Monitor  bool
		Totals   map[string]int64
		Blocked  []int64
		Outcomes map[string][]int64
		TopHosts []struct {
			Key   string
			Value int64
		} `json:"top_hosts"`
		TopSenders map[string][]struct {
			Relay, Sender string
			Messages      int64
		} `json:"top_senders"`
		Alerts []event.Event
	}
	get("/api/v1/dashboard?minutes=60", &d)
	sum := func(v []int64) (n int64) {
		for _, x := range v {
			n += x
		}
		return n
	}
	wantTotals := map[string]int64{"relayed": 5, "blocked": 5, "deferred": 2, "encrypted_sessions": 1,
		"outcome_relayed": 6, "outcome_blocked": 5, "outcome_would_block": 0, "outcome_deferred": 2,
		"outcome_upstream_error": 0, "outcome_shed": 0}
	if diff := cmp.Diff(wantTotals, d.Totals); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if got := sum(d.Blocked); got != d.Totals["blocked"] {
		t.Errorf("blocked chart sums to %d, total says %d", got, d.Totals["blocked"])
	}
	for name, v := range d.Outcomes {
		if got := sum(v); got != d.Totals["outcome_"+name] {
			t.Errorf("outcome %s chart sums to %d, total says %d", name, got, d.Totals["outcome_"+name])
		}
	}
	if len(d.TopHosts) != 1 || d.TopHosts[0].Key != "10.20.0.50" || d.TopHosts[0].Value != 5 {
		t.Errorf("top hosts = %+v, want 10.20.0.50 with 5", d.TopHosts)
	}
	for _, w := range []string{"1h", "24h"} {
		ts := d.TopSenders[w]
		if len(ts) != 1 || ts[0].Relay != "relay-narrow" || ts[0].Sender != "thief@corp.example" || ts[0].Messages != 5 {
			t.Errorf("top senders %s = %+v, want thief@corp.example through relay-narrow with 5", w, ts)
		}
	}
	if len(d.Alerts) != 1 || d.Alerts[0].MailFrom != "thief@corp.example" {
		t.Errorf("alerts = %+v, want the burst alert", d.Alerts)
	}

	// The host cards count the same.
	var hosts struct {
		Hosts []struct {
			Addr                                          string
			Attempts, Blocked, Relayed, Deferred, Refused int64
			Relay                                         string
			IsRelay                                       bool `json:"is_relay"`
		}
	}
	get("/api/v1/hosts", &hosts)
	byAddr := map[string]int{}
	for i, h := range hosts.Hosts {
		byAddr[h.Addr] = i
	}
	hp := hosts.Hosts[byAddr["10.20.0.50"]]
	if hp.Blocked != d.TopHosts[0].Value || hp.Refused != 2 || hp.IsRelay {
		t.Errorf("host 10.20.0.50 = %+v, want blocked %d as on the dashboard, 2 refused, not a relay", hp, d.TopHosts[0].Value)
	}
	hr := hosts.Hosts[byAddr["10.10.0.25"]]
	if hr.Relayed != d.Totals["outcome_relayed"] || hr.Deferred != d.Totals["deferred"] || !hr.IsRelay || hr.Relay != "relay-narrow" {
		t.Errorf("host 10.10.0.25 = %+v, want relayed %d and deferred %d as on the dashboard, a relay", hr, d.Totals["outcome_relayed"], d.Totals["deferred"])
	}

	// Monitor mode says so.
	deps.Status = modeStatus{config.Monitor}
	srv2 := httptest.NewTLSServer(webui.NewRouter(deps))
	defer srv2.Close()
	srv.URL = srv2.URL
	get("/api/v1/dashboard?minutes=60", &d)
	if !d.Monitor {
		t.Errorf("dashboard in monitor mode: monitor = false")
	}
}
