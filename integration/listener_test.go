package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// Box addresses the lab gives the appliance (scripts/lab-config.sh): on the
// bridge, toward the LAN and the router.
const (
	box4 = "10.0.255.3"
	box6 = "2001:db8:ff::3"
)

// TestProxyListenerOnlyDiverted: the proxy's listener (port 10025,
// IP_TRANSPARENT, every interface) answers nobody who connects to it
// directly. From the PC (the bridge's addresses, v4 and v6) and from the
// admin host (the management address), a connection to port 10025 gets no
// SMTP greeting: the ruleset drops it (proxy_port_dropped). With that rule
// taken out by hand, the proxy itself closes such a connection unanswered
// and counts it (relaygate_proxy_undiverted_refused_total). Diverted SMTP
// still works: a relay's message is relayed and the PC gets the refusal
// dialogue.
func TestProxyListenerOnlyDiverted(t *testing.T) {
	a := startAppliance(t, "enforce", "")
	// counted: the connection reaches the proxy once the kernel's drop is
	// out. The admin's never does: the listener's answers carry the
	// reply mark and are routed toward the LAN, not to the management port.
	targets := []struct {
		host, addr string
		counted    bool
	}{
		{"pc", "TCP4:" + box4 + ":10025", true},
		{"pc", "TCP6:[" + box6 + "]:10025", true},
		{"admin", "TCP4:" + lab.Mgmt4 + ":10025", false},
	}
	banner := func(host, addr string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		out, _ := theLab.Run(ctx, host, "timeout", "5", "socat", "-T", "3", "STDIO", addr+",connect-timeout=3")
		return out
	}

	before := nftCounters(t)["proxy_port_dropped"]
	for _, tg := range targets {
		if out := banner(tg.host, tg.addr); strings.Contains(out, "220") {
			t.Errorf("%s -> %s: the proxy's listener answered: %q", tg.host, tg.addr, out)
		}
	}
	if after := nftCounters(t)["proxy_port_dropped"]; after <= before {
		t.Errorf("proxy_port_dropped = %d -> %d, want it to grow", before, after)
	}

	// Without the kernel's drop, the proxy's own check.
	if out, err := theLab.Run(context.Background(), "box", "nft", "flush", "chain", "inet", "relaygate", "input"); err != nil {
		t.Fatalf("nft flush chain inet relaygate input: %v\n%s", err, out)
	}
	const metric = "relaygate_proxy_undiverted_refused_total"
	for _, tg := range targets {
		m0 := scrape(t, a)[metric]
		if out := banner(tg.host, tg.addr); strings.Contains(out, "220") {
			t.Errorf("without the input rule, %s -> %s: the proxy answered: %q", tg.host, tg.addr, out)
		}
		if !tg.counted {
			continue
		}
		until(t, 5*time.Second, fmt.Sprintf("%s counts %s -> %s", metric, tg.host, tg.addr), func() (bool, string) {
			m1 := scrape(t, a)[metric]
			return m1 > m0, fmt.Sprintf("%v -> %v", m0, m1)
		})
	}

	// Diverted SMTP is the proxy's business, as before.
	from := uniqueSender(t, "relay")
	sendOK(t, "relay", lab.MX4, from)
	pcFrom := uniqueSender(t, "pc")
	swaksRefused(t, "pc", lab.MX4, pcFrom, "someone@remote.example")
	waitEvent(t, a, event.Blocked, lab.PC4, pcFrom)
}
