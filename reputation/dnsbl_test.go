package reputation

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestReverseName(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"198.51.100.25", "25.100.51.198.zen.spamhaus.org."},
		{"::ffff:198.51.100.25", "25.100.51.198.zen.spamhaus.org."},
		{"2001:db8::25", "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org."},
	} {
		if got := ReverseName(netip.MustParseAddr(tc.addr), "zen.spamhaus.org"); got != tc.want {
			t.Errorf("ReverseName(%s) = %s; want %s", tc.addr, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	d := startDNS(t)
	zen := "zen.spamhaus.org"
	d.set("25.100.51.198."+zen, "127.0.0.4")
	d.setTXT("25.100.51.198."+zen, "https://check.spamhaus.org/query/ip/198.51.100.25")
	d.set("27.100.51.198."+zen, "127.255.255.254")
	d.set("28.100.51.198."+zen, "127.255.255.255")
	d.fail["29.100.51.198."+zen+"."] = true
	d.mute["30.100.51.198."+zen+"."] = true
	d.set("31.100.51.198."+zen, "203.0.113.1")
	d.set("32.100.51.198.bl.example.org", "127.0.0.9")
	d.set(ReverseName(netip.MustParseAddr("2001:db8::25"), zen), "127.0.0.2")
	client := &DNSClient{Servers: []string{d.addr}, Timeout: 300 * time.Millisecond}

	for _, tc := range []struct {
		addr, zone string
		status     Status
		code       string
		contains   string // in Meaning, Reason or Error
	}{
		{"198.51.100.25", zen, Listed, "127.0.0.4", "XBL"},
		{"198.51.100.26", zen, Clean, "", ""},
		{"198.51.100.27", zen, Error, "127.255.255.254", "public or open resolver"},
		{"198.51.100.28", zen, Error, "127.255.255.255", "excessive"},
		{"198.51.100.29", zen, Error, "", "SERVFAIL"},
		{"198.51.100.30", zen, Error, "", "timeout"},
		{"198.51.100.31", zen, Error, "203.0.113.1", "outside 127.0.0.0/8"},
		{"198.51.100.32", "bl.example.org", Listed, "127.0.0.9", "listed"},
		{"2001:db8::25", zen, Listed, "127.0.0.2", "SBL"},
		{"2001:db8::25", "bl.spamcop.net", Skipped, "", "IPv6"},
	} {
		t.Run(tc.addr+"@"+tc.zone, func(t *testing.T) {
			r := Check(context.Background(), client, netip.MustParseAddr(tc.addr), tc.zone, time.Unix(0, 0))
			if r.Status != tc.status || r.Code != tc.code {
				t.Errorf("Check = %s %q (%+v); want %s %q", r.Status, r.Code, r, tc.status, tc.code)
			}
			all := r.Meaning + " " + r.Reason + " " + r.Error
			if !strings.Contains(all, tc.contains) {
				t.Errorf("Check = %+v; want %q in meaning, reason or error", r, tc.contains)
			}
		})
	}
	r := Check(context.Background(), client, netip.MustParseAddr("198.51.100.25"), zen, time.Unix(0, 0))
	if !strings.Contains(r.Reason, "check.spamhaus.org/query") || r.Removal == "" {
		t.Errorf("listing lacks the TXT reason or removal page: %+v", r)
	}
}
