package main

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
		Logger:   d.log,
		Recorder: d.store,
		Dialer:   &smtpproxy.TransparentDialer{Mark: bridge.OnwardMark, Timeout: cfg.Proxy.ConnectTimeout.D()},
		Policy:   policy.New(cfg),
		Limits:   smtpproxy.LimitsFromConfig(cfg.Proxy),
	})
	if err != nil {
		return nil, err
	}
	d.onApply = append(d.onApply, func(c *config.Config) {
		p.SetPolicy(policy.New(c))
		p.SetLimits(smtpproxy.LimitsFromConfig(c.Proxy))
	})
	return p, nil
}
