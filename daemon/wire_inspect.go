package daemon

import (
	"context"
	"net"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/inspect"
)

// startInspect builds passive inspection, registers its metrics and its
// live configuration hook, shows it the proxy's events, and captures on the inside and outside ports
// until ctx ends (in g). A capture that cannot be opened is
// logged, not fatal: inspection is never allowed to stop the box.
func (d *daemon) startInspect(ctx context.Context, reg *prometheus.Registry, g *errgroup.Group) (*inspect.Inspector, error) {
	cfg := d.cfg
	in, err := inspect.New(cfg, inspect.Options{
		Logger:      d.log,
		Recorder:    d.recorder(),
		Series:      d.store,
		Inventory:   d.store,
		Resolver:    &net.Resolver{},
		EvidenceDir: filepath.Join(cfg.DataDir, "evidence"),
	})
	if err != nil {
		return nil, err
	}
	reg.MustRegister(in.Collectors()...)
	d.OnApply(func(c *config.Config) { in.SetConfig(c) })
	if !cfg.Inspect.On() {
		d.log.Info("passive inspection disabled (inspect.enabled: false)")
		return in, nil
	}
	// In enforce mode the relays' diverted sessions reach the inventory
	// from the proxy's events, not from the capture (see SetDiverting).
	d.proxied.Store(in)
	var srcs []inspect.PacketSource
	var live []*inspect.LiveSource
	for _, iface := range []string{cfg.Interfaces.Inside, cfg.Interfaces.Outside} {
		s, err := inspect.OpenLive(iface, cfg.Inspect.RingMB, in.Ports())
		if err != nil {
			d.log.Error("passive inspection: capture not started", "component", "inspect", "iface", iface, "err", err)
			continue
		}
		srcs, live = append(srcs, s), append(live, s)
	}
	if len(srcs) == 0 {
		return in, nil
	}
	// Monitor mode reports watching only while every bridge port is read.
	d.captureAll = len(live) == 2
	g.Go(func() error {
		defer func() {
			for _, s := range live {
				s.Close()
			}
		}()
		// Logged, not returned: inspection stopping never stops the box.
		if err := in.Run(ctx, srcs...); err != nil {
			d.log.Error("passive inspection stopped", "component", "inspect", "err", err)
		}
		return nil
	})
	return in, nil
}
