package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/relaygate/relaygate/config"
)

// bigPolicy builds n relays: /32s, /24s, /16s, IPv6 /128s and /48s.
func bigPolicy(n int, rng *rand.Rand) (*Policy, []config.Relay) {
	c := config.Default()
	for i := range n {
		var addr string
		switch i % 5 {
		case 0, 1:
			addr = fmt.Sprintf("10.%d.%d.%d/32", rng.IntN(256), rng.IntN(256), rng.IntN(256))
		case 2:
			addr = fmt.Sprintf("10.%d.%d.0/24", rng.IntN(256), rng.IntN(256))
		case 3:
			addr = fmt.Sprintf("172.%d.0.0/16", 16+rng.IntN(16))
		case 4:
			if rng.IntN(2) == 0 {
				addr = fmt.Sprintf("2001:db8:%x::%x/128", rng.IntN(65536), rng.IntN(65536))
			} else {
				addr = fmt.Sprintf("2001:db8:%x::/48", rng.IntN(65536))
			}
		}
		c.Relays = append(c.Relays, config.Relay{Name: fmt.Sprintf("r%d", i), Address: config.MustParsePrefix(addr)})
	}
	return New(c), c.Relays
}

func randomAddr(rng *rand.Rand) netip.Addr {
	switch rng.IntN(3) {
	case 0:
		return netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	case 1:
		return netip.AddrFrom4([4]byte{172, byte(16 + rng.IntN(16)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	default:
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		b[4], b[5] = byte(rng.IntN(256)), byte(rng.IntN(256))
		b[15] = byte(rng.IntN(256))
		return netip.AddrFrom16(b)
	}
}

// TestLookupMatchesLinearScan checks the indexed lookup against the
// obvious definition: the longest matching prefix, first in config order.
func TestLookupMatchesLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p, relays := bigPolicy(3000, rng)
	linear := func(a netip.Addr) (string, bool) {
		best, bits := "", -1
		for _, r := range relays {
			pfx := r.Address.Net()
			if pfx.Contains(a) && pfx.Bits() > bits {
				best, bits = r.Name, pfx.Bits()
			}
		}
		return best, bits >= 0
	}
	hits := 0
	for range 20000 {
		a := randomAddr(rng)
		want, wantOK := linear(a)
		got, ok := p.Relay(a)
		if ok != wantOK || got.Name != want {
			t.Fatalf("Relay(%s) = %q, %v; want %q, %v", a, got.Name, ok, want, wantOK)
		}
		if ok {
			hits++
		}
	}
	if hits == 0 {
		t.Fatal("no lookup hit a relay: the test data is wrong")
	}
}

func BenchmarkRelayLookup(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		rng := rand.New(rand.NewPCG(3, 4))
		p, _ := bigPolicy(n, rng)
		addrs := make([]netip.Addr, 1024)
		for i := range addrs {
			addrs[i] = randomAddr(rng)
		}
		b.Run(fmt.Sprintf("relays=%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				p.Relay(addrs[i%len(addrs)])
			}
		})
	}
}
