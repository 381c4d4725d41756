package inspect

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/net/bpf"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// relayTraffic is a relay's diverted session over IPv4 (its SYN sent
// twice), one over IPv6, a relay's 802.1Q-tagged session (bridged, not
// diverted), and a PC's attempt.
func relayTraffic(t *testing.T) []frame {
	var frames []frame
	f := newTCPFlow(t, relay+":41000", mx+":25")
	f.add(f.packet(true, "S", nil)) // retransmitted below by the handshake
	f.smtpSession("relay.example", "user@example.com", []string{"r@remote.example"}, 2)
	frames = append(frames, f.frames...)
	f6 := newTCPFlow(t, "[2001:db8:10::25]:41001", "[2001:db8:25::25]:25")
	f6.now = t0.Add(time.Second)
	frames = append(frames, f6.smtpSession("relay.example", "user@example.com", []string{"r@six.example"}, 1).frames...)
	tagged := newTCPFlow(t, relay+":41002", mx+":25")
	tagged.vlan, tagged.now = 100, t0.Add(2*time.Second)
	frames = append(frames, tagged.smtpSession("relay.example", "user@example.com", []string{"r@tagged.example"}, 3).frames...)
	pcf := newTCPFlow(t, pc+":41003", mx+":25")
	pcf.now = t0.Add(3 * time.Second)
	frames = append(frames, pcf.smtpSession("pc", "bot@pc.example", []string{"v@victim.example"}, 1).frames...)
	return frames
}

// proxiedEvents are the proxy's events of the relay's IPv4 session: two
// accepted messages.
func proxiedEvents() []event.Event {
	e := event.Event{Time: t0.Add(10 * time.Second), Kind: event.Relayed, Client: netip.MustParseAddr(relay),
		Server: netip.MustParseAddr(mx), ServerPort: 25, Relay: "mail-relay", MailFrom: "user@example.com",
		Rcpt: []string{"r@remote.example"}, Code: 250, Messages: 1}
	return []event.Event{e, e}
}

func TestRelaysLeftOut(t *testing.T) {
	ctx := context.Background()
	type hostView struct {
		Flows, Messages, Encrypted int64
		RcptDomains, RemoteMXs     []string
	}
	host := func(t *testing.T, r *rig, addr string) hostView {
		t.Helper()
		h, err := r.in.Host(ctx, netip.MustParseAddr(addr))
		if err != nil {
			t.Fatalf("Host(%s): %v", addr, err)
		}
		return hostView{h.Flows, h.Messages, h.EncryptedFlows, h.RcptDomains, h.RemoteMXs}
	}
	tests := []struct {
		name      string
		mode      config.Mode
		diverting bool
		leftOut   bool
	}{
		{"enforce, diverting", config.Enforce, true, true},
		{"enforce, fail-open", config.Enforce, false, false},
		{"monitor", config.Monitor, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.mode, true)
			r.in.SetDiverting(tt.diverting)
			var hooked int
			r.in.frameHook = func([]byte) { hooked++ }
			r.replay(t, relayTraffic(t))
			for _, e := range proxiedEvents() {
				r.in.Proxied(e)
			}
			passthrough := event.Event{Time: t0.Add(20 * time.Second), Kind: event.Relayed, Client: netip.MustParseAddr("2001:db8:10::25"),
				Server: netip.MustParseAddr("2001:db8:25::25"), Relay: "relay6", TLS: config.TLSPassthrough}
			r.in.Proxied(passthrough)
			r.in.Proxied(event.Event{Kind: event.Blocked, Client: netip.MustParseAddr(pc), Server: netip.MustParseAddr(mx), Messages: 1})

			st := r.in.Stats()
			// Every frame reaches the decoder here (no kernel filter); the
			// relays' are dropped before reassembly.
			if st.FlowsTotal != 4 || st.FlowsActive != 0 {
				t.Errorf("flows total %d, active %d; want 4 (the sessions, the relays' too), 0", st.FlowsTotal, st.FlowsActive)
			}
			r4, r6 := host(t, r, relay), host(t, r, "2001:db8:10::25")
			tagged := hostView{Messages: 3, RcptDomains: []string{"tagged.example"}, RemoteMXs: []string{mx}}
			pcHost := host(t, r, pc)
			if tt.leftOut {
				// Flows from the SYNs (the IPv4 one sent twice), the rest
				// from the proxy's events.
				want4 := hostView{Flows: 2, Messages: 2 + tagged.Messages, RcptDomains: []string{"remote.example", "tagged.example"}, RemoteMXs: []string{mx}}
				if diff := cmp.Diff(want4, r4, sortLists); diff != "" {
					t.Errorf("relay (-want +got):\n%s", diff)
				}
				want6 := hostView{Flows: 1, Encrypted: 1, RemoteMXs: []string{"2001:db8:25::25"}}
				if diff := cmp.Diff(want6, r6, sortLists); diff != "" {
					t.Errorf("relay6 (-want +got):\n%s", diff)
				}
				if st.Messages != 2+3+1 || st.EncryptedFlows != 1 {
					t.Errorf("stats messages %d, encrypted %d; want 6 (2 proxied, 3 tagged, 1 PC), 1", st.Messages, st.EncryptedFlows)
				}
			} else {
				// Captured in full; the proxy's events are not counted again.
				want4 := hostView{Flows: 2, Messages: 2 + tagged.Messages, RcptDomains: []string{"remote.example", "tagged.example"}, RemoteMXs: []string{mx}}
				if diff := cmp.Diff(want4, r4, sortLists); diff != "" {
					t.Errorf("relay (-want +got):\n%s", diff)
				}
				want6 := hostView{Flows: 1, Messages: 1, RcptDomains: []string{"six.example"}, RemoteMXs: []string{"2001:db8:25::25"}}
				if diff := cmp.Diff(want6, r6, sortLists); diff != "" {
					t.Errorf("relay6 (-want +got):\n%s", diff)
				}
				if st.Messages != 2+1+3+1 || st.EncryptedFlows != 0 {
					t.Errorf("stats messages %d, encrypted %d; want 7 (all captured), 0", st.Messages, st.EncryptedFlows)
				}
			}
			wantPC := hostView{Flows: 1, Messages: 1, RcptDomains: []string{"victim.example"}, RemoteMXs: []string{mx}}
			if diff := cmp.Diff(wantPC, pcHost, sortLists); diff != "" {
				t.Errorf("PC (-want +got):\n%s", diff)
			}
			if got := r.ser.get(store.SeriesInspectFlows, relay); got != 2 {
				t.Errorf("inspect_flows[%s] = %d, want 2", relay, got)
			}
			if got := r.ser.get(store.SeriesInspectMessages, relay); got != 5 {
				t.Errorf("inspect_messages[%s] = %d, want 5", relay, got)
			}
			if !r.in.HasEvidence(netip.MustParseAddr(pc)) {
				t.Error("no evidence for the PC")
			}
			if tt.mode == config.Monitor {
				var relayed int
				for _, e := range r.rec.all() {
					if e.Kind == event.Relayed {
						relayed++
					}
				}
				if relayed != 3 {
					t.Errorf("monitor mode: %d relayed events, want 3 (one per relay session)", relayed)
				}
			}
		})
	}
}

// sortLists compares string lists as sets.
var sortLists = cmp.Options{cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })}

// filterSource records the filters it is given.
type filterSource struct {
	stubSource
	mu   sync.Mutex
	sets [][]bpf.RawInstruction
}

func (s *filterSource) SetFilter(raw []bpf.RawInstruction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets = append(s.sets, raw)
	return nil
}

func (s *filterSource) last() []bpf.RawInstruction {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sets) == 0 {
		return nil
	}
	return s.sets[len(s.sets)-1]
}

func (s *filterSource) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sets)
}

// TestFilterFollows: the live sources' kernel filter leaves the relays out
// exactly while enforce mode diverts, and follows the relay list.
func TestFilterFollows(t *testing.T) {
	cfg := testConfig(config.Enforce)
	in, err := New(cfg, Options{Recorder: &fakeRecorder{}, Series: &fakeSeries{}})
	if err != nil {
		t.Fatal(err)
	}
	program := func(relays ...string) []bpf.RawInstruction {
		t.Helper()
		spec := FilterSpec{Ports: []uint16{25}, KernelOnly: true}
		for _, r := range relays {
			spec.Relays = append(spec.Relays, netip.MustParsePrefix(r))
		}
		spec.Relays = FilterRelays(spec.Relays)
		raw, err := Filter(spec)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	all := program()
	src := &filterSource{stubSource: stubSource{fail: make(chan struct{})}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, src) }()
	waitFor(t, "Run gives its source the filter", func() bool { return src.count() > 0 })
	check := func(what string, want []bpf.RawInstruction) {
		t.Helper()
		if !slices.Equal(src.last(), want) {
			t.Errorf("%s: the source's filter is not the expected one (%d instructions, want %d)", what, len(src.last()), len(want))
		}
	}
	check("not diverting", all)
	in.SetDiverting(true)
	check("enforce, diverting", program("10.10.0.25/32", "2001:db8:10::25/128"))
	n := src.count()
	in.SetDiverting(true)
	if src.count() != n {
		t.Error("the same state set the filter again")
	}
	c2 := testConfig(config.Enforce)
	c2.Relays = append(c2.Relays, config.Relay{Name: "second", Address: config.MustParsePrefix("10.10.8.0/22")})
	in.SetConfig(c2)
	check("a relay added", program("10.10.0.25/32", "10.10.8.0/22", "2001:db8:10::25/128"))
	in.SetConfig(testConfig(config.Monitor))
	check("monitor mode", all)
	in.SetConfig(c2)
	in.SetDiverting(false)
	check("fail-open", all)
	c3 := testConfig(config.Enforce)
	c3.Ports = []int{25, 587}
	in.SetConfig(c3)
	check("a port added", func() []bpf.RawInstruction {
		raw, err := Filter(FilterSpec{Ports: []uint16{25, 587}, KernelOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n = src.count()
	in.SetDiverting(true)
	if src.count() != n {
		t.Error("a filter was set on a source after Run returned (its caller closes it)")
	}
}
