package sourcekey

import (
	"net/netip"
	"testing"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.10", "192.0.2.10/32"},
		{"::ffff:192.0.2.10", "192.0.2.10/32"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := Key(netip.MustParseAddr(tc.in)); got != netip.MustParsePrefix(tc.want) {
			t.Errorf("Key(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	a, b := netip.MustParseAddr("2001:db8:0:1::7"), netip.MustParseAddr("2001:db8:0:1:ffff::9")
	if Key(a) != Key(b) {
		t.Errorf("%s and %s (same /64) have different keys %s, %s", a, b, Key(a), Key(b))
	}
	if c := netip.MustParseAddr("2001:db8:0:2::7"); Key(a) == Key(c) {
		t.Errorf("%s and %s (different /64) share the key %s", a, c, Key(a))
	}
	if got := Key(netip.Addr{}); got.IsValid() {
		t.Errorf("Key(invalid) = %s, want the zero Prefix", got)
	}
}
