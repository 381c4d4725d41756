package daemon

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/relaygate/relaygate/neighbor"
)

// startNeighbors listens for the LLDP and CDP frames of the devices
// cabled to the inside and outside ports until ctx ends (in g). A port
// that cannot be listened on is logged, not fatal: it only costs the
// System page its neighbour.
func (d *daemon) startNeighbors(ctx context.Context, reg *prometheus.Registry, g *errgroup.Group) *neighbor.Table {
	tab := neighbor.NewTable(nil)
	reg.MustRegister(tab.Collectors()...)
	log := d.log.With("component", "neighbor")
	for _, p := range []struct{ iface, side string }{
		{d.cfg.Interfaces.Inside, "inside"},
		{d.cfg.Interfaces.Outside, "outside"},
	} {
		g.Go(func() error {
			if err := neighbor.Listen(ctx, tab, p.iface, p.side, log); err != nil {
				log.Error("LLDP/CDP neighbour not heard", "iface", p.iface, "err", err)
			}
			return nil
		})
	}
	return tab
}
