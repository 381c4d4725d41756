package smtpproxy

import (
	"net/netip"
	"testing"
)

// The per-source cap counts an IPv6 /64 as one source (sourcekey), as the
// kernel's flood limit does: rotating addresses inside it does not get
// past the cap. IPv4 sources stay per address.
func TestPerSourceCapKeysIPv6Per64(t *testing.T) {
	p := &Proxy{perSource: map[netip.Prefix]int{}}
	l := Limits{MaxConns: 100, MaxConnsPerSource: 2}
	a := netip.MustParseAddr
	for i, tc := range []struct {
		src    string
		wantOK bool
	}{
		{"2001:db8:1:2::1", true},
		{"2001:db8:1:2::2", true},
		{"2001:db8:1:2:ffff::3", false}, // same /64: over the cap
		{"2001:db8:1:3::1", true},       // the next /64 is another source
		{"192.0.2.1", true},
		{"192.0.2.1", true},
		{"192.0.2.1", false},
		{"192.0.2.2", true}, // IPv4: per address
	} {
		if ok, reason := p.admit(a(tc.src), false, l); ok != tc.wantOK {
			t.Errorf("attempt %d from %s: admitted %v (%s), want %v", i, tc.src, ok, reason, tc.wantOK)
		}
	}
	// Releasing with any address of the /64 frees a place of that source.
	p.release(a("2001:db8:1:2::2"), false)
	if ok, _ := p.admit(a("2001:db8:1:2::9"), false, l); !ok {
		t.Error("after a release the /64 is still over its cap")
	}
	for _, s := range []string{"2001:db8:1:2::1", "2001:db8:1:2::9", "2001:db8:1:3::1", "192.0.2.1", "192.0.2.1", "192.0.2.2"} {
		p.release(a(s), false)
	}
	if len(p.perSource) != 0 || p.total != 0 {
		t.Errorf("after releasing every connection: perSource %v, total %d, want empty", p.perSource, p.total)
	}
}
