package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// The truth tests send real traffic through the box (swaks as the relay's
// and the PC's clients, labmx and Postfix as the remote MXs, smtpflood as
// a bot's connection flood) and read back every number the admin sees:
// the dashboard, the hosts list and host cards, the series, the status and
// /metrics. Each number must be what was sent, and numbers that count the
// same thing must agree.

// dashboard is the part of GET /api/v1/dashboard the tests read.
type dashboard struct {
	Monitor    bool               `json:"monitor"`
	Minutes    []int64            `json:"minutes"`
	Relayed    map[string][]int64 `json:"relayed"`
	Blocked    []int64            `json:"blocked"`
	Deferred   []int64            `json:"deferred"`
	Outcomes   map[string][]int64 `json:"outcomes"`
	Totals     map[string]int64   `json:"totals"`
	TopHosts   []keyTotal         `json:"top_hosts"`
	TopSenders map[string][]struct {
		Relay    string `json:"relay"`
		Sender   string `json:"sender"`
		Messages int64  `json:"messages"`
	} `json:"top_senders"`
	Alerts []event.Event `json:"alerts"`
	Status struct {
		Mode     string            `json:"mode"`
		Serving  bool              `json:"serving"`
		Counters map[string]uint64 `json:"counters"`
	} `json:"status"`
}

type keyTotal struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

// apiHost is a row of GET /api/v1/hosts.
type apiHost struct {
	Addr       string `json:"addr"`
	Attempts   int64  `json:"attempts"`
	Blocked    int64  `json:"blocked"`
	Relayed    int64  `json:"relayed"`
	Deferred   int64  `json:"deferred"`
	Refused    int64  `json:"refused"`
	WouldBlock int64  `json:"would_block"`
	Relay      string `json:"relay"`
	IsRelay    bool   `json:"is_relay"`
	Flows      int64  `json:"flows"`
	Messages   int64  `json:"messages"`
}

func sum(v []int64) (n int64) {
	for _, x := range v {
		n += x
	}
	return n
}

func getDashboard(t *testing.T, a *lab.Appliance) dashboard {
	t.Helper()
	var d dashboard
	if err := a.API(context.Background(), "GET", "/api/v1/dashboard?minutes=60", nil, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func getHosts(t *testing.T, a *lab.Appliance) map[string]apiHost {
	t.Helper()
	var resp struct {
		Hosts []apiHost `json:"hosts"`
	}
	if err := a.API(context.Background(), "GET", "/api/v1/hosts?limit=10000", nil, &resp); err != nil {
		t.Fatal(err)
	}
	out := map[string]apiHost{}
	for _, h := range resp.Hosts {
		out[h.Addr] = h
	}
	return out
}

// seriesSum sums GET /api/v1/series for a metric and key over the last hour.
func seriesSum(t *testing.T, a *lab.Appliance, metric, key string) int64 {
	t.Helper()
	var resp struct {
		Points []struct {
			Value int64 `json:"value"`
		} `json:"points"`
	}
	q := fmt.Sprintf("/api/v1/series?metric=%s&key=%s", metric, key)
	if err := a.API(context.Background(), "GET", q, nil, &resp); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range resp.Points {
		n += p.Value
	}
	return n
}

// scrape reads /metrics into "name{labels}" -> value.
func scrape(t *testing.T, a *lab.Appliance) map[string]float64 {
	t.Helper()
	code, body, err := a.APIRaw(context.Background(), "GET", "/metrics", nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics = %d, %v", code, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// shedCounters sums the ruleset counters of attempts shed in the kernel.
func shedCounters(c map[string]uint64) int64 {
	return int64(c["flood_dropped"] + c["reset"] + c["tagged_dropped"] + c["stacked_dropped"] + c["frag_dropped"])
}

// shedBaseline waits until the ruleset's shed counters and the dashboard's
// shed total stood still for longer than the daemon's sampling period (5 s),
// and returns both: from then on they count the same packets.
func shedBaseline(t *testing.T, a *lab.Appliance) (counters, series int64) {
	t.Helper()
	read := func() (int64, int64) {
		d := getDashboard(t, a)
		return shedCounters(d.Status.Counters), d.Totals["outcome_shed"]
	}
	until(t, 40*time.Second, "the shed counters stand still", func() (bool, string) {
		c1, s1 := read()
		time.Sleep(6 * time.Second)
		counters, series = read()
		return c1 == counters && s1 == series, fmt.Sprintf("counters %d -> %d, series %d -> %d", c1, counters, s1, series)
	})
	return counters, series
}

// until polls cond every 300 ms for up to d and fails with what last
// returned when it never holds.
func until(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %s: %s", what, d, msg)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// swaksRefused runs swaks from host and returns its transcript; it must not
// be accepted.
func swaksRefused(t *testing.T, host, mx, from, to string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := theLab.Swaks(ctx, host, server(mx), from, to)
	if err == nil {
		t.Fatalf("swaks from %s to %s was accepted; want a refusal\n%s", host, mx, out)
	}
	return out
}

// smtpflood builds the lab's load tool once.
func smtpflood(t *testing.T, l *lab.Lab) string {
	t.Helper()
	return buildOnce(t, l, "smtpflood", "build", "./internal/testutil/smtpflood")
}

// postfixMX starts a Postfix MX (STARTTLS offered) on the alternative MX
// addresses for the test.
func postfixMX(t *testing.T) *lab.Postfix {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mx, err := theLab.StartPostfixMX(ctx, lab.PostfixOpts{Name: "pf-mx-" + strings.ReplaceAll(t.Name(), "/", "_"), Addrs: []string{lab.MXAlt4, lab.MXAlt6}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mx.Stop(); err != nil {
			t.Errorf("stop postfix MX: %v", err)
		}
	})
	return mx
}

// TestTruthEnforce: in enforce mode, relays' messages (IPv4 and IPv6, one
// session under STARTTLS passthrough to a Postfix MX), the PC's refused
// sessions (IPv4 and IPv6), a sender limit that defers and a bot's flood
// that the kernel sheds; then every number on the dashboard, the hosts,
// the host card, the series, the status and /metrics is what was sent,
// and they agree.
func TestTruthEnforce(t *testing.T) {
	l := needLab(t)
	const floodSrc = "10.20.0.66"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := l.Run(ctx, "pc", "ip", "addr", "replace", floodSrc+"/24", "dev", "eth0"); err != nil {
		t.Fatalf("add the flood source address: %v\n%s", err, out)
	}
	defer l.Run(context.Background(), "pc", "ip", "addr", "del", floodSrc+"/24", "dev", "eth0")
	a := startAppliance(t, "enforce", "limits:\n  sender_messages_per_minute: 1\ninspect:\n  reverse_dns: false\n")
	postfixMX(t)
	// The ruleset's counters carry what an earlier daemon's tables counted
	// (they stay in the kernel after it stops), and stray packets of
	// earlier tests may still be shed: compare growths from a moment when
	// both stood still.
	counters0, shed0 := shedBaseline(t, a)

	// Relays: 3 messages over IPv4 and 2 over IPv6 to labmx, each from its
	// own sender, and one session under STARTTLS (passed through).
	var senders []string
	for i := range 3 {
		from := uniqueSender(t, fmt.Sprintf("relay4-%d", i))
		sendOK(t, "relay", lab.MX4, from)
		senders = append(senders, from)
	}
	for i := range 2 {
		from := uniqueSender(t, fmt.Sprintf("relay6-%d", i))
		sendOK(t, "relay", lab.MX6, from)
		senders = append(senders, from)
	}
	for _, from := range senders {
		if _, err := theMX.WaitMessage(from, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	tlsFrom := uniqueSender(t, "relay-tls")
	if out, err := theLab.Swaks(ctx, "relay", lab.MXAlt4, tlsFrom, "someone@remote.example", "--tls"); err != nil ||
		!strings.Contains(out, "STARTTLS") {
		t.Fatalf("swaks --tls from the relay: %v\n%s", err, out)
	}
	// A sender over sender_messages_per_minute: the second message is
	// deferred (451), the first is relayed.
	limited := uniqueSender(t, "limited")
	sendOK(t, "relay", lab.MX4, limited)
	if out, err := theLab.Swaks(ctx, "relay", server(lab.MX4), limited, "someone@remote.example"); err == nil || !strings.Contains(out, "451 4.7.1") {
		t.Fatalf("second message of a limited sender: %v, want 451 4.7.1\n%s", err, out)
	}
	// The PC: two sessions over IPv4, one over IPv6, refused.
	for _, mx := range []string{lab.MX4, lab.MX4, lab.MX6} {
		out := swaksRefused(t, "pc", mx, "bot@pc.example", "victim@remote.example")
		if !strings.Contains(out, "554 5.7.1") {
			t.Errorf("PC's session to %s: no 554 5.7.1\n%s", mx, out)
		}
	}
	// A bot's flood from another address: shed in the kernel, the rest
	// refused or blocked.
	flood := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS("pc"), smtpflood(t, l), "-mode", "flood",
		"-target", lab.MX4+":25", "-src", floodSrc, "-concurrency", "40", "-duration", "3s", "-timeout", "3s")
	if out, err := flood.CombinedOutput(); err != nil {
		t.Logf("smtpflood: %v\n%s", err, out)
	}

	// Everything is recorded once the sessions ended; wait until the
	// counters the proxy keeps and the store's agree.
	var d dashboard
	var m map[string]float64
	until(t, 20*time.Second, "proxy metrics and dashboard agree", func() (bool, string) {
		d, m = getDashboard(t, a), scrape(t, a)
		conns := m[`relaygate_proxy_connections_total{class="blocked"}`] + m[`relaygate_proxy_connections_total{class="refused"}`]
		active := m[`relaygate_proxy_active_connections{class="blocked"}`]
		return float64(d.Totals["blocked"]) == conns && active == 0,
			fmt.Sprintf("dashboard blocked %d, proxy connections blocked+refused %v, %v open", d.Totals["blocked"], conns, active)
	})
	hosts := getHosts(t, a)
	pc4, pc6, fl := hosts[lab.PC4], hosts[lab.PC6], hosts[floodSrc]
	r4, r6 := hosts[lab.Relay4], hosts[lab.Relay6]

	// What was sent.
	if got := d.Relayed["mail-relay"]; sum(got) != 4 {
		t.Errorf("relayed messages of mail-relay = %d, want 4 (3 + the limited sender's first)", sum(got))
	}
	if got := d.Relayed["mail-relay-v6"]; sum(got) != 2 {
		t.Errorf("relayed messages of mail-relay-v6 = %d, want 2", sum(got))
	}
	if d.Totals["relayed"] != 6 || d.Totals["encrypted_sessions"] != 1 || d.Totals["deferred"] != 1 {
		t.Errorf("totals %v: want relayed 6, encrypted_sessions 1, deferred 1", d.Totals)
	}
	if pc4.Blocked != 2 || pc6.Blocked != 1 || pc4.IsRelay {
		t.Errorf("PC hosts %+v, %+v: want blocked 2 (IPv4) and 1 (IPv6), not relays", pc4, pc6)
	}
	if fl.Blocked == 0 {
		t.Errorf("flood source %+v: want blocked or refused attempts", fl)
	}
	if d.Totals["blocked"] != 3+fl.Blocked {
		t.Errorf("dashboard blocked %d, want the PC's 3 and the flood's %d", d.Totals["blocked"], fl.Blocked)
	}
	// The relay's sessions: 3 messages, the TLS session, the limited
	// sender's accepted message and its deferred session (a session
	// without an accepted message is a relayed event too).
	if r4.Relayed != 6 || r4.Deferred != 1 || !r4.IsRelay || r4.Relay != "mail-relay" || r4.Blocked != 0 {
		t.Errorf("relay host %+v: want relayed 6, deferred 1, relay mail-relay", r4)
	}
	if r6.Relayed != 2 || r6.Relay != "mail-relay-v6" {
		t.Errorf("relay host %+v: want relayed 2, relay mail-relay-v6", r6)
	}

	// The dashboard agrees with itself and with the hosts.
	if sum(d.Blocked) != d.Totals["blocked"] {
		t.Errorf("blocked chart sums to %d, the total says %d", sum(d.Blocked), d.Totals["blocked"])
	}
	if got := d.Totals["outcome_blocked"]; got != d.Totals["blocked"] {
		t.Errorf("outcome blocked %d != blocked %d (enforce mode has no would_block)", got, d.Totals["blocked"])
	}
	if got, want := d.Totals["outcome_relayed"], r4.Relayed+r6.Relayed; got != want {
		t.Errorf("outcome relayed %d, the relays' hosts say %d", got, want)
	}
	if d.Totals["outcome_deferred"] != r4.Deferred+r6.Deferred {
		t.Errorf("outcome deferred %d, the relays' hosts say %d", d.Totals["outcome_deferred"], r4.Deferred+r6.Deferred)
	}
	top := map[string]int64{}
	for _, h := range d.TopHosts {
		top[h.Key] = h.Value
	}
	if top[lab.PC4] != pc4.Blocked || top[lab.PC6] != pc6.Blocked || top[floodSrc] != fl.Blocked {
		t.Errorf("top hosts %v disagree with the hosts (%d, %d, %d)", d.TopHosts, pc4.Blocked, pc6.Blocked, fl.Blocked)
	}
	if _, ok := top[lab.Relay4]; ok {
		t.Errorf("the relay is among the top offending hosts: %v", d.TopHosts)
	}
	var limitedTop int64
	for _, s := range d.TopSenders["24h"] {
		if s.Sender == strings.ToLower(limited) && s.Relay == "mail-relay" {
			limitedTop = s.Messages
		}
	}
	if limitedTop != 1 {
		t.Errorf("top senders %+v: want %s through mail-relay with 1", d.TopSenders["24h"], limited)
	}

	// The host card says the same, with the envelopes.
	var card struct {
		Host   apiHost       `json:"host"`
		Events []event.Event `json:"events"`
	}
	if err := a.API(context.Background(), "GET", "/api/v1/hosts/"+lab.PC4, nil, &card); err != nil {
		t.Fatal(err)
	}
	if card.Host.Blocked != pc4.Blocked || len(card.Events) != 2 {
		t.Errorf("host card of %s: blocked %d, %d events; want %d and 2", lab.PC4, card.Host.Blocked, len(card.Events), pc4.Blocked)
	}
	for _, e := range card.Events {
		if e.Kind != event.Blocked || e.MailFrom != "bot@pc.example" || len(e.Rcpt) != 1 || e.Rcpt[0] != "victim@remote.example" {
			t.Errorf("host card event %+v: want blocked, bot@pc.example to victim@remote.example", e)
		}
	}

	// The series API and /metrics count the same.
	if got := seriesSum(t, a, "relay_messages", "mail-relay"); got != 4 {
		t.Errorf("series relay_messages/mail-relay = %d, want 4", got)
	}
	if got := seriesSum(t, a, "blocked", lab.PC4); got != pc4.Blocked {
		t.Errorf("series blocked/%s = %d, the host says %d", lab.PC4, got, pc4.Blocked)
	}
	if got := m["relaygate_proxy_messages_total"]; got != 6 {
		t.Errorf("relaygate_proxy_messages_total = %v, want 6", got)
	}
	if got := m[`relaygate_proxy_deferrals_total{limit="sender_messages_per_minute"}`]; got != 1 {
		t.Errorf("deferrals_total{sender_messages_per_minute} = %v, want 1", got)
	}
	// What the kernel shed reaches the dashboard: the shed series is
	// sampled every 5 s from the ruleset's counters.
	until(t, 15*time.Second, "shed packets on the dashboard", func() (bool, string) {
		d = getDashboard(t, a)
		c := d.Status.Counters
		want := shedCounters(c) - counters0
		return d.Totals["outcome_shed"]-shed0 == want && want > 0,
			fmt.Sprintf("outcome_shed %d (chart %v), series flood_dropped %d, counters %v", d.Totals["outcome_shed"], d.Outcomes["shed"],
				seriesSum(t, a, "shed", "flood_dropped"), c)
	})
	if !d.Status.Serving || d.Monitor || d.Status.Counters["flood_dropped"] == 0 {
		t.Errorf("status serving %v, monitor %v, flood_dropped %d: want serving, enforce, a flood shed in the kernel",
			d.Status.Serving, d.Monitor, d.Status.Counters["flood_dropped"])
	}
	// And the admin's browser shows the same, in English and Japanese.
	if len(d.TopHosts) > 0 {
		checkDashboardInBrowser(t, a, browserWant{Blocked: d.Totals["blocked"], TopHost: d.TopHosts[0].Key, TopHostCount: d.TopHosts[0].Value})
	}
}

// TestTruthMonitor: in monitor mode nothing is diverted; passive
// inspection sees the relays' messages (IPv4 and IPv6, one session under
// STARTTLS) and the PC's direct SMTP (IPv4 and IPv6), and the dashboard,
// hosts, series and /metrics show exactly that: relayed messages, encrypted
// sessions, and the PC as would-be-blocked.
func TestTruthMonitor(t *testing.T) {
	a := startAppliance(t, "monitor", "inspect:\n  reverse_dns: false\n")
	postfixMX(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 3 {
		sendOK(t, "relay", lab.MX4, uniqueSender(t, fmt.Sprintf("relay4-%d", i)))
	}
	sendOK(t, "relay", lab.MX6, uniqueSender(t, "relay6"))
	if out, err := theLab.Swaks(ctx, "relay", lab.MXAlt4, uniqueSender(t, "relay-tls"), "someone@remote.example", "--tls"); err != nil {
		t.Fatalf("swaks --tls from the relay: %v\n%s", err, out)
	}
	// In monitor mode the PC's mail goes out: that is what the admin must see.
	for _, mx := range []string{lab.MX4, lab.MX4, lab.MX6} {
		sendOK(t, "pc", mx, "bot@pc.example")
	}

	var d dashboard
	until(t, 20*time.Second, "passive inspection's counts on the dashboard", func() (bool, string) {
		d = getDashboard(t, a)
		var st map[string]any
		a.API(context.Background(), "GET", "/api/v1/status", nil, &st)
		return d.Totals["blocked"] == 3 && d.Totals["relayed"] == 4 && d.Totals["encrypted_sessions"] == 1,
			fmt.Sprintf("totals %v; inspection %v", d.Totals, st["inspect"])
	})
	if !d.Monitor || d.Totals["outcome_would_block"] != 3 || d.Totals["outcome_blocked"] != 0 {
		t.Errorf("monitor %v, totals %v: want monitor mode, 3 would_block, nothing blocked", d.Monitor, d.Totals)
	}
	if sum(d.Relayed["mail-relay"]) != 3 || sum(d.Relayed["mail-relay-v6"]) != 1 {
		t.Errorf("relayed per relay %v: want 3 and 1", d.Relayed)
	}
	hosts := getHosts(t, a)
	pc4, pc6, r4 := hosts[lab.PC4], hosts[lab.PC6], hosts[lab.Relay4]
	if pc4.WouldBlock != 2 || pc4.Blocked != 2 || pc6.WouldBlock != 1 || pc4.Flows != 2 {
		t.Errorf("PC hosts %+v, %+v: want 2 and 1 would_block, 2 flows seen", pc4, pc6)
	}
	if r4.Relayed != 4 || r4.Blocked != 0 || !r4.IsRelay || r4.Flows != 4 {
		t.Errorf("relay host %+v: want 4 relayed sessions (3 plain, 1 encrypted), 4 flows, a relay", r4)
	}
	top := map[string]int64{}
	for _, h := range d.TopHosts {
		top[h.Key] = h.Value
	}
	if top[lab.PC4] != 2 || top[lab.PC6] != 1 || len(d.TopHosts) != 2 {
		t.Errorf("top hosts (would be blocked) %v: want %s 2, %s 1", d.TopHosts, lab.PC4, lab.PC6)
	}
	if got := seriesSum(t, a, "attempts_would_block", lab.PC4); got != 2 {
		t.Errorf("series attempts_would_block/%s = %d, want 2", lab.PC4, got)
	}
	m := scrape(t, a)
	if got := m["relaygate_inspect_would_block_total"]; got != 3 {
		t.Errorf("relaygate_inspect_would_block_total = %v, want 3", got)
	}
	if !d.Status.Serving {
		t.Errorf("status: not serving in monitor mode with capture running")
	}
	checkDashboardInBrowser(t, a, browserWant{Blocked: 3, TopHost: lab.PC4, TopHostCount: 2, Monitor: true})
}
