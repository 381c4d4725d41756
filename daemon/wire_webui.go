package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"

	"github.com/relaygate/relaygate/inspect"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

// webDeps gathers what the web UI and API read and change: the store
// serves every store-backed interface itself.
func (d *daemon) webDeps(metrics http.Handler) webui.Deps {
	return webui.Deps{
		Logger:     d.log,
		Events:     d.store,
		Tokens:     d.store,
		Config:     d,
		Status:     d,
		Metrics:    metrics,
		Admins:     d.store,
		Audit:      d.store,
		TokenAdmin: d.store,
		Series:     d.store,
		Inventory:  d.store,
		Locations:  d.store,

		ReputationHistory: d.store,
	}
}

var (
	_ webui.Events            = (*store.Store)(nil)
	_ webui.Tokens            = (*store.Store)(nil)
	_ webui.Admins            = (*store.Store)(nil)
	_ webui.AuditLog          = (*store.Store)(nil)
	_ webui.TokenManager      = (*store.Store)(nil)
	_ webui.SeriesSource      = (*store.Store)(nil)
	_ webui.Inventory         = (*store.Store)(nil)
	_ webui.ReputationHistory = (*store.Store)(nil)
	_ webui.Locations         = (*store.Store)(nil)
	_ webui.Locator           = (*locService)(nil)

	_ webui.Inventory = inspectInventory{}
	_ webui.Evidence  = inspectEvidence{}
)

// webEvidence serves passive inspection's pcap evidence to the web UI:
// set Deps.Evidence = webEvidence(in) once the inspector runs.
func webEvidence(in *inspect.Inspector) webui.Evidence { return inspectEvidence{in} }

type inspectEvidence struct{ in *inspect.Inspector }

func (e inspectEvidence) HasEvidence(ctx context.Context, addr netip.Addr) bool {
	return e.in.HasEvidence(addr)
}

// inspectInventory serves the inventory through the inspector, which adds
// what it has not written yet and the subnet labels.
type inspectInventory struct{ in *inspect.Inspector }

func (v inspectInventory) HostsSeen(ctx context.Context, limit int) ([]store.HostSeen, error) {
	hs, err := v.in.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(hs) > limit {
		hs = hs[:limit]
	}
	out := make([]store.HostSeen, len(hs))
	for i, h := range hs {
		out[i] = h.HostSeen
	}
	return out, nil
}

func (v inspectInventory) HostSeenByAddr(ctx context.Context, addr netip.Addr) (store.HostSeen, error) {
	h, err := v.in.Host(ctx, addr)
	if errors.Is(err, inspect.ErrUnknownHost) {
		return store.HostSeen{}, errors.Join(err, store.ErrNotFound)
	}
	if err != nil {
		return store.HostSeen{}, err
	}
	return h.HostSeen, nil
}

func (e inspectEvidence) WritePcap(ctx context.Context, w io.Writer, addr netip.Addr) error {
	rc, err := e.in.HostPcap(addr)
	if errors.Is(err, inspect.ErrNoEvidence) {
		return errors.Join(err, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("copy evidence of %s: %w", addr, err)
	}
	return nil
}
