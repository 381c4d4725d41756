package daemon

import (
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// watchedRecorder records events in the store and shows each one, recorded
// or held back and only counted (event.Tallier), to its watchers, which
// must return at once: they run on the data path.
type watchedRecorder struct {
	st       *store.Store
	watchers []func(event.Event)
}

var (
	_ event.Recorder = watchedRecorder{}
	_ event.Tallier  = watchedRecorder{}
)

func (r watchedRecorder) Record(e event.Event) {
	r.st.Record(e)
	r.show(e)
}

func (r watchedRecorder) Tally(e event.Event) {
	r.st.Tally(e)
	r.show(e)
}

func (r watchedRecorder) show(e event.Event) {
	for _, w := range r.watchers {
		w(e)
	}
}

// recorder is where the data path records its events: the store, with the
// location service watching when it runs, and extra watchers.
func (d *daemon) recorder(extra ...func(event.Event)) event.Recorder {
	var ws []func(event.Event)
	if d.locate != nil {
		ws = append(ws, d.locate.Observe)
	}
	ws = append(ws, extra...)
	if len(ws) == 0 {
		return d.store
	}
	return watchedRecorder{st: d.store, watchers: ws}
}

// showProxied shows one of the proxy's events to passive inspection
// (inspect.(*Inspector).Proxied) once it runs: while it leaves the relays'
// diverted flows out of its capture, their sessions reach the host
// inventory from these events. The proxy is built before the inspector.
func (d *daemon) showProxied(e event.Event) {
	if in := d.proxied.Load(); in != nil {
		in.Proxied(e)
	}
}
