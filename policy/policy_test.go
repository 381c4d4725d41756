package policy

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/relaygate/relaygate/config"
)

var netipOpts = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// relays is deliberately not sorted by prefix length, and mixes families,
// bare addresses and an IPv4-mapped entry.
var relays = []config.Relay{
	{Name: "wide", Address: config.MustParsePrefix("10.0.0.0/8")},
	{Name: "host", Address: config.MustParsePrefix("10.10.0.25")},
	{Name: "v6net", Address: config.MustParsePrefix("2001:db8::/32")},
	{Name: "narrow", Address: config.MustParsePrefix("10.10.0.0/16")},
	{Name: "v6host", Address: config.MustParsePrefix("2001:db8::25/128")},
	{Name: "v6sub", Address: config.MustParsePrefix("2001:db8:1::/48")},
	{Name: "mapped", Address: config.MustParsePrefix("::ffff:192.0.2.1")},
	{Name: "unmasked", Address: config.MustParsePrefix("198.51.100.77/24")},
}

func reversed(rs []config.Relay) []config.Relay {
	out := slices.Clone(rs)
	slices.Reverse(out)
	return out
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestRelay(t *testing.T) {
	tests := []struct {
		addr   string // "" for the zero Addr
		want   string // relay name, "" for none
		prefix string
	}{
		{addr: "10.10.0.25", want: "host", prefix: "10.10.0.25/32"},
		{addr: "10.10.0.26", want: "narrow", prefix: "10.10.0.0/16"},
		{addr: "10.10.255.255", want: "narrow", prefix: "10.10.0.0/16"},
		{addr: "10.1.2.3", want: "wide", prefix: "10.0.0.0/8"},
		{addr: "10.255.255.255", want: "wide", prefix: "10.0.0.0/8"},
		{addr: "11.0.0.0", want: ""},
		{addr: "192.168.1.1", want: ""},
		{addr: "::ffff:10.10.0.25", want: "host", prefix: "10.10.0.25/32"},
		{addr: "::ffff:10.10.0.26", want: "narrow", prefix: "10.10.0.0/16"},
		{addr: "::ffff:10.1.2.3", want: "wide", prefix: "10.0.0.0/8"},
		{addr: "::ffff:192.168.1.1", want: ""},
		{addr: "192.0.2.1", want: "mapped", prefix: "192.0.2.1/32"},
		{addr: "::ffff:192.0.2.1", want: "mapped", prefix: "192.0.2.1/32"},
		{addr: "192.0.2.2", want: ""},
		{addr: "198.51.100.1", want: "unmasked", prefix: "198.51.100.0/24"},
		{addr: "2001:db8::25", want: "v6host", prefix: "2001:db8::25/128"},
		{addr: "2001:db8::25%eth1", want: "v6host", prefix: "2001:db8::25/128"},
		{addr: "2001:db8::26", want: "v6net", prefix: "2001:db8::/32"},
		{addr: "2001:db8:1::25", want: "v6sub", prefix: "2001:db8:1::/48"},
		{addr: "2001:db8:ffff::1", want: "v6net", prefix: "2001:db8::/32"},
		{addr: "2001:db9::25", want: ""},
		{addr: "fe80::25%eth1", want: ""},
		// 10.10.0.25 embedded in IPv6 other than ::ffff:0:0/96 is not IPv4.
		{addr: "::10.10.0.25", want: ""},
		{addr: "64:ff9b::10.10.0.25", want: ""},
		{addr: "", want: ""},
	}
	orders := map[string][]config.Relay{
		"config order":  relays,
		"reverse order": reversed(relays),
	}
	for oname, rs := range orders {
		p := New(&config.Config{Relays: rs})
		for _, tt := range tests {
			t.Run(oname+"/"+tt.addr, func(t *testing.T) {
				var addr netip.Addr
				if tt.addr != "" {
					addr = netip.MustParseAddr(tt.addr)
				}
				got, ok := p.Relay(addr)
				var want Relay
				if tt.want != "" {
					want = Relay{Name: tt.want, Prefix: mustPrefix(tt.prefix)}
				}
				if ok != (tt.want != "") {
					t.Errorf("Relay(%v) = %+v, %v; want ok %v", addr, got, ok, tt.want != "")
				}
				if diff := cmp.Diff(want, got, netipOpts); diff != "" {
					t.Errorf("Relay(%v) mismatch (-want +got):\n%s", addr, diff)
				}
			})
		}
	}
}

func TestRelayFamilies(t *testing.T) {
	tests := []struct {
		name   string
		relays []config.Relay
		addr   string
		want   bool
	}{
		{"v4 default route holds v4", []config.Relay{{Name: "all4", Address: config.MustParsePrefix("0.0.0.0/0")}}, "203.0.113.9", true},
		{"v4 default route holds mapped v4", []config.Relay{{Name: "all4", Address: config.MustParsePrefix("0.0.0.0/0")}}, "::ffff:203.0.113.9", true},
		{"v4 default route does not hold v6", []config.Relay{{Name: "all4", Address: config.MustParsePrefix("0.0.0.0/0")}}, "2001:db8::1", false},
		{"v6 default route holds v6", []config.Relay{{Name: "all6", Address: config.MustParsePrefix("::/0")}}, "2001:db8::1", true},
		{"v6 default route does not hold v4", []config.Relay{{Name: "all6", Address: config.MustParsePrefix("::/0")}}, "203.0.113.9", false},
		{"v6 default route does not hold mapped v4", []config.Relay{{Name: "all6", Address: config.MustParsePrefix("::/0")}}, "::ffff:203.0.113.9", false},
		{"mapped prefix holds plain v4", []config.Relay{{Name: "m", Address: config.MustParsePrefix("::ffff:203.0.113.0/120")}}, "203.0.113.9", true},
		{"empty list", nil, "10.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(&config.Config{Relays: tt.relays})
			addr := netip.MustParseAddr(tt.addr)
			if _, got := p.Relay(addr); got != tt.want {
				t.Errorf("Relay(%v) ok = %v, want %v", addr, got, tt.want)
			}
		})
	}
}

func TestRelayTies(t *testing.T) {
	// Two relays with the same prefix: the first in the configuration wins,
	// whatever the lengths of the prefixes around them.
	p := New(&config.Config{Relays: []config.Relay{
		{Name: "a-wide", Address: config.MustParsePrefix("10.0.0.0/8")},
		{Name: "first", Address: config.MustParsePrefix("10.10.0.0/16")},
		{Name: "b-wide", Address: config.MustParsePrefix("10.0.0.0/8")},
		{Name: "second", Address: config.MustParsePrefix("10.10.0.0/16")},
		{Name: "host", Address: config.MustParsePrefix("10.20.0.1/32")},
	}})
	tests := []struct {
		addr string
		want string
	}{
		{"10.10.1.1", "first"},
		{"10.30.0.1", "a-wide"},
		{"10.20.0.1", "host"},
	}
	for _, tt := range tests {
		got, ok := p.Relay(netip.MustParseAddr(tt.addr))
		if !ok || got.Name != tt.want {
			t.Errorf("Relay(%s) = %+v, %v; want %q, true", tt.addr, got, ok, tt.want)
		}
	}
}

func TestRelays(t *testing.T) {
	p := New(&config.Config{Relays: relays})
	want := []Relay{
		{Name: "v6host", Prefix: mustPrefix("2001:db8::25/128")},
		{Name: "v6sub", Prefix: mustPrefix("2001:db8:1::/48")},
		// Equal lengths keep configuration order, across families too.
		{Name: "host", Prefix: mustPrefix("10.10.0.25/32")},
		{Name: "v6net", Prefix: mustPrefix("2001:db8::/32")},
		{Name: "mapped", Prefix: mustPrefix("192.0.2.1/32")},
		{Name: "unmasked", Prefix: mustPrefix("198.51.100.0/24")},
		{Name: "narrow", Prefix: mustPrefix("10.10.0.0/16")},
		{Name: "wide", Prefix: mustPrefix("10.0.0.0/8")},
	}
	got := p.Relays()
	if diff := cmp.Diff(want, got, netipOpts); diff != "" {
		t.Errorf("Relays() mismatch (-want +got):\n%s", diff)
	}

	// Relays returns a copy: changing it does not change the policy.
	got[0] = Relay{Name: "evil", Prefix: mustPrefix("0.0.0.0/0")}
	if r, ok := p.Relay(netip.MustParseAddr("203.0.113.1")); ok {
		t.Errorf("after changing Relays() result: Relay(203.0.113.1) = %+v, true; want false", r)
	}
	if diff := cmp.Diff(want, p.Relays(), netipOpts); diff != "" {
		t.Errorf("Relays() after changing a copy mismatch (-want +got):\n%s", diff)
	}
}

func TestNewSkipsInvalid(t *testing.T) {
	// New expects a validated configuration; a relay without an address
	// must not become a relay (and certainly not 0.0.0.0/0 or ::/0).
	p := New(&config.Config{Relays: []config.Relay{
		{Name: "unset"},
		{Name: "good", Address: config.MustParsePrefix("10.10.0.25/32")},
	}})
	want := []Relay{{Name: "good", Prefix: mustPrefix("10.10.0.25/32")}}
	if diff := cmp.Diff(want, p.Relays(), netipOpts); diff != "" {
		t.Errorf("Relays() mismatch (-want +got):\n%s", diff)
	}
}

func TestNewFromParsedExample(t *testing.T) {
	c, err := config.Load("../config/testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := New(c)
	tests := []struct {
		addr string
		want bool
	}{
		{"10.10.0.25", true},
		{"::ffff:10.10.0.25", true},
		{"10.10.0.26", false},
		{"2001:db8:ff::3", false},
	}
	for _, tt := range tests {
		if _, got := p.Relay(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Relay(%s) ok = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if got, want := p.Reject(), c.RejectText; got != want {
		t.Errorf("Reject() = %q, want %q", got, want)
	}
}

func TestReject(t *testing.T) {
	tests := []struct {
		name string
		p    *Policy
		want string
	}{
		{"configured", New(&config.Config{RejectText: "Use relay.example.com."}), "Use relay.example.com."},
		{"empty text", New(&config.Config{}), config.DefaultRejectText},
		{"nil policy", nil, config.DefaultRejectText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Reject(); got != tt.want {
				t.Errorf("Reject() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNilPolicy(t *testing.T) {
	var p *Policy
	if r, ok := p.Relay(netip.MustParseAddr("10.10.0.25")); ok {
		t.Errorf("nil Relay(10.10.0.25) = %+v, true; want false", r)
	}
	if got := p.Relays(); got != nil {
		t.Errorf("nil Relays() = %v, want nil", got)
	}
}
