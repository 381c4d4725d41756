package config

import (
	"fmt"
	"net/netip"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "30s", "5m", "2160h".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (e.g. 30s, 5m, 720h): %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return d.UnmarshalText([]byte(n.Value))
}

// Prefix is an IPv4 or IPv6 prefix as the configuration writes it: an
// address with a prefix length, e.g. 10.10.0.0/24, or a single address,
// e.g. 10.10.0.25, taken as /32 or /128. It keeps the spelling (host bits,
// the ::ffff: form, a bare address), so that a saved file and the config
// API show what the admin wrote; Net gives the network it stands for. The
// zero Prefix is unset.
type Prefix struct {
	p      netip.Prefix // as written
	single bool         // written without a prefix length
}

// ParsePrefix parses a prefix or a single address. Zones are refused: a
// zone names a link, not a network.
func ParsePrefix(s string) (Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return Prefix{p: p}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return Prefix{p: netip.PrefixFrom(a, a.BitLen()), single: true}, nil
	}
	return Prefix{}, fmt.Errorf("invalid CIDR %q (e.g. 10.10.0.25/32 or 2001:db8::25/128)", s)
}

// MustParsePrefix is ParsePrefix for constants; it panics on an error.
func MustParsePrefix(s string) Prefix {
	p, err := ParsePrefix(s)
	if err != nil {
		panic(err)
	}
	return p
}

// PrefixFrom returns p as a Prefix written with its length.
func PrefixFrom(p netip.Prefix) Prefix { return Prefix{p: p} }

// Net returns the network: masked, and an IPv4-mapped prefix (::ffff:0:0/96
// and longer) as the IPv4 prefix it holds, so that it matches the
// addresses the kernel and the proxy see. The zero Prefix gives the zero
// netip.Prefix.
func (p Prefix) Net() netip.Prefix {
	q := p.p
	if q.Addr().Is4In6() && q.Bits() >= 96 {
		q = netip.PrefixFrom(q.Addr().Unmap(), q.Bits()-96)
	}
	return q.Masked()
}

// IsValid reports whether p is set.
func (p Prefix) IsValid() bool { return p.p.IsValid() }

// IsSingle reports whether p was written as a single address, without a
// prefix length.
func (p Prefix) IsSingle() bool { return p.single }

// Equal reports whether p and q are written the same (for go-cmp).
func (p Prefix) Equal(q Prefix) bool { return p == q }

// String returns the prefix as written (in canonical address form), or ""
// for the zero Prefix.
func (p Prefix) String() string {
	switch {
	case !p.p.IsValid():
		return ""
	case p.single:
		return p.p.Addr().String()
	}
	return p.p.String()
}

// MarshalText implements encoding.TextMarshaler (YAML and JSON).
func (p Prefix) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; empty text is the
// zero Prefix.
func (p *Prefix) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*p = Prefix{}
		return nil
	}
	q, err := ParsePrefix(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
