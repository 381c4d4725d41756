package reputation

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckSPF(t *testing.T) {
	d := startDNS(t)
	d.setTXT("corp.example", "v=spf1 ip4:198.51.100.25 ip6:2001:db8::/48 -all")
	d.setTXT("soft.example", "v=spf1 ip4:192.0.2.1 ~all")
	d.setTXT("broken.example", "v=spf1 ip4:198.51.100.25 frobnicate:x -all")
	d.setTXT("neutral.example", "v=spf1 ?all")
	d.setTXT("inc.example", "v=spf1 include:corp.example -all")
	d.set("nospf.example", "192.0.2.7")
	res := NewNetResolver([]string{d.addr}, time.Second)

	for _, tc := range []struct {
		domain, addr, want string
		ok                 bool
		warn               string
	}{
		{"corp.example", "198.51.100.25", "pass", true, ""},
		{"corp.example", "2001:db8::25", "pass", true, ""},
		{"inc.example", "198.51.100.25", "pass", true, ""},
		{"corp.example", "198.51.100.99", "fail", false, "does not authorise 198.51.100.99"},
		{"soft.example", "198.51.100.25", "softfail", false, "soft-fails"},
		{"broken.example", "198.51.100.26", "permerror", false, "broken"},
		{"neutral.example", "198.51.100.25", "neutral", false, "says nothing"},
		{"nospf.example", "198.51.100.25", "none", false, "no SPF record"},
	} {
		t.Run(tc.domain+"/"+tc.addr, func(t *testing.T) {
			r := CheckSPF(context.Background(), res, "relay", tc.domain, netip.MustParseAddr(tc.addr), time.Now())
			if r.Result != tc.want || r.OK != tc.ok || !strings.Contains(r.Warning, tc.warn) {
				t.Errorf("CheckSPF = %+v; want result %s ok %v warning containing %q", r, tc.want, tc.ok, tc.warn)
			}
		})
	}
}
