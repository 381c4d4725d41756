package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/reputation"
)

// startReputation runs the reputation watch (blocklists, SPF, open-relay
// self-test) and the alerter.
func (d *daemon) startReputation(ctx context.Context, cfg *config.Config, reg *prometheus.Registry, g *errgroup.Group) *reputation.Watcher {
	alerter := reputation.NewAlerter(d.log, cfg.Alerts)
	relayDialer := bridge.MarkedDialer(bridge.ReplyMark)
	relayDialer.Timeout = 10 * time.Second
	w := reputation.NewWatcher(reputation.Options{
		Logger:   d.log,
		Recorder: d.store,
		Events:   d.store,
		History:  d.store,
		Alerter:  alerter,
		// The self-test connects to the relays on the LAN side: mark the
		// socket so that it is routed through the inside gateway.
		RelayDialer: relayDialer,
	}, cfg)
	reg.MustRegister(w.Collectors()...)
	d.OnApply(w.SetConfig)
	g.Go(func() error { w.Run(ctx); return nil })
	d.reputation, d.alerter = w, alerter
	return w
}
