package inspect

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/net/bpf"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// In enforce mode the kernel diverts a relay's SMTP to the proxy, which
// sees each session whole; capturing and reassembling it again cost the
// box 3 to 10 % of its CPU. While the kernel diverts, the capture leaves
// those flows out (SetDiverting): the kernel filter drops their segments
// except the client's SYN, which still counts the connection (a flow of
// the host in the inventory, inspect_flows, flows_total), and the proxy's
// events fill in the rest of what the capture reported (Proxied).

// synRetransmitWindow is how long a relay's SYN is remembered, so that its
// retransmissions (Linux resends after 1 and 3 s) count one connection.
const synRetransmitWindow = 10 * time.Second

// FilterSource is a live source whose kernel filter can be replaced while
// it captures (*LiveSource). Run keeps the filter of such sources in step
// with the configuration and SetDiverting.
type FilterSource interface {
	SetFilter(raw []bpf.RawInstruction) error
}

// relayDiverted reports whether the segment a->b (key.cli is its source)
// belongs to a relay's diverted flow, as the kernel filter decides (see
// Filter): from an SMTP port to a relay, or from a relay to an SMTP port.
// A relay's SYN is counted as a new connection. The caller holds mu.
func (in *Inspector) relayDiverted(cfg *snapshot, key flowKey, syn bool, t time.Time) bool {
	src, dst := key.cli, key.srv
	if cfg.ports[src.Port()] {
		_, ok := cfg.policy.Relay(dst.Addr())
		return ok
	}
	if !cfg.ports[dst.Port()] {
		return false
	}
	if _, ok := cfg.policy.Relay(src.Addr()); !ok {
		return false
	}
	if !syn {
		return true
	}
	if first, ok := in.relaySyns[key]; ok && t.Sub(first) < synRetransmitWindow {
		return true // a retransmission
	}
	if len(in.relaySyns) >= in.opts.MaxFlows {
		clear(in.relaySyns)
	}
	in.relaySyns[key] = t
	in.st.flowsTotal.Add(1)
	if in.opts.Series != nil {
		in.opts.Series.AddSeries(store.SeriesInspectFlows, src.Addr().String(), t, 1)
	}
	in.inv.seen(src.Addr(), t)
	return true
}

// Proxied notes an event the proxy recorded. While the relays' diverted
// flows are left out of the capture, a relay's session reaches the
// inventory, the inspect_messages series and the messages and encrypted
// flows counters from here, as the capture of its flow reported it
// before: last seen, messages (those the remote accepted: the proxy
// records no event for a message the remote refused), recipient domains,
// the remote MX, and STARTTLS passthrough as an encrypted flow. The
// connection itself was counted from its SYN. Other events are ignored.
func (in *Inspector) Proxied(e event.Event) {
	cfg := in.cfg.Load()
	if !cfg.skipRelays || e.Relay == "" {
		return
	}
	switch e.Kind {
	case event.Relayed, event.Deferred, event.UpstreamError:
	default:
		return
	}
	client := e.Client.Unmap().WithZone("")
	encrypted := e.Kind == event.Relayed && (e.TLS == config.TLSPassthrough || e.Encrypted)
	in.inv.session(client, e.Time, sessionSeen{
		messages: e.Messages, encrypted: encrypted, rcpt: e.Rcpt, server: e.Server,
	})
	if encrypted {
		in.st.encrypted.Add(1)
	}
	if e.Messages > 0 {
		in.st.messages.Add(uint64(e.Messages))
		if in.opts.Series != nil {
			in.opts.Series.AddSeries(store.SeriesInspectMessages, client.String(), e.Time, int64(e.Messages))
		}
	}
}

// FilterRelays returns the relay prefixes the kernel filter leaves out of
// relays: those not inside another one, broadest first, at most
// MaxFilterRelays. The others are left out in user space.
func FilterRelays(relays []netip.Prefix) []netip.Prefix {
	ps := make([]netip.Prefix, 0, len(relays))
	for _, p := range relays {
		ps = append(ps, p.Masked())
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), a.Addr().Compare(b.Addr()))
	})
	var out []netip.Prefix
	for _, p := range ps {
		if !slices.ContainsFunc(out, func(o netip.Prefix) bool { return o.Overlaps(p) }) {
			out = append(out, p)
		}
	}
	return out[:min(len(out), MaxFilterRelays)]
}

// setProgram builds the kernel filter for s and gives it to the live
// sources when it changed. The caller holds capMu.
func (in *Inspector) setProgram(s *snapshot) {
	spec := FilterSpec{Ports: s.sortedPorts(), KernelOnly: true}
	if s.skipRelays {
		for _, r := range s.policy.Relays() {
			spec.Relays = append(spec.Relays, r.Prefix)
		}
		spec.Relays = FilterRelays(spec.Relays)
	}
	raw, err := Filter(spec)
	if err != nil && len(spec.Relays) > 0 {
		// The relays are still left out in user space.
		in.log.Error("capture filter without the relays", "err", err)
		spec.Relays = nil
		raw, err = Filter(spec)
	}
	if err != nil {
		in.log.Error("capture filter", "err", err)
		return
	}
	if slices.Equal(raw, in.program) {
		return
	}
	in.program = raw
	for _, src := range in.filtered {
		in.setFilter(src)
	}
}

func (in *Inspector) setFilter(src FilterSource) {
	if in.program == nil {
		return
	}
	if err := src.SetFilter(in.program); err != nil {
		in.log.Error("replace capture filter", "err", err)
	}
}

// follow makes the filters of the sources that take one follow the
// configuration until the returned function is called.
func (in *Inspector) follow(sources []PacketSource) (stop func()) {
	in.capMu.Lock()
	defer in.capMu.Unlock()
	var mine []FilterSource
	for _, s := range sources {
		if fs, ok := s.(FilterSource); ok {
			mine = append(mine, fs)
			in.filtered = append(in.filtered, fs)
			in.setFilter(fs)
		}
	}
	return func() {
		in.capMu.Lock()
		defer in.capMu.Unlock()
		in.filtered = slices.DeleteFunc(in.filtered, func(fs FilterSource) bool { return slices.Contains(mine, fs) })
	}
}
