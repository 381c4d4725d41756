package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil/lab"
	"github.com/relaygate/relaygate/store"
)

// inspectStatus is the part of GET /api/v1/status's inspect the tests read.
type inspectStatus struct {
	Inspect struct {
		Running       bool   `json:"running"`
		RelaysLeftOut bool   `json:"relays_left_out"`
		Packets       uint64 `json:"packets"`
	} `json:"inspect"`
	Serving bool `json:"serving"`
}

// settledPackets waits until relaygate_inspect_packets_total stops
// growing (a capture block reaches user space within 50 ms) and returns it.
func settledPackets(t *testing.T, a *lab.Appliance) float64 {
	t.Helper()
	last := -1.0
	for range 50 {
		time.Sleep(300 * time.Millisecond)
		n := scrape(t, a)["relaygate_inspect_packets_total"]
		if n == last {
			return n
		}
		last = n
	}
	t.Fatalf("relaygate_inspect_packets_total still grows: %v", last)
	return 0
}

// TestInspectEnforceLeavesRelaysOut: in enforce mode, while the proxy
// serves, a relay's relayed message does not cross into passive
// inspection (its SYN only: the connection is still counted), a PC's
// blocked attempt and a relay's 802.1Q-tagged SMTP (bridged, not
// diverted) still do, and the relay's row in the hosts API shows its
// flows and messages as before, from the SYNs and the proxy's events.
func TestInspectEnforceLeavesRelaysOut(t *testing.T) {
	a := startAppliance(t, "enforce", "inspect:\n  reverse_dns: false\n")
	until(t, 10*time.Second, "the capture leaves the relays out", func() (bool, string) {
		var st inspectStatus
		if err := a.API(context.Background(), "GET", "/api/v1/status", nil, &st); err != nil {
			return false, err.Error()
		}
		return st.Serving && st.Inspect.Running && st.Inspect.RelaysLeftOut, fmt.Sprintf("status %+v", st)
	})

	p0 := settledPackets(t, a)
	flows0 := scrape(t, a)["relaygate_inspect_flows_total"]
	relayFrom := uniqueSender(t, "relay")
	sendOK(t, "relay", lab.MX4, relayFrom)
	if _, err := theMX.WaitMessage(relayFrom, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	p1 := settledPackets(t, a)
	t.Logf("relayed message: %v frames captured", p1-p0)
	// The SYN, and one retransmission at most.
	if d := p1 - p0; d < 1 || d > 2 {
		t.Errorf("a relayed message crossed into inspection as %v frames, want its SYN only", d)
	}
	if d := scrape(t, a)["relaygate_inspect_flows_total"] - flows0; d != 1 {
		t.Errorf("relaygate_inspect_flows_total grew by %v for the relay's session, want 1", d)
	}

	swaksRefused(t, "pc", lab.MX4, "bot@pc.example", "victim@remote.example")
	p2 := settledPackets(t, a)
	t.Logf("blocked attempt: %v frames captured", p2-p1)
	if d := p2 - p1; d < 6 {
		t.Errorf("the PC's blocked attempt reached inspection as %v frames, want its whole session (6 or more)", d)
	}

	// The relay's 802.1Q-tagged SMTP is bridged (tagged_relay), not
	// diverted: captured in full, the kernel having moved the tag into
	// metadata before the filter runs.
	for _, fr := range taggedSMTP(t, lab.Relay4, lab.MX4, "tagged@relay.example") {
		inject(t, "switch", "sw-up", fr)
	}
	if d := settledPackets(t, a) - p2; d != 3 {
		t.Errorf("the relay's tagged SMTP reached inspection as %v frames, want all 3", d)
	}

	// The hosts API shows the relay as before: its two connections (the
	// diverted one from its SYN, the tagged one captured), the message the
	// proxy relayed, the remote MX.
	var relay, pc apiHost
	until(t, 20*time.Second, "the hosts API shows the relay and the PC", func() (bool, string) {
		hosts := getHosts(t, a)
		relay, pc = hosts[lab.Relay4], hosts[lab.PC4]
		return relay.Flows == 2 && relay.Messages == 1 && pc.Flows == 1 && pc.Blocked == 1,
			fmt.Sprintf("relay %+v, PC %+v", relay, pc)
	})
	if !relay.IsRelay || relay.Relay != "mail-relay" || relay.Relayed != 1 {
		t.Errorf("relay row %+v: want the relay mail-relay with 1 relayed", relay)
	}
	var card struct {
		Seen *store.HostSeen `json:"seen"`
	}
	if err := a.API(context.Background(), "GET", "/api/v1/hosts/"+lab.Relay4, nil, &card); err != nil {
		t.Fatal(err)
	}
	if card.Seen == nil || !slices.Contains(card.Seen.RemoteMXs, lab.MX4) || !slices.Contains(card.Seen.RcptDomains, "remote.example") {
		t.Errorf("host card of the relay: seen %+v, want remote MX %s and domain remote.example", card.Seen, lab.MX4)
	}
}
