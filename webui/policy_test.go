package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/relaygate/relaygate/config"
)

func TestGetConfig(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "GET", "/api/v1/config", bearer, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/config = %d %s, want 200", w.Code, w.Body)
	}
	if diff := cmpDiff(h.config.cur, decode[*config.Config](t, w)); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestPutConfig(t *testing.T) {
	orig := mustParse(t, testConfigYAML)
	asJSON, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body string
		want       *config.Config
	}{
		{"yaml", testConfigYAML, orig},
		{"json from GET", string(asJSON), orig},
		{"monitor", strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1),
			mustParse(t, strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.config.cur = config.Default()
			w := h.do(t, "PUT", "/api/v1/config", bearer, tc.body)
			if w.Code != http.StatusOK {
				t.Fatalf("PUT /api/v1/config = %d %s, want 200", w.Code, w.Body)
			}
			wantCalls := []applyCall{{Config: tc.want, Actor: tokenActor(actorName), Remote: remoteIP}}
			if diff := cmpDiff(wantCalls, h.config.calls()); diff != "" {
				t.Errorf("Apply calls (-want +got):\n%s", diff)
			}
			if diff := cmpDiff(tc.want, decode[*config.Config](t, w)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			// GET answers the new configuration.
			w = h.do(t, "GET", "/api/v1/config", bearer, "")
			if diff := cmpDiff(tc.want, decode[*config.Config](t, w)); diff != "" {
				t.Errorf("GET after PUT (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPutConfigRemoteUnmapped(t *testing.T) {
	h := newHarness(t)
	req := httptest.NewRequest("PUT", "/api/v1/config", strings.NewReader(testConfigYAML))
	req.RemoteAddr = "[::ffff:198.51.100.9]:50123"
	req.Header.Set("X-Forwarded-For", "203.0.113.5") // not trusted
	req.Header.Set("Authorization", bearer)
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("PUT /api/v1/config = %d %s, want 200", w.Code, w.Body)
	}
	if calls := h.config.calls(); len(calls) != 1 || calls[0].Remote != "198.51.100.9" {
		t.Errorf("Apply calls %+v, want one with remote 198.51.100.9", calls)
	}
}

func TestPutConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		status int
		want   string // substring of the error
	}{
		{"unknown key", testConfigYAML + "colour: blue\n", 400, "colour: unknown key"},
		{"unknown nested key", strings.Replace(testConfigYAML, "  bridge: br0\n", "  bridge: br0\n  bridg: br1\n", 1), 400, "interfaces.bridg: unknown key"},
		{"bad CIDR", strings.Replace(testConfigYAML, "10.10.0.25/32", "10.10.0.300/32", 1), 400, `relays[0].address: invalid CIDR "10.10.0.300/32"`},
		{"bad mode", strings.Replace(testConfigYAML, "mode: enforce", "mode: block", 1), 400, "mode: unknown mode"},
		{"broken yaml", "mode: enforce\n  interfaces: [\n", 400, "line"},
		{"broken json", `{"mode": "enforce",`, 400, "line"},
		{"empty", "", 400, "config is empty"},
		{"not a mapping", "- a\n- b\n", 400, "config must be a mapping"},
		{"too large", testConfigYAML + "#" + strings.Repeat("x", MaxConfigBytes) + "\n", 413, "config larger than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(t, "PUT", "/api/v1/config", bearer, tc.body)
			if w.Code != tc.status {
				t.Fatalf("PUT /api/v1/config = %d %s, want %d", w.Code, w.Body, tc.status)
			}
			if got := decodeError(t, w); !strings.Contains(got, tc.want) || strings.Contains(got, "\n") {
				t.Errorf("error = %q, want one line containing %q", got, tc.want)
			}
			if n := len(h.config.calls()); n != 0 {
				t.Errorf("Apply called %d times, want 0", n)
			}
		})
	}
}

// TestPutConfigTooLargeChunked sends a body without Content-Length, so
// that only the reader limit can stop it.
func TestPutConfigTooLargeChunked(t *testing.T) {
	h := newHarness(t)
	body := strings.Repeat("#"+strings.Repeat("x", 1023)+"\n", MaxConfigBytes/1024+1)
	req := httptest.NewRequest("PUT", "/api/v1/config", struct{ *strings.Reader }{strings.NewReader(body)})
	req.ContentLength = -1
	req.Header.Set("Authorization", bearer)
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT /api/v1/config = %d %s, want 413", w.Code, w.Body)
	}
	if n := len(h.config.calls()); n != 0 {
		t.Errorf("Apply called %d times, want 0", n)
	}
}

func TestPutConfigApplyFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"server failure", fmt.Errorf("save /etc/relaygate.yaml: %w", errors.New("read-only file system")), 500,
			"apply config: save /etc/relaygate.yaml: read-only file system (the previous configuration stays in force)"},
		{"rejected key", fmt.Errorf("apply: %w", &config.FieldError{Key: "interfaces.inside", Msg: `no such link "eth9"`}), 400,
			`apply: interfaces.inside: no such link "eth9"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			old := h.config.cur
			h.config.applyErr = tc.err
			w := h.do(t, "PUT", "/api/v1/config", bearer, strings.Replace(testConfigYAML, "mode: enforce", "mode: monitor", 1))
			if w.Code != tc.status {
				t.Fatalf("PUT /api/v1/config = %d %s, want %d", w.Code, w.Body, tc.status)
			}
			if got := decodeError(t, w); got != tc.want {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
			if n := len(h.config.calls()); n != 1 {
				t.Errorf("Apply called %d times, want 1", n)
			}
			w = h.do(t, "GET", "/api/v1/config", bearer, "")
			if diff := cmpDiff(old, decode[*config.Config](t, w)); diff != "" {
				t.Errorf("config after failed PUT (-want +got):\n%s", diff)
			}
		})
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
	h.config.cur.Relays = append(h.config.cur.Relays, config.Relay{Name: "web", Address: config.MustParsePrefix("10.30.0.0/24"), TLS: "passthrough"})
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
	if e := h.auditLast(t); e.Action != "config.restore" || e.Actor != tokenActor(actorName) || e.Remote != remoteIP {
		t.Errorf("audit %+v", e)
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
	if diff := cmp.Diff(orig, h.config.Current(), cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
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
			return len(c.Relays) == 2 && c.Relays[1].Address.String() == "2001:db8:10::26" && c.Relays[1].TLS == "passthrough"
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
