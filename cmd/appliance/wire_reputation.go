package main

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/reputation"
)

// startReputation runs the reputation watch (blocklists, SPF, open-relay
// self-test) and the alerter.
func (d *daemon) startReputation(ctx context.Context, cfg *config.Config, reg *prometheus.Registry, wg *sync.WaitGroup) *reputation.Watcher {
	alerter := reputation.NewAlerter(d.log, cfg.Alerts)
	w := reputation.NewWatcher(reputation.Options{
		Logger:   d.log,
		Recorder: d.store,
		Events:   d.store,
		History:  d.store,
		Alerter:  alerter,
		// The self-test connects to the relays on the LAN side: mark the
		// socket so that it is routed through the inside gateway.
		RelayDialer: &net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, bridge.ReplyMark)
			}); err != nil {
				return err
			}
			return serr
		}},
	}, cfg)
	reg.MustRegister(w.Collectors()...)
	d.onApply = append(d.onApply, w.SetConfig)
	wg.Go(func() { w.Run(ctx) })
	d.reputation, d.alerter = w, alerter
	return w
}
