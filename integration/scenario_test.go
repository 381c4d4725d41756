package integration

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// TestScenarioStolenAccount is the scenario from the field: a stolen
// account on the relay sends 700 messages a minute for two minutes while
// an infected PC tries direct SMTP. The dashboard, the alert and the host
// cards must tell exactly that story: which sender, through which relay,
// how many and from when; which PC, how many attempts and to whom. And
// nothing the relay sent is lost.
func TestScenarioStolenAccount(t *testing.T) {
	l := needLab(t)
	const (
		rate     = 700 // messages per minute
		load     = 2 * time.Minute
		total    = rate * 2
		pcTries  = 5
		pcSender = "infected@pc.example"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The burst detector at its defaults, no hold: the thief's mail all
	// goes out, and one alert names it.
	a := startAppliance(t, "enforce", "limits:\n  burst:\n    factor: 10\n    min_messages: 30\ninspect:\n  reverse_dns: false\n")
	flood := smtpflood(t, l)

	// The stolen account's address, in mixed case as a mail client may
	// write it; the box keys senders in lower case.
	thief := uniqueSender(t, "Stolen.Account")
	victims := make([]string, pcTries)
	for i := range victims {
		victims[i] = fmt.Sprintf("victim%d@remote.example", i+1)
	}

	// Meanwhile the infected PC tries direct SMTP, one recipient per
	// session, spread over the load.
	var (
		wg      sync.WaitGroup
		pcOut   = make([]string, pcTries)
		pcErr   = make([]error, pcTries)
		pcStart = make(chan struct{})
	)
	wg.Go(func() {
		<-pcStart
		for i, to := range victims {
			select {
			case <-ctx.Done():
				return
			case <-time.After(15 * time.Second):
			}
			out, err := theLab.Swaks(ctx, "pc", server(lab.MX4), pcSender, to)
			pcOut[i], pcErr[i] = out, err
		}
	})

	loadStart := time.Now()
	close(pcStart)
	cmd := l.Command(ctx, "relay", flood, "-mode", "send", "-target", lab.MX4+":25", "-src", lab.Relay4,
		"-from", thief, "-to", "list@remote.example", "-n", fmt.Sprint(total), "-rate", fmt.Sprint(rate),
		"-concurrency", "8", "-size", "2048", "-timeout", "30s")
	out, err := cmd.CombinedOutput()
	loadEnd := time.Now()
	wg.Wait()
	t.Logf("smtpflood in %s: %s", loadEnd.Sub(loadStart).Round(time.Millisecond), strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("smtpflood: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`send messages=(\d+) failed=(\d+)`).FindStringSubmatch(string(out)); m == nil ||
		m[1] != fmt.Sprint(total) || m[2] != "0" {
		t.Fatalf("smtpflood did not send %d messages without failure:\n%s", total, out)
	}
	for i := range pcTries {
		if pcErr[i] == nil || !strings.Contains(pcOut[i], "554 5.7.1") {
			t.Errorf("PC's session %d to %s: err %v, want refused with 554 5.7.1\n%s", i+1, victims[i], pcErr[i], pcOut[i])
		}
	}

	// Nothing lost: the MX has every message of the thief.
	until(t, 30*time.Second, "the MX received the thief's messages", func() (bool, string) {
		msgs, err := theMX.Messages()
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, m := range msgs {
			if m.MailFrom == thief {
				n++
			}
		}
		return n == total, fmt.Sprintf("%d of %d", n, total)
	})

	// Everything is recorded once the sessions ended.
	var d dashboard
	var m map[string]float64
	until(t, 30*time.Second, "the dashboard counts every session", func() (bool, string) {
		d, m = getDashboard(t, a), scrape(t, a)
		return d.Totals["relayed"] == total && d.Totals["blocked"] == pcTries && m["relaygate_proxy_messages_total"] == total,
			fmt.Sprintf("dashboard relayed %d, blocked %d; relaygate_proxy_messages_total %v",
				d.Totals["relayed"], d.Totals["blocked"], m["relaygate_proxy_messages_total"])
	})

	// Which sender, which relay, how many.
	if top := d.TopSenders["1h"]; len(top) == 0 || top[0].Relay != "mail-relay" ||
		top[0].Sender != strings.ToLower(thief) || top[0].Messages != total {
		t.Errorf("top senders (1h) %+v: want first mail-relay, %s, %d", top, strings.ToLower(thief), total)
	}
	series := d.Relayed["mail-relay"]
	if sum(series) != total {
		t.Errorf("relayed per minute of mail-relay %v sums to %d, want %d", series, sum(series), total)
	}
	if got := sum(d.Relayed["mail-relay-v6"]); got != 0 {
		t.Errorf("relayed of mail-relay-v6 = %d, want 0", got)
	}
	// The burst on the chart: at 700 a minute for two minutes, one calendar
	// minute holds ~700 however the load straddles minute boundaries, and
	// the minutes with traffic are the load's.
	var busy []int64
	var peak int64
	for i, v := range series {
		if v > 0 {
			busy = append(busy, d.Minutes[i])
		}
		peak = max(peak, v)
	}
	t.Logf("mail-relay per minute: %v", nonZero(d.Minutes, series))
	if peak < 600 {
		t.Errorf("busiest minute of mail-relay has %d messages, want at least 600 (700 a minute)", peak)
	}
	// (The first message is accepted a few milliseconds after the start,
	// the last a few before the end: a second of slack at either end keeps
	// a load that starts or ends on a minute boundary from failing.)
	minute := func(t time.Time) int64 { return t.Truncate(time.Minute).Unix() }
	if n := len(busy); n == 0 || busy[0] < minute(loadStart) || busy[0] > minute(loadStart.Add(time.Second)) ||
		busy[n-1] < minute(loadEnd.Add(-time.Second)) || busy[n-1] > minute(loadEnd) || int64(n) != (busy[n-1]-busy[0])/60+1 {
		t.Errorf("minutes with relayed mail %v, want every minute from the load's start (%s) to its end (%s)",
			busy, loadStart.UTC().Format(time.TimeOnly), loadEnd.UTC().Format(time.TimeOnly))
	}

	// The alert: one, for the thief through mail-relay, within the first
	// minute of the load.
	if len(d.Alerts) != 1 {
		t.Errorf("dashboard alerts %+v: want exactly one", d.Alerts)
	}
	for _, e := range d.Alerts {
		if e.Kind != event.Alert || e.MailFrom != thief || e.Relay != "mail-relay" || e.Client.String() != lab.Relay4 {
			t.Errorf("dashboard alert %+v: want an alert for %s through mail-relay from %s", e, thief, lab.Relay4)
		}
		if e.Time.Before(loadStart) || e.Time.After(loadStart.Add(time.Minute)) {
			t.Errorf("alert at %s, want within the first minute of the load (%s to %s)", e.Time, loadStart, loadStart.Add(time.Minute))
		}
		t.Logf("alert at %s (load started %s): %s", e.Time.Format(time.RFC3339Nano), loadStart.Format(time.RFC3339Nano), e.Detail)
	}
	var alerts struct {
		Events []event.Event `json:"events"`
	}
	if err := a.API(ctx, "GET", "/api/v1/events?kind=alert", nil, &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts.Events) != 1 || !strings.Contains(alerts.Events[0].Detail, "<"+thief+">") {
		t.Errorf("alert events %+v: want one naming <%s>", alerts.Events, thief)
	}

	t.Logf("dashboard: totals %v, top senders (1h) %+v, top hosts %+v", d.Totals, d.TopSenders["1h"], d.TopHosts)

	// Which PC, how many attempts, to whom.
	if len(d.TopHosts) == 0 || d.TopHosts[0] != (keyTotal{Key: lab.PC4, Value: pcTries}) {
		t.Errorf("top hosts %+v: want first %s with %d", d.TopHosts, lab.PC4, pcTries)
	}
	var pc struct {
		Host    apiHost       `json:"host"`
		IsRelay bool          `json:"is_relay"`
		Events  []event.Event `json:"events"`
	}
	if err := a.API(ctx, "GET", "/api/v1/hosts/"+lab.PC4, nil, &pc); err != nil {
		t.Fatal(err)
	}
	if pc.Host.Blocked != pcTries || pc.Host.Relayed != 0 || pc.IsRelay || len(pc.Events) != pcTries {
		t.Errorf("host card of %s: host %+v, relay %v, %d events; want blocked %d, not a relay, %d events",
			lab.PC4, pc.Host, pc.IsRelay, len(pc.Events), pcTries, pcTries)
	}
	var to []string
	for _, e := range pc.Events {
		if e.Kind != event.Blocked || e.MailFrom != pcSender || len(e.Rcpt) != 1 || e.Server.String() != lab.MX4 {
			t.Errorf("host card event %+v: want blocked, %s to one recipient at %s", e, pcSender, lab.MX4)
		}
		to = append(to, e.Rcpt...)
	}
	slices.Sort(to)
	if !slices.Equal(to, victims) {
		t.Errorf("the PC's recipients on its card %v, want %v", to, victims)
	}

	// The relay's card: a relayed event per message.
	var relay struct {
		Host    apiHost `json:"host"`
		Relay   string  `json:"relay"`
		IsRelay bool    `json:"is_relay"`
	}
	if err := a.API(ctx, "GET", "/api/v1/hosts/"+lab.Relay4, nil, &relay); err != nil {
		t.Fatal(err)
	}
	relayed := events(t, a, event.Relayed, lab.Relay4)
	if relay.Host.Relayed != int64(len(relayed)) || len(relayed) != total || !relay.IsRelay || relay.Relay != "mail-relay" ||
		relay.Host.Blocked != 0 || relay.Host.Deferred != 0 {
		t.Errorf("host card of %s: host %+v, relay %q (%v), %d relayed events; want relayed %d, relay mail-relay",
			lab.Relay4, relay.Host, relay.Relay, relay.IsRelay, len(relayed), total)
	}
	for _, e := range relayed {
		if e.MailFrom != thief || e.Relay != "mail-relay" {
			t.Errorf("relayed event %+v: want %s through mail-relay", e, thief)
			break
		}
	}
	// 700 a minute for two minutes by the events' own times: the first
	// and the second minute after the first message hold 700 each.
	if len(relayed) == total {
		t0 := relayed[0].Time
		for _, e := range relayed {
			if e.Time.Before(t0) {
				t0 = e.Time
			}
		}
		var perMinute [3]int
		for _, e := range relayed {
			perMinute[min(2, int(e.Time.Sub(t0)/time.Minute))]++
		}
		t.Logf("relayed events from %s: %v in the first, second and later minutes", t0.Format(time.RFC3339Nano), perMinute)
		if perMinute[0] < rate-10 || perMinute[1] < rate-10 || perMinute[2] > 10 {
			t.Errorf("relayed events per minute from the first %v, want ~%d, ~%d, 0", perMinute, rate, rate)
		}
	}

	// /metrics counts the same.
	if got := m["relaygate_proxy_messages_total"]; got != total {
		t.Errorf("relaygate_proxy_messages_total = %v, want %d", got, total)
	}
	if got := m["relaygate_proxy_sender_bursts_total"]; got != 1 {
		t.Errorf("relaygate_proxy_sender_bursts_total = %v, want 1", got)
	}
	if !d.Status.Serving || d.Monitor || d.Totals["deferred"] != 0 {
		t.Errorf("status serving %v, monitor %v, deferred %d: want serving, enforce, nothing deferred",
			d.Status.Serving, d.Monitor, d.Totals["deferred"])
	}
}

// nonZero formats the minutes of a per-minute series that have a value.
func nonZero(minutes, values []int64) string {
	var b strings.Builder
	for i, v := range values {
		if v != 0 {
			fmt.Fprintf(&b, "%s=%d ", time.Unix(minutes[i], 0).UTC().Format("15:04"), v)
		}
	}
	return strings.TrimSpace(b.String())
}
