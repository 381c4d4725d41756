package daemon

import (
	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/policy"
	"github.com/relaygate/relaygate/smtpproxy"
)

// newProxy builds the transparent SMTP proxy and registers how a new
// configuration reaches it.
func newProxy(d *daemon, cfg *config.Config) (*smtpproxy.Proxy, error) {
	p, err := smtpproxy.New(smtpproxy.Options{
		Logger:      d.log,
		Recorder:    d.recorder(d.showProxied),
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
