// Package daemon is relaygate's daemon: it brings the bridge, the proxy,
// passive inspection, the reputation watch and the web UI up on one
// configuration, keeps the kernel's diversion alive while the proxy
// serves, applies configuration changes live (or refuses them and keeps
// the running one), and reports its state to the web UI.
//
// The kernel side is the small Bridge interface, so that apply, rollback
// and reload are tested without root.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/inspect"
	"github.com/relaygate/relaygate/reputation"
	"github.com/relaygate/relaygate/smtpproxy"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

// Bridge is the kernel plumbing as the daemon drives it: *bridge.Bridge.
type Bridge interface {
	// Apply makes the kernel carry c: links, routing, our nftables tables.
	Apply(ctx context.Context, c *config.Config) error
	// SetServing turns the diversion to the proxy on or off.
	SetServing(on bool) error
	// Heartbeat refreshes the liveness that keeps the diversion up.
	Heartbeat() error
	// Counters returns the ruleset's named packet counters.
	Counters() map[string]uint64
	// Ports returns the appliance's links and their statistics.
	Ports() []bridge.PortStatus
	// Stop leaves the kernel in its failure behaviour (enforce) or
	// clean (monitor); the bridge keeps forwarding.
	Stop() error
}

var _ Bridge = (*bridge.Bridge)(nil)

// daemon holds the running parts; it is the web UI's ConfigManager and
// StatusSource.
type daemon struct {
	log     *slog.Logger
	path    string
	version string
	started time.Time
	br      Bridge
	proxy   *smtpproxy.Proxy
	store   *store.Store

	reputation *reputation.Watcher
	alerter    *reputation.Alerter
	inspect    *inspect.Inspector
	// proxied is the inspector the proxy's events are shown to
	// (showProxied), once it runs.
	proxied atomic.Pointer[inspect.Inspector]
	// locate finds where offending hosts and relays are plugged in.
	locate *locService
	// captureAll: capture opened on every bridge port (set before the
	// web UI starts).
	captureAll bool
	// alive follows the heartbeat of the kernel's diversion.
	alive liveness

	// onApply hooks run, under mu, after a new configuration is in force.
	onApply []func(*config.Config)

	mu      sync.Mutex
	cfg     *config.Config
	serving bool
}

// newDaemon returns a daemon running cfg (read from path) on br.
func newDaemon(log *slog.Logger, path, version string, br Bridge, st *store.Store, cfg *config.Config) *daemon {
	return &daemon{log: log, path: path, version: version, started: time.Now(), br: br, store: st, cfg: cfg,
		alive: liveness{ttl: bridge.AliveTimeout}}
}

// OnApply registers f to run with every new configuration once it is in
// force, after the hooks registered before it. f runs under the daemon's
// lock: it must not call back into the daemon.
func (d *daemon) OnApply(f func(*config.Config)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onApply = append(d.onApply, f)
}

// heartbeat keeps the diversion alive while the proxy serves.
func (d *daemon) heartbeat(ctx context.Context) {
	d.setServing(true)
	t := time.NewTicker(bridge.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.recordHeartbeat(d.br.Heartbeat())
			d.syncCapture()
		}
	}
}

// recordHeartbeat feeds a heartbeat's result to the liveness tracker and
// logs once per failure streak.
func (d *daemon) recordHeartbeat(err error) {
	switch d.alive.record(err, time.Now()) {
	case streakFailing:
		d.log.Error("heartbeat failed: diversion off, the kernel's failure behaviour is in force until it succeeds", "err", err)
	case streakHealed:
		d.log.Info("heartbeat succeeds again: diversion alive")
	}
}

func (d *daemon) setServing(on bool) {
	d.mu.Lock()
	d.serving = on
	d.mu.Unlock()
	err := d.br.SetServing(on)
	if on {
		d.recordHeartbeat(err)
	} else if err != nil {
		d.log.Error("set serving", "serving", on, "err", err)
	}
	d.syncCapture()
}

// syncCapture tells passive inspection whether the kernel diverts now (the
// proxy serves and the diversion is alive): only then does it leave the
// relays' diverted flows, which the proxy sees whole, out of its capture.
// In the fail-open state the relays' SMTP is bridged and captured in full
// again from the heartbeat that found it (at most HeartbeatInterval late).
func (d *daemon) syncCapture() {
	if d.inspect == nil {
		return
	}
	d.mu.Lock()
	serving := d.serving
	d.mu.Unlock()
	d.inspect.SetDiverting(serving && d.alive.alive(time.Now()))
}

// dataPath reports what the data path does now (Status.DataPath) and
// whether that is what the mode promises (Status.Serving).
func (d *daemon) dataPath() (string, bool) {
	d.mu.Lock()
	c, serving := d.cfg, d.serving
	d.mu.Unlock()
	return dataPath(dataPathState{
		mode:         c.Mode,
		proxyServing: serving,
		alive:        d.alive.alive(time.Now()),
		inspectOn:    c.Inspect.On(),
		capturing:    d.captureAll && d.inspect != nil && d.inspect.Capturing(),
	})
}

// reload re-reads the configuration file (SIGHUP). A bad file is reported
// and the running configuration stays.
func (d *daemon) reload(ctx context.Context) {
	c, err := config.Load(d.path)
	if err != nil {
		d.log.Error("reload: keeping the running configuration", "err", err)
		return
	}
	old, err := d.apply(ctx, c)
	if err != nil {
		d.log.Error("reload: keeping the running configuration", "err", err)
		return
	}
	d.audit(ctx, "sighup", "", "config.reload", "configuration reloaded from "+d.path+": "+d.diff(old, c))
}

// Current returns the running configuration.
func (d *daemon) Current() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Apply validates, applies live, and then saves c atomically. On failure the
// previous configuration stays in force and on disk.
func (d *daemon) Apply(ctx context.Context, c *config.Config, actor, remote string) error {
	old, err := d.apply(ctx, c)
	if err != nil {
		return err
	}
	if err := c.Save(d.path); err != nil {
		return fmt.Errorf("configuration applied but not saved: %w", err)
	}
	d.audit(ctx, actor, remote, "config.update", fmt.Sprintf("mode %s, %d relays: %s", c.Mode, len(c.Relays), d.diff(old, c)))
	return nil
}

// auditDiffBytes bounds the diff an audit entry records.
const auditDiffBytes = 4000

// diff renders what changed from old to c for the audit log, secrets
// masked.
func (d *daemon) diff(old, c *config.Config) string {
	changes, err := config.Diff(old, c)
	if err != nil {
		d.log.Error("audit: configuration diff", "err", err)
		return "diff unavailable"
	}
	return config.DiffSummary(changes, auditDiffBytes)
}

// restartKeys are the settings that only take effect on a restart.
func restartKeys(old, c *config.Config) error {
	for _, k := range []struct {
		key      string
		old, new any
	}{
		{"interfaces.bridge", old.Interfaces.Bridge, c.Interfaces.Bridge},
		{"interfaces.inside", old.Interfaces.Inside, c.Interfaces.Inside},
		{"interfaces.outside", old.Interfaces.Outside, c.Interfaces.Outside},
		{"interfaces.management", old.Interfaces.Management, c.Interfaces.Management},
		{"web", old.Web, c.Web},
		{"data_dir", old.DataDir, c.DataDir},
		{"proxy.port", old.Proxy.Port, c.Proxy.Port},
	} {
		if !reflect.DeepEqual(k.old, k.new) {
			return &config.FieldError{Key: k.key, Msg: "cannot change while running: edit the file and restart the daemon"}
		}
	}
	return nil
}

// apply puts c in force: the bridge first, then every OnApply hook, and
// returns the configuration it replaced. A
// configuration the bridge refuses is rolled back (the bridge re-applies
// the running one) and the hooks do not run.
func (d *daemon) apply(ctx context.Context, c *config.Config) (*config.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.cfg
	if err := restartKeys(old, c); err != nil {
		return nil, err
	}
	if err := d.br.Apply(ctx, c); err != nil {
		if rerr := d.br.Apply(ctx, old); rerr != nil {
			d.log.Error("roll back to the previous configuration", "err", rerr)
		}
		return nil, fmt.Errorf("apply configuration: %w", err)
	}
	for _, f := range d.onApply {
		f(c)
	}
	d.cfg = c
	d.log.Info("configuration applied", "mode", c.Mode, "relays", len(c.Relays))
	return old, nil
}

func (d *daemon) audit(ctx context.Context, actor, remote, action, detail string) {
	if err := d.store.Audit(ctx, store.AuditEntry{Time: time.Now(), Actor: actor, Action: action, Detail: detail, Remote: remote}); err != nil {
		d.log.Error("audit log", "err", err)
	}
}

// Status reports the daemon's state for the API.
func (d *daemon) Status(ctx context.Context) webui.Status {
	c := d.Current()
	word, serving := d.dataPath()
	up := time.Since(d.started)
	s := webui.Status{
		Mode: c.Mode, Version: d.version, Started: d.started, Serving: serving, DataPath: word,
		Uptime: up.Round(time.Second).String(), UptimeSeconds: up.Seconds(),
		Counters: d.br.Counters(),
	}
	if d.inspect != nil {
		s.Inspect = d.inspect.Stats()
	}
	for _, p := range d.br.Ports() {
		s.Ports = append(s.Ports, webui.PortStatus{
			Name: p.Name, Role: webui.PortRole(p.Role), OperState: p.OperState, MTU: p.MTU,
			RxBytes: p.RxBytes, TxBytes: p.TxBytes, RxPackets: p.RxPackets, TxPackets: p.TxPackets,
		})
	}
	return s
}
