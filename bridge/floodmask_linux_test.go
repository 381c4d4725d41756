package bridge

import (
	"net/netip"
	"testing"

	"github.com/relaygate/relaygate/internal/sourcekey"
)

// The kernel's flood limit keys an IPv6 source as sourcekey does (/64):
// masking an address with the rule's mask gives the key's address.
func TestFloodMask6IsSourceKey(t *testing.T) {
	m := floodMask6()
	if len(m) != 16 {
		t.Fatalf("floodMask6() has %d bytes, want 16", len(m))
	}
	for _, s := range []string{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8::1", "fe80::ffff:ffff:ffff:ffff"} {
		a := netip.MustParseAddr(s).As16()
		for i := range a {
			a[i] &= m[i]
		}
		want := sourcekey.Key(netip.MustParseAddr(s))
		if got := netip.AddrFrom16(a); got != want.Addr() || want.Bits() != 64 {
			t.Errorf("%s masked by the flood rule = %s, want the source key %s", s, got, want)
		}
	}
}
