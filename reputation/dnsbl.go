// Package reputation watches what the internet thinks of the organisation's
// mail: its public addresses on DNS blocklists, whether SPF authorises its
// relays, and whether any internal relay is an open relay. It raises
// alerts when something changes for the worse.
package reputation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Status of one address on one zone.
type Status string

const (
	// Listed: the zone returned a listing code for the address.
	Listed Status = "listed"
	// Clean: the zone answered NXDOMAIN (not listed).
	Clean Status = "clean"
	// Error: no usable answer (timeout, SERVFAIL, a refusal code such as
	// Spamhaus's 127.255.255.254 "public resolver"). Never a listing.
	Error Status = "error"
	// Skipped: the zone does not list this address family.
	Skipped Status = "skipped"
)

// Zone describes a DNS blocklist: how to read its answers and where to ask
// for removal.
type Zone struct {
	Name string
	// Codes names the listing codes; an answer in 127.0.0.0/8 not named
	// here is still a listing ("listed").
	Codes map[string]string
	// Refusals are answers that mean the query was refused, not a listing.
	Refusals map[string]string
	// IPv6 says whether the zone lists IPv6 addresses.
	IPv6 bool
	// Removal is the page where a listing is explained and removal asked.
	Removal string
}

var spamhausRefusals = map[string]string{
	"127.255.255.252": "refused: typo in the DNSBL name",
	"127.255.255.254": "refused: query through a public or open resolver (use your own resolver)",
	"127.255.255.255": "refused: excessive number of queries",
}

// KnownZones are the zones relaygate knows the return codes of. Other zones
// are read generically: NXDOMAIN is clean, 127.0.0.0/8 is listed.
var KnownZones = map[string]Zone{
	"zen.spamhaus.org": {
		Name: "zen.spamhaus.org", IPv6: true, Removal: "https://check.spamhaus.org/",
		Codes: map[string]string{
			"127.0.0.2": "SBL: Spamhaus SBL data", "127.0.0.3": "SBL CSS: snowshoe spam",
			"127.0.0.4": "XBL: exploited host (CBL)", "127.0.0.5": "XBL", "127.0.0.6": "XBL", "127.0.0.7": "XBL",
			"127.0.0.9": "SBL DROP", "127.0.0.10": "PBL: ISP maintained", "127.0.0.11": "PBL: Spamhaus maintained",
		},
		Refusals: spamhausRefusals,
	},
	"bl.spamcop.net": {Name: "bl.spamcop.net", Removal: "https://www.spamcop.net/bl.shtml",
		Codes: map[string]string{"127.0.0.2": "listed by SpamCop"}},
	"b.barracudacentral.org": {Name: "b.barracudacentral.org", Removal: "https://www.barracudacentral.org/rbl/removal-request",
		Codes: map[string]string{"127.0.0.2": "listed by Barracuda"}},
	"psbl.surriel.com": {Name: "psbl.surriel.com", Removal: "https://psbl.org/remove",
		Codes: map[string]string{"127.0.0.2": "listed by PSBL"}},
	"bl.mailspike.net": {Name: "bl.mailspike.net", IPv6: true, Removal: "https://mailspike.org/anubis/",
		Codes: map[string]string{"127.0.0.2": "listed by Mailspike", "127.0.0.10": "worst reputation",
			"127.0.0.11": "very bad reputation", "127.0.0.12": "bad reputation", "127.0.0.13": "suspicious reputation",
			"127.0.0.14": "neutral reputation"}},
	"dnsbl-1.uceprotect.net": {Name: "dnsbl-1.uceprotect.net", Removal: "https://www.uceprotect.net/en/rblcheck.php",
		Codes: map[string]string{"127.0.0.2": "listed by UCEPROTECT level 1"}},
}

// ZoneInfo returns what is known of a zone, or a generic description.
func ZoneInfo(name string) Zone {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if z, ok := KnownZones[name]; ok {
		return z
	}
	return Zone{Name: name, IPv6: true}
}

// Result is one check of one address on one zone.
type Result struct {
	Address   netip.Addr `json:"address"`
	Zone      string     `json:"zone"`
	Status    Status     `json:"status"`
	Code      string     `json:"code,omitempty"`    // the A record returned, e.g. 127.0.0.4
	Meaning   string     `json:"meaning,omitempty"` // what the code means for this zone
	Reason    string     `json:"reason,omitempty"`  // the zone's TXT record
	Removal   string     `json:"removal,omitempty"`
	Error     string     `json:"error,omitempty"`
	CheckedAt time.Time  `json:"checked_at"`
}

// Resolver answers DNS queries; *DNSClient is the real one.
type Resolver interface {
	Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error)
}

// DNSClient asks a list of resolvers in turn.
type DNSClient struct {
	Servers []string // ip:port
	Timeout time.Duration
}

// NewDNSClient uses servers, or the system's resolvers when empty.
func NewDNSClient(servers []string, timeout time.Duration) (*DNSClient, error) {
	if len(servers) == 0 {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("read /etc/resolv.conf: %w", err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
	}
	if len(servers) == 0 {
		return nil, errors.New("no DNS resolvers configured (reputation.resolvers) and none in /etc/resolv.conf")
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &DNSClient{Servers: servers, Timeout: timeout}, nil
}

// Exchange sends m to each server until one answers.
func (c *DNSClient) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	cl := &dns.Client{Timeout: c.Timeout}
	var errs []error
	for _, s := range c.Servers {
		r, _, err := cl.ExchangeContext(ctx, m, s)
		if err == nil && r.Truncated {
			tcp := &dns.Client{Net: "tcp", Timeout: c.Timeout}
			r, _, err = tcp.ExchangeContext(ctx, m, s)
		}
		if err == nil {
			return r, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

var (
	loopbackNet = netip.MustParsePrefix("127.0.0.0/8")
	refusalNet  = netip.MustParsePrefix("127.255.255.0/24")
)

// ReverseName is the query name of addr in zone: reversed octets for IPv4,
// reversed nibbles for IPv6.
func ReverseName(addr netip.Addr, zone string) string {
	addr = addr.Unmap()
	var parts []string
	b := addr.AsSlice()
	if addr.Is4() {
		for i := len(b) - 1; i >= 0; i-- {
			parts = append(parts, fmt.Sprint(b[i]))
		}
	} else {
		const hex = "0123456789abcdef"
		for i := len(b) - 1; i >= 0; i-- {
			parts = append(parts, string(hex[b[i]&0xf]), string(hex[b[i]>>4]))
		}
	}
	return strings.Join(parts, ".") + "." + dns.Fqdn(zone)
}

// Check queries addr on zone. It never reports a listing it cannot stand
// behind: refusals, answers outside 127.0.0.0/8 and failures are errors.
func Check(ctx context.Context, r Resolver, addr netip.Addr, zoneName string, now time.Time) Result {
	z := ZoneInfo(zoneName)
	res := Result{Address: addr.Unmap(), Zone: z.Name, CheckedAt: now.UTC(), Removal: z.Removal}
	if addr.Unmap().Is6() && !z.IPv6 {
		res.Status = Skipped
		res.Error = "zone does not list IPv6 addresses"
		return res
	}
	name := ReverseName(addr, z.Name)
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.RecursionDesired = true
	ans, err := r.Exchange(ctx, m)
	if err != nil {
		res.Status, res.Error = Error, fmt.Sprintf("query %s: %v", name, err)
		return res
	}
	switch ans.Rcode {
	case dns.RcodeNameError:
		res.Status = Clean
		return res
	case dns.RcodeSuccess:
	default:
		res.Status, res.Error = Error, fmt.Sprintf("query %s: %s", name, dns.RcodeToString[ans.Rcode])
		return res
	}
	var codes []netip.Addr
	for _, rr := range ans.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				codes = append(codes, ip)
			}
		}
	}
	if len(codes) == 0 {
		// NOERROR without an A record: not listed.
		res.Status = Clean
		return res
	}
	for _, c := range codes {
		// 127.255.255.0/24 is where lists put "query refused" answers.
		if why, ok := z.Refusals[c.String()]; ok || refusalNet.Contains(c) {
			if why == "" {
				why = "refused by the list's policy"
			}
			res.Status, res.Code, res.Error = Error, c.String(), why
			return res
		}
		if !loopbackNet.Contains(c) {
			res.Status, res.Code, res.Error = Error, c.String(), "answer outside 127.0.0.0/8: the resolver rewrites NXDOMAIN or the zone is gone"
			return res
		}
	}
	res.Status = Listed
	var codeStrs, meanings []string
	for _, c := range codes {
		codeStrs = append(codeStrs, c.String())
		if m, ok := z.Codes[c.String()]; ok {
			meanings = append(meanings, m)
		}
	}
	res.Code = strings.Join(codeStrs, ",")
	res.Meaning = strings.Join(meanings, "; ")
	if res.Meaning == "" {
		res.Meaning = "listed"
	}
	txt := new(dns.Msg)
	txt.SetQuestion(name, dns.TypeTXT)
	txt.RecursionDesired = true
	if ta, err := r.Exchange(ctx, txt); err == nil && ta.Rcode == dns.RcodeSuccess {
		var reasons []string
		for _, rr := range ta.Answer {
			if t, ok := rr.(*dns.TXT); ok {
				reasons = append(reasons, strings.Join(t.Txt, ""))
			}
		}
		res.Reason = strings.Join(reasons, " ")
	}
	return res
}
