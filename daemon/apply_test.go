package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/store"
)

// fakeBridge records what the daemon applies; fail, when set, decides
// whether an Apply fails.
type fakeBridge struct {
	applied []*config.Config
	fail    func(*config.Config) error
	serving []bool
}

var _ Bridge = (*fakeBridge)(nil)

func (f *fakeBridge) Apply(ctx context.Context, c *config.Config) error {
	f.applied = append(f.applied, c)
	if f.fail != nil {
		return f.fail(c)
	}
	return nil
}

func (f *fakeBridge) SetServing(on bool) error {
	f.serving = append(f.serving, on)
	return nil
}

func (f *fakeBridge) Heartbeat() error { return nil }

func (f *fakeBridge) Counters() map[string]uint64 {
	return map[string]uint64{bridge.CounterDiverted: 3}
}

func (f *fakeBridge) Ports() []bridge.PortStatus {
	return []bridge.PortStatus{{Name: "eth1", Role: "inside", OperState: "up", RxBytes: 10}}
}

func (f *fakeBridge) Stop() error { return nil }

// applyHarness is a daemon on a fake bridge and a real store in a temp
// dir, running a valid configuration saved to its file, with hooks that
// record their calls.
type applyHarness struct {
	d    *daemon
	br   *fakeBridge
	st   *store.Store
	path string
	logs *bytes.Buffer
	// calls is one "hookN" per hook run, in order; got the configurations
	// they ran with.
	calls []string
	got   []*config.Config
}

func newApplyHarness(t *testing.T) *applyHarness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), dir, store.Options{PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Interfaces.Inside, cfg.Interfaces.Outside, cfg.Interfaces.Management = "eth1", "eth2", "eth0"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the harness's configuration: %v", err)
	}
	path := filepath.Join(dir, "relaygate.yaml")
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	h := &applyHarness{br: &fakeBridge{}, st: st, path: path, logs: &bytes.Buffer{}}
	h.d = newDaemon(slog.New(slog.NewTextHandler(h.logs, nil)), path, "test", h.br, st, cfg)
	for _, name := range []string{"hook1", "hook2", "hook3"} {
		h.d.OnApply(func(c *config.Config) {
			h.calls = append(h.calls, name)
			h.got = append(h.got, c)
		})
	}
	return h
}

// changed returns a copy of the running configuration changed by edit.
func (h *applyHarness) changed(t *testing.T, edit func(*config.Config)) *config.Config {
	t.Helper()
	b, err := h.d.Current().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	edit(c)
	return c
}

// toEnforce switches a configuration to enforce mode with one relay.
func toEnforce(c *config.Config) {
	c.Mode = config.Enforce
	c.Relays = []config.Relay{{Name: "mail-relay", Address: config.MustParsePrefix("10.10.0.0/16")}}
}

func (h *applyHarness) file(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unchanged checks that nothing happened: the running configuration is
// old, no hook ran, the file on disk is file, and the bridge was applied
// exactly applied.
func (h *applyHarness) unchanged(t *testing.T, old *config.Config, file string, applied []*config.Config) {
	t.Helper()
	if got := h.d.Current(); got != old {
		t.Errorf("Current() changed to mode %s", got.Mode)
	}
	if len(h.calls) != 0 {
		t.Errorf("hooks ran: %v", h.calls)
	}
	if got := h.file(t); got != file {
		t.Errorf("configuration file changed:\n%s", cmp.Diff(file, got))
	}
	if len(h.br.applied) != len(applied) {
		t.Fatalf("bridge applied %d configurations, want %d", len(h.br.applied), len(applied))
	}
	for i := range applied {
		if h.br.applied[i] != applied[i] {
			t.Errorf("bridge Apply #%d: not the configuration expected", i+1)
		}
	}
}

// TestApplyRefusesRestartKeys: a key that only takes effect on a restart
// is refused with a FieldError naming it, before anything changes.
func TestApplyRefusesRestartKeys(t *testing.T) {
	for _, tc := range []struct {
		key  string
		edit func(*config.Config)
	}{
		{"interfaces.inside", func(c *config.Config) { c.Interfaces.Inside = "eth9" }},
		{"interfaces.bridge", func(c *config.Config) { c.Interfaces.Bridge = "br9" }},
		{"web", func(c *config.Config) { c.Web.Listen = "127.0.0.1:9443" }},
		{"data_dir", func(c *config.Config) { c.DataDir = "/var/lib/elsewhere" }},
		{"proxy.port", func(c *config.Config) { c.Proxy.Port++ }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			h := newApplyHarness(t)
			old, file := h.d.Current(), h.file(t)
			c := h.changed(t, tc.edit)
			err := h.d.Apply(context.Background(), c, "admin", "192.0.2.1")
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Key != tc.key {
				t.Fatalf("Apply(%s changed) = %v, want a config.FieldError for %s", tc.key, err, tc.key)
			}
			if !strings.Contains(err.Error(), "restart") {
				t.Errorf("Apply(%s changed) = %q, want it to say restart", tc.key, err)
			}
			h.unchanged(t, old, file, nil)
		})
	}
}

// TestApplyBridgeFailureRollsBack: when the bridge refuses a
// configuration, the daemon re-applies the running one to it and keeps
// it in force and on disk; no hook runs. A failed rollback is logged.
func TestApplyBridgeFailureRollsBack(t *testing.T) {
	errKernel := errors.New("netlink: operation not permitted")
	for _, tc := range []struct {
		name         string
		rollbackFail bool
	}{
		{"rollback succeeds", false},
		{"rollback fails too", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newApplyHarness(t)
			old, file := h.d.Current(), h.file(t)
			c := h.changed(t, func(c *config.Config) { c.Proxy.MaxConnsPerSource++ })
			h.br.fail = func(got *config.Config) error {
				if got == c || tc.rollbackFail {
					return errKernel
				}
				return nil
			}
			err := h.d.Apply(context.Background(), c, "admin", "192.0.2.1")
			if !errors.Is(err, errKernel) || !strings.HasPrefix(err.Error(), "apply configuration: ") {
				t.Fatalf("Apply = %v, want apply configuration: %v", err, errKernel)
			}
			h.unchanged(t, old, file, []*config.Config{c, old})
			if logged := strings.Contains(h.logs.String(), "roll back to the previous configuration"); logged != tc.rollbackFail {
				t.Errorf("rollback failure logged = %t, want %t; logs:\n%s", logged, tc.rollbackFail, h.logs)
			}
		})
	}
}

// TestApplyRunsHooks: a good configuration reaches the bridge once, then
// every hook once, in the order they registered, and is saved and
// audited.
func TestApplyRunsHooks(t *testing.T) {
	ctx := context.Background()
	h := newApplyHarness(t)
	c := h.changed(t, toEnforce)
	if err := h.d.Apply(ctx, c, "admin", "192.0.2.1"); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	if diff := cmp.Diff([]string{"hook1", "hook2", "hook3"}, h.calls); diff != "" {
		t.Errorf("hooks run (-want +got):\n%s", diff)
	}
	for i, got := range h.got {
		if got != c {
			t.Errorf("hook%d ran with another configuration than the one applied", i+1)
		}
	}
	if len(h.br.applied) != 1 || h.br.applied[0] != c {
		t.Errorf("bridge applied %d configurations, want the new one once", len(h.br.applied))
	}
	if h.d.Current() != c {
		t.Error("Current() is not the applied configuration")
	}
	saved, err := config.Load(h.path)
	if err != nil || saved.Mode != config.Enforce {
		t.Errorf("saved configuration: mode %v, %v; want enforce", saved, err)
	}
	audit, err := h.st.AuditLog(ctx, 10)
	if err != nil || len(audit) != 1 || audit[0].Action != "config.update" || audit[0].Actor != "admin" {
		t.Errorf("audit log = %+v, %v; want one config.update by admin", audit, err)
	}
}

// TestReload: SIGHUP's reload applies a good file; a file that does not
// load, or that changes a restart key, is reported and the running
// configuration stays.
func TestReload(t *testing.T) {
	ctx := context.Background()
	t.Run("broken file", func(t *testing.T) {
		h := newApplyHarness(t)
		old := h.d.Current()
		broken := "mode: enforce\ninterfaces: {inside: eth1, outside: eth2, management: eth0\n"
		if err := os.WriteFile(h.path, []byte(broken), 0o600); err != nil {
			t.Fatal(err)
		}
		h.d.reload(ctx)
		h.unchanged(t, old, broken, nil)
		if !strings.Contains(h.logs.String(), "reload: keeping the running configuration") {
			t.Errorf("logs do not say the running configuration stays:\n%s", h.logs)
		}
	})
	t.Run("restart key in the file", func(t *testing.T) {
		h := newApplyHarness(t)
		old := h.d.Current()
		c := h.changed(t, func(c *config.Config) { c.Proxy.Port++ })
		if err := c.Save(h.path); err != nil {
			t.Fatal(err)
		}
		file := h.file(t)
		h.d.reload(ctx)
		h.unchanged(t, old, file, nil)
		if !strings.Contains(h.logs.String(), "proxy.port") {
			t.Errorf("logs do not name proxy.port:\n%s", h.logs)
		}
	})
	t.Run("good file", func(t *testing.T) {
		h := newApplyHarness(t)
		c := h.changed(t, toEnforce)
		if err := c.Save(h.path); err != nil {
			t.Fatal(err)
		}
		h.d.reload(ctx)
		if got := h.d.Current(); got.Mode != config.Enforce {
			t.Errorf("Current().Mode after reload = %s, want enforce", got.Mode)
		}
		if diff := cmp.Diff([]string{"hook1", "hook2", "hook3"}, h.calls); diff != "" {
			t.Errorf("hooks run (-want +got):\n%s", diff)
		}
		audit, err := h.st.AuditLog(ctx, 10)
		if err != nil || len(audit) != 1 || audit[0].Action != "config.reload" || audit[0].Actor != "sighup" {
			t.Errorf("audit log = %+v, %v; want one config.reload by sighup", audit, err)
		}
	})
}

// TestStatusFromBridge: the status reports the bridge's counters and
// ports, and the data path from the daemon's own state.
func TestStatusFromBridge(t *testing.T) {
	h := newApplyHarness(t)
	s := h.d.Status(context.Background())
	if s.Counters[bridge.CounterDiverted] != 3 || len(s.Ports) != 1 || s.Ports[0].Name != "eth1" || s.Ports[0].RxBytes != 10 {
		t.Errorf("Status counters %v, ports %+v; want the bridge's", s.Counters, s.Ports)
	}
	if s.Version != "test" || s.Mode != config.Monitor || s.Serving {
		t.Errorf("Status = version %q, mode %s, serving %t; want test, monitor, false", s.Version, s.Mode, s.Serving)
	}
}

// TestApplyAuditsDiff: the audit entry of a configuration change lists
// the keys that changed with old and new values, the switches' secrets
// masked.
func TestApplyAuditsDiff(t *testing.T) {
	ctx := context.Background()
	h := newApplyHarness(t)
	c := h.changed(t, func(c *config.Config) {
		toEnforce(c)
		c.Locate.Switches = []config.Switch{{Name: "access-2", Address: "10.0.0.2", Version: "2c", Community: "s3cret-community"}}
	})
	if err := h.d.Apply(ctx, c, "admin", "192.0.2.1"); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	audit, err := h.st.AuditLog(ctx, 1)
	if err != nil || len(audit) != 1 {
		t.Fatalf("audit log = %+v, %v; want one entry", audit, err)
	}
	d := audit[0].Detail
	for _, want := range []string{
		"mode: monitor -> enforce",
		"relays[0].address: (none) -> 10.10.0.0/16",
		"locate.switches[0].community: (none) -> " + config.SecretMask,
	} {
		if !strings.Contains(d, want) {
			t.Errorf("audit detail %q lacks %q", d, want)
		}
	}
	if strings.Contains(d, "s3cret") {
		t.Errorf("audit detail %q shows the switch's community", d)
	}
}
