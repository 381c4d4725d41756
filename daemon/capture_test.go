package daemon

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/inspect"
)

// TestCaptureFollowsDataPath: passive inspection leaves the relays'
// diverted flows out exactly while enforce mode diverts (the proxy serves
// and the heartbeat keeps the diversion alive), through configuration
// changes, a failing heartbeat (fail-open) and the stop.
func TestCaptureFollowsDataPath(t *testing.T) {
	h := newApplyHarness(t)
	d := h.d
	in, err := inspect.New(d.Current(), inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.inspect = in
	d.OnApply(in.SetConfig)
	leftOut := func(what string, want bool) {
		t.Helper()
		if got := in.Stats().RelaysLeftOut; got != want {
			t.Errorf("%s: relays left out = %v, want %v", what, got, want)
		}
	}
	d.setServing(true)
	leftOut("monitor mode, serving", false)
	enforce := h.changed(t, toEnforce)
	if _, err := d.apply(t.Context(), enforce); err != nil {
		t.Fatal(err)
	}
	leftOut("enforce mode, serving", true)
	d.recordHeartbeat(errors.New("nft: no such set"))
	d.syncCapture()
	leftOut("enforce mode, heartbeat failing (fail-open)", false)
	d.recordHeartbeat(nil)
	d.syncCapture()
	leftOut("enforce mode, heartbeat healed", true)
	d.alive.lastOK = time.Now().Add(-2 * d.alive.ttl) // the diversion timed out
	d.syncCapture()
	leftOut("enforce mode, diversion timed out", false)
	d.recordHeartbeat(nil)
	d.syncCapture()
	monitor := h.changed(t, func(c *config.Config) { c.Mode = config.Monitor })
	if _, err := d.apply(t.Context(), monitor); err != nil {
		t.Fatal(err)
	}
	leftOut("back to monitor mode", false)
	if _, err := d.apply(t.Context(), enforce); err != nil {
		t.Fatal(err)
	}
	d.setServing(false)
	leftOut("stopped serving", false)
}

// TestRelayFeed: the proxy's events reach the store and, once attached,
// passive inspection.
func TestRelayFeed(t *testing.T) {
	h := newApplyHarness(t)
	enforce := h.changed(t, toEnforce)
	in, err := inspect.New(enforce, inspect.Options{Inventory: h.st})
	if err != nil {
		t.Fatal(err)
	}
	in.SetDiverting(true)
	feed := h.d.recorder(h.d.showProxied).(watchedRecorder)
	relay := enforce.Relays[0]
	addr := netip.MustParseAddr("10.10.0.25")
	e := event.Event{Time: time.Now(), Kind: event.Relayed, Client: addr, Server: netip.MustParseAddr("203.0.113.25"),
		Relay: relay.Name, Rcpt: []string{"a@remote.example"}, Messages: 1, Code: 250}
	feed.Record(e) // before the inspector runs: the store only
	h.d.proxied.Store(in)
	feed.Record(e)
	feed.Tally(event.Event{Time: time.Now(), Kind: event.Deferred, Client: addr, Relay: relay.Name, Code: 421})
	host, err := in.Host(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if host.Messages != 1 || len(host.RemoteMXs) != 1 || len(host.RcptDomains) != 1 {
		t.Errorf("inventory of the relay = %+v, want 1 message to 203.0.113.25, remote.example", host.HostSeen)
	}
	if err := h.st.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	hosts, err := h.st.Hosts(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || hosts[0].Relayed != 2 || hosts[0].Deferred != 1 {
		t.Errorf("store hosts = %+v, want the relay with 2 relayed, 1 deferred", hosts)
	}
}
