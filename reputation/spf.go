package reputation

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"blitiri.com.ar/go/spf"
)

// SPFResult says whether a relay's sending domain authorises its public
// address.
type SPFResult struct {
	Relay     string     `json:"relay"`
	Domain    string     `json:"domain"`
	Address   netip.Addr `json:"address"`
	Result    string     `json:"result"` // pass, fail, softfail, neutral, none, temperror, permerror
	OK        bool       `json:"ok"`     // only "pass" is ok
	Warning   string     `json:"warning,omitempty"`
	Error     string     `json:"error,omitempty"`
	CheckedAt time.Time  `json:"checked_at"`
}

// NewNetResolver returns a Go resolver that sends its queries to servers
// (ip:port), or the system resolver when servers is empty.
func NewNetResolver(servers []string, timeout time.Duration) *net.Resolver {
	if len(servers) == 0 {
		return &net.Resolver{PreferGo: true}
	}
	var next atomic.Uint32
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			s := servers[int(next.Add(1)-1)%len(servers)]
			return d.DialContext(ctx, network, s)
		},
	}
}

// CheckSPF evaluates the SPF record of domain for addr (RFC 7208, with
// blitiri.com.ar/go/spf), as a receiving MX would for mail from
// postmaster@domain.
func CheckSPF(ctx context.Context, r spf.DNSResolver, relay, domain string, addr netip.Addr, now time.Time) SPFResult {
	res := SPFResult{Relay: relay, Domain: domain, Address: addr.Unmap(), CheckedAt: now.UTC()}
	out, err := spf.CheckHostWithSender(net.IP(addr.Unmap().AsSlice()), domain, "postmaster@"+domain,
		spf.WithContext(ctx), spf.WithResolver(r))
	res.Result = string(out)
	if err != nil {
		res.Error = err.Error()
	}
	res.OK = out == spf.Pass
	switch out {
	case spf.Pass:
	case spf.Fail:
		res.Warning = fmt.Sprintf("SPF of %s does not authorise %s: receivers that enforce SPF reject this relay's mail; add it to the record (e.g. ip4:%s)", domain, addr, addr)
	case spf.SoftFail:
		res.Warning = fmt.Sprintf("SPF of %s soft-fails %s (~all): mail from this relay is likely to be marked as spam", domain, addr)
	case spf.Neutral:
		res.Warning = fmt.Sprintf("SPF of %s says nothing about %s (?all)", domain, addr)
	case spf.None:
		res.Warning = fmt.Sprintf("%s has no SPF record", domain)
	case spf.PermError:
		res.Warning = fmt.Sprintf("the SPF record of %s is broken (permerror): receivers treat it as a failure", domain)
	case spf.TempError:
		res.Warning = fmt.Sprintf("SPF of %s could not be evaluated now (temperror)", domain)
	}
	return res
}
