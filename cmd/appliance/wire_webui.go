package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/relaygate/relaygate/inspect"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

// webDeps gathers what the web UI and API read and change.
func (d *daemon) webDeps(metrics http.Handler) webui.Deps {
	ws := webStore{d.store}
	return webui.Deps{
		Logger:     d.log,
		Events:     storeEvents{d.store},
		Tokens:     d.store,
		Config:     d,
		Status:     d,
		Metrics:    metrics,
		Admins:     ws,
		Audit:      ws,
		TokenAdmin: ws,
		Series:     ws,
		Inventory:  ws,

		ReputationHistory: d.store,
	}
}

// webStore adapts the store to the web UI's interfaces (administrators,
// sessions, settings, audit log, tokens, series). Methods with the same
// signature come from the embedded *store.Store.
type webStore struct{ *store.Store }

var (
	_ webui.Admins       = webStore{}
	_ webui.AuditLog     = webStore{}
	_ webui.TokenManager = webStore{}
	_ webui.SeriesSource = webStore{}
	_ webui.Inventory    = webStore{}

	_ webui.ReputationHistory = (*store.Store)(nil)
)

// mapErr turns the store's sentinels into the web UI's.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return errors.Join(err, webui.ErrNotFound)
	case errors.Is(err, store.ErrExists):
		return errors.Join(err, webui.ErrExists)
	}
	return err
}

func (w webStore) CreateFirstUser(ctx context.Context, username, hash string) error {
	return mapErr(w.Store.CreateFirstUser(ctx, username, hash))
}

func (w webStore) PasswordHash(ctx context.Context, username string) (string, bool, error) {
	u, err := w.Store.User(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return u.PasswordHash, true, nil
}

func (w webStore) SetPasswordHash(ctx context.Context, username, hash string) error {
	return mapErr(w.Store.SetPasswordHash(ctx, username, hash))
}

func (w webStore) CreateSession(ctx context.Context, s webui.Session) error {
	return w.Store.CreateSession(ctx, store.Session{IDHash: s.IDHash, Username: s.Username, CSRF: s.CSRF,
		Created: s.Created, LastSeen: s.LastSeen, Remote: s.Remote})
}

func (w webStore) Session(ctx context.Context, idHash []byte) (webui.Session, bool, error) {
	s, err := w.Store.Session(ctx, idHash)
	if errors.Is(err, store.ErrNotFound) {
		return webui.Session{}, false, nil
	}
	if err != nil {
		return webui.Session{}, false, err
	}
	return webui.Session{IDHash: s.IDHash, Username: s.Username, CSRF: s.CSRF, Created: s.Created,
		LastSeen: s.LastSeen, Remote: s.Remote}, true, nil
}

func (w webStore) Audit(ctx context.Context, a webui.AuditEntry) error {
	return w.Store.Audit(ctx, store.AuditEntry{Time: a.Time, Actor: a.Actor, Action: a.Action, Detail: a.Detail, Remote: a.Remote})
}

func (w webStore) AuditLog(ctx context.Context, limit int) ([]webui.AuditEntry, error) {
	es, err := w.Store.AuditLog(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]webui.AuditEntry, len(es))
	for i, e := range es {
		out[i] = webui.AuditEntry{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Detail: e.Detail, Remote: e.Remote}
	}
	return out, nil
}

func (w webStore) ListTokens(ctx context.Context) ([]webui.TokenInfo, error) {
	ts, err := w.Store.Tokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]webui.TokenInfo, len(ts))
	for i, t := range ts {
		out[i] = webui.TokenInfo{ID: t.ID, Name: t.Name, Created: t.Created, LastUsed: t.LastUsed}
	}
	return out, nil
}

func (w webStore) RevokeToken(ctx context.Context, id int64) error {
	return mapErr(w.Store.RevokeToken(ctx, id))
}

func webPoints(ps []store.Point) []webui.Point {
	out := make([]webui.Point, len(ps))
	for i, p := range ps {
		out[i] = webui.Point{Metric: p.Metric, Key: p.Key, Minute: p.Minute, Value: p.Value}
	}
	return out
}

func (w webStore) Series(ctx context.Context, metric, key string, since, until time.Time) ([]webui.Point, error) {
	ps, err := w.Store.Series(ctx, store.SeriesQuery{Metric: metric, Key: key, Since: since, Until: until})
	if err != nil {
		return nil, err
	}
	return webPoints(ps), nil
}

func (w webStore) SeriesNewest(ctx context.Context, metric, key string, since, until time.Time, limit int) ([]webui.Point, bool, error) {
	ps, truncated, err := w.Store.SeriesNewest(ctx, store.SeriesQuery{Metric: metric, Key: key, Since: since, Until: until}, limit)
	if err != nil {
		return nil, false, err
	}
	return webPoints(ps), truncated, nil
}

func (w webStore) SeriesTotals(ctx context.Context, metric string, since, until time.Time) ([]webui.Point, error) {
	ps, err := w.Store.SeriesTotals(ctx, metric, since, until)
	if err != nil {
		return nil, err
	}
	return webPoints(ps), nil
}

func (w webStore) TopKeys(ctx context.Context, metric string, since time.Time, n int) ([]webui.KeyTotal, error) {
	ks, err := w.Store.TopKeys(ctx, metric, since, n)
	if err != nil {
		return nil, err
	}
	out := make([]webui.KeyTotal, len(ks))
	for i, k := range ks {
		out[i] = webui.KeyTotal{Key: k.Key, Value: k.Value}
	}
	return out, nil
}

func seenHost(h store.HostSeen) webui.SeenHost {
	return webui.SeenHost{Addr: h.Addr, FirstSeen: h.FirstSeen, LastSeen: h.LastSeen, Flows: h.Flows, Messages: h.Messages,
		EncryptedFlows: h.EncryptedFlows, RcptDomains: h.RcptDomains, RemoteMXs: h.RemoteMXs, AuthMechs: h.AuthMechs, RDNS: h.RDNS}
}

func (w webStore) HostsSeen(ctx context.Context, limit int) ([]webui.SeenHost, error) {
	hs, err := w.Store.HostsSeen(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]webui.SeenHost, len(hs))
	for i, h := range hs {
		out[i] = seenHost(h)
	}
	return out, nil
}

func (w webStore) HostSeen(ctx context.Context, addr netip.Addr) (webui.SeenHost, bool, error) {
	h, err := w.Store.HostSeenByAddr(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return webui.SeenHost{}, false, nil
	}
	if err != nil {
		return webui.SeenHost{}, false, err
	}
	return seenHost(h), true, nil
}

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

func inspectSeenHost(h inspect.Host) webui.SeenHost {
	s := seenHost(h.HostSeen)
	s.Label = h.Label
	return s
}

func (v inspectInventory) HostsSeen(ctx context.Context, limit int) ([]webui.SeenHost, error) {
	hs, err := v.in.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(hs) > limit {
		hs = hs[:limit]
	}
	out := make([]webui.SeenHost, len(hs))
	for i, h := range hs {
		out[i] = inspectSeenHost(h)
	}
	return out, nil
}

func (v inspectInventory) HostSeen(ctx context.Context, addr netip.Addr) (webui.SeenHost, bool, error) {
	h, err := v.in.Host(ctx, addr)
	if errors.Is(err, inspect.ErrUnknownHost) {
		return webui.SeenHost{}, false, nil
	}
	if err != nil {
		return webui.SeenHost{}, false, err
	}
	return inspectSeenHost(h), true, nil
}

func (e inspectEvidence) WritePcap(ctx context.Context, w io.Writer, addr netip.Addr) error {
	rc, err := e.in.HostPcap(addr)
	if errors.Is(err, inspect.ErrNoEvidence) {
		return errors.Join(err, webui.ErrNotFound)
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
