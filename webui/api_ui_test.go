package webui

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/store"
)

// labHarness is a harness with lab data, an evidence store and a system.
func labHarness(t *testing.T) (*harness, *fakeSystem) {
	t.Helper()
	d, h := testDeps(t)
	fillLab(t, h, time.Now())
	sys := &fakeSystem{}
	d.System = sys
	d.Evidence = &fakeEvidence{addrs: map[netip.Addr]bool{netip.MustParseAddr("10.20.0.50"): true}}
	h.store.addLabInventory(t, time.Now())
	d.Inventory = h.store
	h.router = NewRouter(d)
	return h, sys
}

func TestInventoryPages(t *testing.T) {
	d, h := testDeps(t)
	fillLab(t, h, time.Now())
	h.store.addLabInventory(t, time.Now())
	d.Inventory = h.store
	b := h.adminBrowser(t, d)
	w := b.do("GET", "/hosts?sort=flows", nil, nil)
	if body := w.Body.String(); w.Code != 200 || !strings.Contains(body, "10.40.0.9") || !strings.Contains(body, "printer-3f.office.example") {
		t.Errorf("hosts page lacks the host seen only on the wire:\n%s", body)
	}
	w = b.do("GET", "/hosts/10.40.0.9", nil, nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Seen on the wire") {
		t.Errorf("host page of a host seen only on the wire = %d", w.Code)
	}
	if d := decode[hostDetail](t, h.do(t, "GET", "/api/v1/hosts/10.20.0.50", bearer, "")); d.Seen == nil || d.Seen.RDNS != "desktop-7qx.office.example" {
		t.Errorf("host detail seen = %+v", d.Seen)
	}
}

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

func TestModePreviewAPI(t *testing.T) {
	h, _ := labHarness(t)
	w := h.do(t, "GET", "/api/v1/mode-preview?mode=enforce", bearer, "")
	if w.Code != 200 {
		t.Fatalf("GET /api/v1/mode-preview = %d %s", w.Code, w.Body)
	}
	r := decode[modePreviewResponse](t, w)
	var got []string
	for _, h := range r.Hosts {
		got = append(got, h.Addr.String()+"/"+string(rune('0'+h.Attempts)))
	}
	// 10.40.0.9 was only seen on the wire (one flow).
	if strings.Join(got, " ") != "10.20.0.50/2 10.30.0.80/1 10.40.0.9/1" || r.Days != previewDays {
		t.Errorf("preview hosts %v, days %d, want 10.20.0.50 (2), 10.30.0.80 (1), 10.40.0.9 (1)", got, r.Days)
	}
	// Hosts inside a relay's prefix are not listed.
	h.config.cur.Relays = append(h.config.cur.Relays, config.Relay{Name: "web", Address: "10.30.0.0/24", TLS: "passthrough"})
	r = decode[modePreviewResponse](t, h.do(t, "GET", "/api/v1/mode-preview", bearer, ""))
	if len(r.Hosts) != 2 || r.Hosts[0].Addr.String() != "10.20.0.50" || r.Hosts[1].Addr.String() != "10.40.0.9" {
		t.Errorf("preview with 10.30.0.0/24 a relay = %+v, want 10.20.0.50 and 10.40.0.9", r.Hosts)
	}
	if r := decode[modePreviewResponse](t, h.do(t, "GET", "/api/v1/mode-preview?mode=monitor", bearer, "")); len(r.Hosts) != 0 {
		t.Errorf("preview of monitor = %v, want none", r.Hosts)
	}
	for _, q := range []string{"mode=block", "days=0", "days=x", "days=1000"} {
		if w := h.do(t, "GET", "/api/v1/mode-preview?"+q, bearer, ""); w.Code != 400 {
			t.Errorf("GET /api/v1/mode-preview?%s = %d, want 400", q, w.Code)
		}
	}
}

func TestHostAPI(t *testing.T) {
	h, _ := labHarness(t)
	w := h.do(t, "GET", "/api/v1/hosts/10.20.0.50", bearer, "")
	if w.Code != 200 {
		t.Fatalf("GET /api/v1/hosts/10.20.0.50 = %d %s", w.Code, w.Body)
	}
	d := decode[hostDetail](t, w)
	if d.Host.Blocked != 2 || len(d.Events) != 2 || !d.Evidence || d.IsRelay {
		t.Errorf("host detail %+v", d)
	}
	if d := decode[hostDetail](t, h.do(t, "GET", "/api/v1/hosts/::ffff:10.10.0.25", bearer, "")); !d.IsRelay || d.Relay != "mail-relay" || d.Host.Addr.String() != "10.10.0.25" {
		t.Errorf("relay host detail %+v", d)
	}
	if w := h.do(t, "GET", "/api/v1/hosts/10.99.0.1", bearer, ""); w.Code != 404 {
		t.Errorf("unknown host = %d, want 404", w.Code)
	}
	if w := h.do(t, "GET", "/api/v1/hosts/nonsense", bearer, ""); w.Code != 400 || !strings.Contains(decodeError(t, w), "invalid address") {
		t.Errorf("bad address = %d %s, want 400", w.Code, w.Body)
	}
	w = h.do(t, "GET", "/api/v1/hosts/10.20.0.50/pcap", bearer, "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/vnd.tcpdump.pcap" || !strings.HasPrefix(w.Body.String(), "\xd4\xc3\xb2\xa1") {
		t.Errorf("pcap = %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if w := h.do(t, "GET", "/api/v1/hosts/10.30.0.80/pcap", bearer, ""); w.Code != 404 {
		t.Errorf("pcap without evidence = %d, want 404", w.Code)
	}
	// Without an Evidence dependency: 404 and no link on the page.
	plain := newHarness(t)
	if w := plain.do(t, "GET", "/api/v1/hosts/10.20.0.50/pcap", bearer, ""); w.Code != 404 {
		t.Errorf("pcap without Evidence = %d, want 404", w.Code)
	}
}

func TestEventsCSV(t *testing.T) {
	h, _ := labHarness(t)
	w := h.do(t, "GET", "/api/v1/events.csv?kind=blocked", bearer, "")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") || !strings.Contains(w.Header().Get("Content-Disposition"), "attachment") {
		t.Fatalf("GET /api/v1/events.csv = %d %v", w.Code, w.Header())
	}
	recs, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0][0] != "time" || recs[1][2] != "10.20.0.50" {
		t.Fatalf("CSV = %v", recs)
	}
	// Formulas from untrusted envelopes are defused.
	if got := recs[2][7]; !strings.HasPrefix(got, "'=") {
		t.Errorf("mail_from cell %q, want it prefixed with '", got)
	}
	if w := h.do(t, "GET", "/api/v1/events.csv?kind=spam", bearer, ""); w.Code != 400 {
		t.Errorf("bad kind = %d, want 400", w.Code)
	}
}

func TestTokensAPI(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "POST", "/api/v1/tokens", bearer, `{"name": "prometheus"}`)
	if w.Code != 201 {
		t.Fatalf("POST /api/v1/tokens = %d %s", w.Code, w.Body)
	}
	created := decode[map[string]string](t, w)
	if created["token"] == "" || created["name"] != "prometheus" {
		t.Fatalf("created %v", created)
	}
	if e := h.auditLast(t); e.Action != "token.create" || e.Actor != actorName || e.Detail != "prometheus" {
		t.Errorf("audit %+v", e)
	}
	// The new token works.
	if w := h.do(t, "GET", "/api/v1/tokens", "Bearer "+created["token"], ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"name":"prometheus"`) {
		t.Errorf("GET /api/v1/tokens with the new token = %d %s", w.Code, w.Body)
	}
	for _, body := range []string{``, `{`, `{"name": ""}`, `{"name": "a\nb"}`, `{"nom": "x"}`, `{"name": "` + strings.Repeat("x", 101) + `"}`} {
		if w := h.do(t, "POST", "/api/v1/tokens", bearer, body); w.Code != 400 {
			t.Errorf("POST /api/v1/tokens %q = %d, want 400", body, w.Code)
		}
	}
	// Token 1 is the harness's (goodToken), 2 the one created.
	if w := h.do(t, "DELETE", "/api/v1/tokens/2", bearer, ""); w.Code != 204 {
		t.Errorf("DELETE /api/v1/tokens/2 = %d %s", w.Code, w.Body)
	}
	if w := h.do(t, "GET", "/api/v1/tokens", "Bearer "+created["token"], ""); w.Code != 401 {
		t.Errorf("revoked token = %d, want 401", w.Code)
	}
	if w := h.do(t, "DELETE", "/api/v1/tokens/2", bearer, ""); w.Code != 404 {
		t.Errorf("second DELETE = %d, want 404", w.Code)
	}
	if w := h.do(t, "DELETE", "/api/v1/tokens/x", bearer, ""); w.Code != 400 {
		t.Errorf("DELETE /api/v1/tokens/x = %d, want 400", w.Code)
	}
	if got := strings.Join(h.auditActions(t), ","); got != "token.create,token.revoke" {
		t.Errorf("audit actions %s", got)
	}
}

func TestAuditAPI(t *testing.T) {
	h := newHarness(t)
	for _, a := range []string{"login", "config.update", "logout"} {
		h.store.Audit(context.Background(), store.AuditEntry{Actor: "admin", Action: a, Time: time.Now()})
	}
	w := h.do(t, "GET", "/api/v1/audit?limit=2", bearer, "")
	r := decode[map[string][]store.AuditEntry](t, w)
	if len(r["entries"]) != 2 || r["entries"][0].Action != "logout" {
		t.Errorf("GET /api/v1/audit?limit=2 = %s", w.Body)
	}
	if w := h.do(t, "GET", "/api/v1/audit?limit=0", bearer, ""); w.Code != 400 {
		t.Errorf("limit=0 = %d, want 400", w.Code)
	}
}

func TestBackupRestoreAPI(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "GET", "/api/v1/config/backup", bearer, "")
	if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Disposition"), ".yaml") {
		t.Fatalf("backup = %d %v", w.Code, w.Header())
	}
	backup := w.Body.String()
	if _, err := config.Parse([]byte(backup)); err != nil {
		t.Fatalf("backup does not parse: %v", err)
	}
	bad := strings.Replace(backup, "10.10.0.25/32", "10.10.0.300/32", 1)
	w = h.do(t, "POST", "/api/v1/config/restore", bearer, bad)
	if w.Code != 400 || !strings.Contains(decodeError(t, w), "relays[0].address") {
		t.Errorf("restore of a broken file = %d %s, want 400 naming the key", w.Code, w.Body)
	}
	if n := len(h.config.calls()); n != 0 {
		t.Errorf("Apply called %d times for a broken file", n)
	}
	w = h.do(t, "POST", "/api/v1/config/restore", bearer, strings.Replace(backup, "mode: enforce", "mode: monitor", 1))
	if w.Code != 200 || h.config.Current().Mode != config.Monitor {
		t.Errorf("restore = %d %s, mode %s", w.Code, w.Body, h.config.Current().Mode)
	}
	if e := h.auditLast(t); e.Action != "config.restore" || e.Actor != actorName || e.Remote != remoteIP {
		t.Errorf("audit %+v", e)
	}
}

func TestRebootAPI(t *testing.T) {
	h, sys := labHarness(t)
	if w := h.do(t, "POST", "/api/v1/system/reboot", bearer, ""); w.Code != 202 || sys.reboots != 1 {
		t.Errorf("reboot = %d, reboots %d", w.Code, sys.reboots)
	}
	plain := newHarness(t)
	if w := plain.do(t, "POST", "/api/v1/system/reboot", bearer, ""); w.Code != 501 || !strings.Contains(decodeError(t, w), "appliance image") {
		t.Errorf("reboot without System = %d %s, want 501", w.Code, w.Body)
	}
}

func TestPolicyForms(t *testing.T) {
	h, b := loggedIn(t)
	orig, _ := cloneConfig(h.config.Current())
	for _, tc := range []struct {
		name   string
		target string
		form   url.Values
		status int
		want   string
	}{
		{"relay bad address", "/policy/relays/add", url.Values{"name": {"r2"}, "address": {"10.0.0.0/33"}}, 400, `invalid CIDR &#34;10.0.0.0/33&#34;`},
		{"relay duplicate name", "/policy/relays/add", url.Values{"name": {"mail-relay"}, "address": {"10.0.0.9"}}, 400, "duplicate relay name"},
		{"relay empty name", "/policy/relays/add", url.Values{"name": {" "}, "address": {"10.0.0.9"}}, 400, "missing relay name"},
		{"relay bad tls", "/policy/relays/add", url.Values{"name": {"r2"}, "address": {"10.0.0.9"}, "tls": {"snoop"}}, 400, "unknown TLS policy"},
		{"update bad address", "/policy/relays/update", url.Values{"orig": {"mail-relay"}, "name": {"mail-relay"}, "address": {"x"}}, 400, `invalid CIDR &#34;x&#34;`},
		{"update unknown", "/policy/relays/update", url.Values{"orig": {"nope"}, "name": {"a"}, "address": {"10.0.0.1"}}, 404, "Not found."},
		{"remove last relay in enforce", "/policy/relays/delete", url.Values{"orig": {"mail-relay"}}, 400, "in enforce mode that would block all outgoing mail"},
		{"bad mode", "/policy/mode", url.Values{"mode": {"block"}}, 400, "unknown mode"},
		{"limit not a number", "/policy/limits", limitsFormValues(map[string]string{"relay_sessions": "lots"}), 400, "Enter a whole number of 0 or more."},
		{"limit negative", "/policy/limits", limitsFormValues(map[string]string{"recipients_per_message": "-1"}), 400, "Enter a whole number"},
		{"bad duration", "/policy/limits", limitsFormValues(map[string]string{"burst_hold_for": "soon"}), 400, "Enter a duration"},
		{"bad domain line", "/policy/limits", limitsFormValues(map[string]string{"domain_messages_per_minute": "docomo.ne.jp: 30\nnonsense"}), 400, "Line 2: want"},
		{"bad domain", "/policy/limits", limitsFormValues(map[string]string{"domain_messages_per_minute": "not a domain: 30"}), 400, "limits"},
		{"empty reject text", "/policy/limits", limitsFormValues(map[string]string{"reject_text": " "}), 400, "must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := b.post(tc.target, tc.form)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("POST %s = %d, want %d with %q:\n%s", tc.target, w.Code, tc.status, tc.want, w.Body)
			}
			if n := len(h.config.calls()); n != 0 {
				t.Errorf("Apply called %d times, want 0", n)
			}
		})
	}
	if diff := cmp.Diff(orig, h.config.Current(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("config changed by invalid forms (-want +got):\n%s", diff)
	}

	// Valid changes apply and are audited.
	steps := []struct {
		target string
		form   url.Values
		check  func(c *config.Config) bool
		action string
	}{
		{"/policy/relays/add", url.Values{"name": {"crm"}, "address": {"2001:db8:10::26"}}, func(c *config.Config) bool {
			return len(c.Relays) == 2 && c.Relays[1].Address == "2001:db8:10::26" && c.Relays[1].TLS == "passthrough"
		}, "relay.add"},
		{"/policy/relays/update", url.Values{"orig": {"crm"}, "name": {"crm-relay"}, "address": {"2001:db8:10::26/128"}, "tls": {"inspect"}}, func(c *config.Config) bool {
			return c.Relays[1].Name == "crm-relay" && c.Relays[1].TLS == "inspect"
		}, "relay.update"},
		{"/policy/relays/delete", url.Values{"orig": {"crm-relay"}}, func(c *config.Config) bool { return len(c.Relays) == 1 }, "relay.remove"},
		{"/policy/limits", limitsFormValues(map[string]string{"relay_messages_per_minute": "600", "domain_messages_per_minute": "docomo.ne.jp: 30\nezweb.ne.jp:20", "burst_hold": "1", "reject_text": "Use the relay."}),
			func(c *config.Config) bool {
				return c.Limits.RelayMessagesPerMinute == 600 && c.Limits.DomainMessagesPerMinute["ezweb.ne.jp"] == 20 && c.Limits.Burst.Hold && c.RejectText == "Use the relay."
			}, "limits.update"},
		{"/policy/mode", url.Values{"mode": {"monitor"}}, func(c *config.Config) bool { return c.Mode == config.Monitor }, "mode.switch"},
	}
	for _, s := range steps {
		w := b.post(s.target, s.form)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/policy?saved=1" {
			t.Fatalf("POST %s = %d %s", s.target, w.Code, w.Body)
		}
		if !s.check(h.config.Current()) {
			t.Errorf("after POST %s config = %+v", s.target, h.config.Current())
		}
		if e := h.auditLast(t); e.Action != s.action || e.Actor != adminUser {
			t.Errorf("after POST %s audit %+v, want %s by admin", s.target, e, s.action)
		}
		if calls := h.config.calls(); calls[len(calls)-1].Actor != adminUser || calls[len(calls)-1].Remote != "192.0.2.1" {
			t.Errorf("Apply actor/remote = %q/%q", calls[len(calls)-1].Actor, calls[len(calls)-1].Remote)
		}
	}
}

// limitsFormValues is a valid limits form with some fields replaced.
func limitsFormValues(over map[string]string) url.Values {
	v := url.Values{}
	for k, x := range map[string]string{
		"relay_messages_per_minute": "0", "sender_messages_per_minute": "0", "recipients_per_message": "0",
		"relay_sessions": "0", "relay_sessions_per_minute": "0", "remote_mx_per_minute": "0",
		"domain_messages_per_minute": "", "burst_factor": "10", "burst_min_messages": "30", "burst_hold_for": "15m",
		"reject_text": config.DefaultRejectText,
	} {
		v.Set(k, x)
	}
	for k, x := range over {
		v.Set(k, x)
	}
	return v
}

func TestSystemForms(t *testing.T) {
	h, b := loggedIn(t)
	// Restore through the multipart form, broken then good.
	post := func(content string) *httptest.ResponseRecorder {
		return b.multipart("/system/restore", "config", "relaygate.yaml", content)
	}
	if w := post("mode: [\n"); w.Code != 400 || !strings.Contains(w.Body.String(), "restore-error") {
		t.Errorf("restore of broken YAML = %d", w.Code)
	}
	if n := len(h.config.calls()); n != 0 {
		t.Errorf("Apply called %d times for a broken file", n)
	}
	if w := post(strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1)); w.Code != http.StatusSeeOther {
		t.Errorf("restore = %d %s", w.Code, w.Body)
	}
	if h.config.Current().Mode != config.Monitor {
		t.Errorf("mode after restore %s", h.config.Current().Mode)
	}
	// Reboot without a System is refused, with the explanation.
	if w := b.post("/system/reboot", nil); w.Code != http.StatusNotImplemented || !strings.Contains(w.Body.String(), "appliance image") {
		t.Errorf("reboot without System = %d", w.Code)
	}
	w := b.do("GET", "/system", nil, nil)
	if !strings.Contains(w.Body.String(), `<button type="button" disabled>Reboot</button>`) {
		t.Errorf("system page without System: reboot button not disabled")
	}
	// Tokens: invalid name, create, revoke.
	if w := b.post("/tokens", url.Values{"name": {""}}); w.Code != 400 || !strings.Contains(w.Body.String(), "1 to 100 characters.") {
		t.Errorf("token with empty name = %d", w.Code)
	}
	w = b.post("/tokens", url.Values{"name": {"ci"}})
	if tok := regexp.MustCompile(`rg_[A-Za-z0-9_-]{43}`).FindString(w.Body.String()); w.Code != 200 || tok == "" || tok == goodToken {
		t.Errorf("create token = %d, token not shown", w.Code)
	}
	// Token 1 is the harness's (goodToken), 2 the one created.
	if w := b.post("/tokens/revoke", url.Values{"id": {"2"}}); w.Code != http.StatusSeeOther {
		t.Errorf("revoke = %d", w.Code)
	}
	if w := b.post("/tokens/revoke", url.Values{"id": {"2"}}); w.Code != 404 {
		t.Errorf("revoke again = %d, want 404", w.Code)
	}
	got := strings.Join(h.auditActions(t), ",")
	if !strings.Contains(got, "config.restore,token.create,token.revoke") {
		t.Errorf("audit actions %s", got)
	}
}

func TestPasswordChange(t *testing.T) {
	h, b := loggedIn(t)
	other := h.browser(t)
	other.login(adminUser, adminPass)
	const newPass = "a much better passphrase 2026"
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"current": {"wrong"}, "password": {newPass}, "password2": {newPass}}, "Wrong current password."},
		{url.Values{"current": {adminPass}, "password": {"short"}, "password2": {"short"}}, "Too short"},
		{url.Values{"current": {adminPass}, "password": {newPass}, "password2": {"other"}}, "The two passwords differ."},
	} {
		if w := b.post("/account/password", tc.form); w.Code != 400 || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("password change = %d, want 400 with %q", w.Code, tc.want)
		}
	}
	if w := b.post("/account/password", url.Values{"current": {adminPass}, "password": {newPass}, "password2": {newPass}}); w.Code != http.StatusSeeOther {
		t.Fatalf("password change = %d %s", w.Code, w.Body)
	}
	if e := h.auditLast(t); e.Action != "password.change" {
		t.Errorf("audit %+v", e)
	}
	// The other session ended; this one continues with a new cookie.
	if w := other.do("GET", "/", nil, nil); w.Code != http.StatusSeeOther {
		t.Errorf("other session after password change = %d, want 303", w.Code)
	}
	if w := b.do("GET", "/", nil, nil); w.Code != 200 {
		t.Errorf("own session after password change = %d, want 200", w.Code)
	}
	if w := h.browser(t).login(adminUser, newPass); w.Code != http.StatusSeeOther {
		t.Errorf("login with the new password = %d", w.Code)
	}
}

func TestPasswordHash(t *testing.T) {
	hash, err := hashPassword(testArgon, "pässwörd 🔑")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q", hash)
	}
	for pw, want := range map[string]bool{"pässwörd 🔑": true, "pässwörd": false, "": false} {
		if ok, err := checkPassword(hash, pw); ok != want || err != nil {
			t.Errorf("checkPassword(%q) = %v, %v, want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$a2V5"} {
		if ok, err := checkPassword(bad, "x"); ok || err == nil {
			t.Errorf("checkPassword(%q) = %v, %v, want an error", bad, ok, err)
		}
	}
}
