package webui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
)

func TestStatus(t *testing.T) {
	d, h := testDeps(t)
	started := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	d.Now = func() time.Time { return started.Add(90*time.Minute + 500*time.Millisecond) }
	h.status.st = Status{
		Mode:    config.Enforce,
		Version: "v0.1.0",
		Started: started.In(time.FixedZone("CET", 3600)),
		Serving: true,
		Ports: []PortStatus{
			{Name: "eth1", Role: RoleInside, OperState: "up", MTU: 1500, RxBytes: 10, TxBytes: 20, RxPackets: 1, TxPackets: 2},
			{Name: "br0", Role: RoleBridge, OperState: "up", MTU: 1500},
		},
		Counters: map[string]uint64{"relaygate_diverted": 7},
	}
	h.router = NewRouter(d)
	w := h.do(t, "GET", "/api/v1/status", bearer, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/status = %d %s, want 200", w.Code, w.Body)
	}
	want := h.status.st
	want.Started = started
	want.Uptime = "1h30m0s"
	want.UptimeSeconds = 5400.5
	if diff := cmpDiff(want, decode[Status](t, w)); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	// The JSON keys are a contract.
	var raw map[string]any
	json.Unmarshal(w.Body.Bytes(), &raw)
	for _, k := range []string{"mode", "version", "uptime", "uptime_seconds", "started", "serving", "ports", "counters"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status has no key %q: %s", k, w.Body)
		}
	}
	port := raw["ports"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "role", "oper_state", "mtu", "rx_bytes", "tx_bytes", "rx_packets", "tx_packets"} {
		if _, ok := port[k]; !ok {
			t.Errorf("port has no key %q: %v", k, port)
		}
	}
}

func TestStatusEmpty(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "GET", "/api/v1/status", bearer, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/status = %d, want 200", w.Code)
	}
	// Lists and maps are never null.
	for _, s := range []string{`"ports":[]`, `"counters":{}`} {
		if !strings.Contains(w.Body.String(), s) {
			t.Errorf("status %s does not contain %s", w.Body, s)
		}
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
	w = b.post("/tokens", url.Values{"name": {"ci"}, "password": {adminPass}})
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
