package webui

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/policy"
)

// overlapConfigYAML has two relays that overlap: the wide one first in the
// file, the narrow one inside it second.
const overlapConfigYAML = `mode: enforce
interfaces:
  bridge: br0
  inside: eth1
  outside: eth2
  management: eth0
relays:
  - name: wide
    address: 10.10.0.0/16
  - name: narrow
    address: 10.10.0.25/32
data_dir: /var/lib/relaygate
`

// TestRelayNamesAsPolicy checks that the hosts list, the host card and the
// host API name the relay the data path (package policy) names: the
// longest prefix, not the first in the file.
func TestRelayNamesAsPolicy(t *testing.T) {
	d, h := testDeps(t)
	h.config.cur = mustParse(t, overlapConfigYAML)
	pol := policy.New(h.config.cur)
	now := time.Now().UTC()
	a := netip.MustParseAddr
	h.store.record(t,
		event.Event{Time: now.Add(-2 * time.Minute), Kind: event.Relayed, Client: a("10.10.0.25"), Relay: "narrow", Code: 250},
		event.Event{Time: now.Add(-time.Minute), Kind: event.Relayed, Client: a("10.10.7.7"), Relay: "wide", Code: 250},
	)
	b := h.adminBrowser(t, d)

	hostsPage := b.do("GET", "/hosts", nil, nil).Body.String()
	for _, addr := range []string{"10.10.0.25", "10.10.7.7"} {
		want, ok := pol.Relay(a(addr))
		if !ok {
			t.Fatalf("policy: %s is no relay", addr)
		}
		d := decode[hostDetail](t, h.do(t, "GET", "/api/v1/hosts/"+addr, bearer, ""))
		if !d.IsRelay || d.Relay != want.Name {
			t.Errorf("GET /api/v1/hosts/%s: is_relay %v, relay %q; want %q as policy", addr, d.IsRelay, d.Relay, want.Name)
		}
		card := b.do("GET", "/hosts/"+addr, nil, nil).Body.String()
		if !strings.Contains(card, `<span class="badge ok">`) || !strings.Contains(card, ": "+want.Name+"</span>") {
			t.Errorf("host card of %s lacks the badge naming %q", addr, want.Name)
		}
		row := regexp.MustCompile(`<a href="/hosts/` + regexp.QuoteMeta(addr) + `">[^<]*</a> (<span class="badge ok">[^<]*</span>)?`).FindStringSubmatch(hostsPage)
		if row == nil || row[1] != `<span class="badge ok">`+want.Name+`</span>` {
			t.Errorf("hosts list row of %s = %q, want the badge %q", addr, row, want.Name)
		}
	}
	if r, _ := pol.Relay(a("10.10.0.25")); r.Name != "narrow" {
		t.Fatalf("policy names %q for 10.10.0.25; the test's premise is gone", r.Name)
	}
}
