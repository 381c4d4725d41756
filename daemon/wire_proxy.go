package daemon

import (
	"sync/atomic"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/inspect"
	"github.com/relaygate/relaygate/policy"
	"github.com/relaygate/relaygate/smtpproxy"
)

// newProxy builds the transparent SMTP proxy and registers how a new
// configuration reaches it.
func newProxy(d *daemon, cfg *config.Config) (*smtpproxy.Proxy, error) {
	d.feed = &relayFeed{rec: d.recorder()}
	p, err := smtpproxy.New(smtpproxy.Options{
		Logger:      d.log,
		Recorder:    d.feed,
		Series:      d.store,
		Dialer:      &smtpproxy.TransparentDialer{Mark: bridge.OnwardMark, Timeout: cfg.Proxy.ConnectTimeout.D()},
		Policy:      policy.New(cfg),
		Limits:      smtpproxy.LimitsFromConfig(cfg.Proxy),
		MailLimits:  smtpproxy.MailLimitsFromConfig(cfg.Limits),
		TLSPolicies: smtpproxy.TLSPoliciesFromConfig(cfg.Relays),
		DataDir:     cfg.DataDir,
		// The listener is IP_TRANSPARENT on every interface: only what
		// the kernel diverted is the proxy's.
		DivertedOnly: true,
	})
	if err != nil {
		return nil, err
	}
	d.OnApply(func(c *config.Config) {
		p.SetPolicy(policy.New(c))
		p.SetLimits(smtpproxy.LimitsFromConfig(c.Proxy))
		p.SetMailLimits(smtpproxy.MailLimitsFromConfig(c.Limits))
		p.SetTLSPolicies(smtpproxy.TLSPoliciesFromConfig(c.Relays))
	})
	return p, nil
}

// relayFeed records the proxy's events and shows them to passive
// inspection (inspect.(*Inspector).Proxied): while it leaves the relays'
// diverted flows out of its capture, their sessions reach the host
// inventory from these events. The proxy is built before the inspector,
// which attach sets once it exists.
type relayFeed struct {
	rec event.Recorder
	in  atomic.Pointer[inspect.Inspector]
}

var (
	_ event.Recorder = (*relayFeed)(nil)
	_ event.Tallier  = (*relayFeed)(nil)
)

func (f *relayFeed) attach(in *inspect.Inspector) { f.in.Store(in) }

func (f *relayFeed) Record(e event.Event) {
	f.rec.Record(e)
	f.observe(e)
}

// Tally counts an event the proxy held back (a relay's repeated
// deferrals), where the recorder counts them.
func (f *relayFeed) Tally(e event.Event) {
	if t, ok := f.rec.(event.Tallier); ok {
		t.Tally(e)
	}
	f.observe(e)
}

func (f *relayFeed) observe(e event.Event) {
	if in := f.in.Load(); in != nil {
		in.Proxied(e)
	}
}
