package webui

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/neighbor"
)

// TestNeighbors: the API lists what the ports heard; the System page shows
// the inside switch and adds it to locate.switches through the validated
// configuration change, after which it is no longer offered.
func TestNeighbors(t *testing.T) {
	d, h := testDeps(t)
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tab := neighbor.NewTable(func() time.Time { return now })
	tab.Put("eth1", "inside", neighbor.Neighbor{Protocol: neighbor.LLDP, ChassisID: "00:00:0c:11:22:33",
		PortID: "Gi1/0/48", PortDescription: "uplink relaygate", SystemName: "core-1",
		ManagementAddresses: []string{"10.0.0.2", "2001:db8::2"}, VLAN: 20, Capabilities: []string{"bridge"}, TTL: 120})
	d.Neighbors = tab
	b := h.adminBrowser(t, d)

	w := h.do(t, "GET", "/api/v1/neighbors", "Bearer "+goodToken, "")
	got := decode[[]neighbor.Neighbor](t, w)
	if w.Code != http.StatusOK || len(got) != 1 || got[0].SystemName != "core-1" || got[0].Side != "inside" ||
		!got[0].SeenAt.Equal(now) || got[0].VLAN != 20 {
		t.Fatalf("GET /api/v1/neighbors = %d %s, want core-1 on the inside port", w.Code, w.Body)
	}

	page := b.do("GET", "/system", nil, nil).Body.String()
	for _, want := range []string{"core-1", "Gi1/0/48", "10.0.0.2, 2001:db8::2", `action="/system/neighbors/switch"`,
		`name="address" value="10.0.0.2"`, "Use as the first switch to query"} {
		if !strings.Contains(page, want) {
			t.Errorf("System page lacks %q", want)
		}
	}

	form := url.Values{"name": {"core-1"}, "address": {"10.0.0.2"}}
	if w := b.post("/system/neighbors/switch", form); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "neighbor-error") {
		t.Errorf("add switch without community = %d, want 400 with the error", w.Code)
	}
	if n := len(h.config.calls()); n != 0 {
		t.Fatalf("Apply called %d times for a refused form", n)
	}
	form.Set("community", "s3cret")
	if w := b.post("/system/neighbors/switch", form); w.Code != http.StatusSeeOther {
		t.Fatalf("add switch = %d %s, want 303", w.Code, w.Body)
	}
	calls := h.config.calls()
	if len(calls) != 1 || calls[0].Actor != adminUser {
		t.Fatalf("Apply calls = %+v, want one by %s", calls, adminUser)
	}
	sws := h.config.Current().Locate.Switches
	want := config.Switch{Name: "core-1", Address: "10.0.0.2", Version: "2c", Community: "s3cret"}
	if len(sws) != 1 || cmpDiff(want, sws[0]) != "" {
		t.Errorf("locate.switches = %+v, want [%+v]", sws, want)
	}
	page = b.do("GET", "/system?switch=added", nil, nil).Body.String()
	if strings.Contains(page, `action="/system/neighbors/switch"`) || !strings.Contains(page, "Switch added") {
		t.Errorf("System page after adding: still offers the configured switch, or no notice")
	}
	if w := b.post("/system/neighbors/switch", form); w.Code != http.StatusBadRequest {
		t.Errorf("adding the same address twice = %d, want 400", w.Code)
	}
}

// TestNeighborsNone: without a listener the API answers an empty list.
func TestNeighborsNone(t *testing.T) {
	h := newHarness(t)
	w := h.do(t, "GET", "/api/v1/neighbors", "Bearer "+goodToken, "")
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("GET /api/v1/neighbors without neighbours = %d %s, want 200 []", w.Code, w.Body)
	}
}
