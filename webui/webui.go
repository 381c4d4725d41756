// Package webui is relaygate's management HTTP interface: the JSON API under
// /api/v1, Prometheus /metrics and the browser UI, served over HTTPS on the
// management interface only.
//
// One file per feature (hosts.go, events.go, policy.go, system.go, ...)
// holds its pages and its API and registers their routes; router.go keeps
// the middleware and calls each feature's routes function.
//
// The package owns the small interfaces it consumes (Events, Tokens,
// Admins, SeriesSource, ConfigManager, StatusSource, ...) over the plain
// record types the store defines (store.Session, store.Host, store.Point,
// ...): *store.Store implements every store-backed interface itself, and
// "not found" and "exists" are store.ErrNotFound and store.ErrExists.
// Nothing here uses the other packages' implementations, so the handlers
// are tested with a store in a temp dir, fakes for what cannot run in a
// test (configuration, status, reboot, evidence), and httptest.
//
// Authentication is by "Authorization: Bearer <token>" (scripts) or by a
// session cookie (the browser UI, see session.go), with a CSRF token on every
// state-changing browser request and login throttling. There is no default
// password: the first start prints a one-time setup token (PrepareSetup).
package webui

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// Events reads recorded events and per-host aggregates. *store.Store
// implements it.
type Events interface {
	// Events returns the events matching q, newest first, at most q.Limit
	// (always set by the API, 1..MaxLimit). It holds the page in memory:
	// callers keep q.Limit small or use EachEvent.
	Events(ctx context.Context, q store.Query) ([]event.Event, error)
	// EachEvent calls fn with each event matching q, newest first, at most
	// q.Limit, holding a small chunk of events at a time; more reports
	// that events follow the last one passed to fn. An error of fn stops
	// the walk and is returned.
	EachEvent(ctx context.Context, q store.Query, fn func(event.Event) error) (more bool, err error)
	// Hosts returns per-client aggregates, most recently seen first, at
	// most limit.
	Hosts(ctx context.Context, limit int) ([]store.Host, error)
	// HostByAddr returns the aggregate of one client address; it wraps
	// store.ErrNotFound when the address attempted nothing.
	HostByAddr(ctx context.Context, addr netip.Addr) (store.Host, error)
	// Offenders returns per client with events of kinds since then their
	// count, last time and latest senders and servers, most attempts
	// first, at most limit clients, aggregated by the store.
	Offenders(ctx context.Context, kinds []event.Kind, since time.Time, limit int) ([]store.Offender, error)
}

// Tokens checks API bearer tokens.
type Tokens interface {
	// CheckToken reports whether token is valid (known, unrevoked,
	// unexpired) and describes it: its name ("token:<name>" is the actor
	// in the audit log) and scope. err is for store failures only; an
	// unknown token is ok == false with a nil error, an expired one
	// ok == false with tok describing it.
	CheckToken(ctx context.Context, token string) (tok store.TokenInfo, ok bool, err error)
}

// ConfigManager owns the running configuration.
type ConfigManager interface {
	// Current returns the configuration in force. Callers must not modify it.
	Current() *config.Config
	// Apply validates c, saves it atomically and applies it live. On
	// failure it returns the reason and the previous configuration stays
	// in force. actor and remote (the client address) go to the audit log.
	// A *config.FieldError in the chain means the request was at fault
	// (the API answers 400); any other error is a server-side failure.
	Apply(ctx context.Context, c *config.Config, actor, remote string) error
}

// PortRole says what a port is for.
type PortRole string

// Port roles.
const (
	RoleInside     PortRole = "inside"
	RoleOutside    PortRole = "outside"
	RoleBridge     PortRole = "bridge"
	RoleManagement PortRole = "management"
)

// PortStatus is the state of one network port.
type PortStatus struct {
	// Name is the interface name, e.g. eth1.
	Name string   `json:"name"`
	Role PortRole `json:"role"`
	// OperState is the kernel's operational state, e.g. up, down,
	// lowerlayerdown, unknown.
	OperState string `json:"oper_state"`
	MTU       int    `json:"mtu"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
}

// Status is what GET /api/v1/status answers.
type Status struct {
	Mode    config.Mode `json:"mode"`
	Version string      `json:"version"`
	// Uptime and UptimeSeconds are filled in by the API from Started.
	Uptime        string    `json:"uptime"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Started       time.Time `json:"started"`
	// Serving reports whether the data path is up (diversion active in
	// enforce mode, inspection running in monitor mode): DataPath is
	// diverting or watching.
	Serving bool `json:"serving"`
	// DataPath says in one word what the data path does now: one of
	// DataPathDiverting, DataPathFailSafe, DataPathWatching,
	// DataPathNotWatching.
	DataPath string       `json:"data_path"`
	Ports    []PortStatus `json:"ports"`
	// Counters are named totals, e.g. nftables counters and event counts.
	Counters map[string]uint64 `json:"counters"`
	// Inspect is passive inspection's capture statistics (packets, drops,
	// flows), when it runs.
	Inspect any `json:"inspect,omitempty"`
}

// Values of Status.DataPath.
const (
	// DataPathDiverting: enforce mode, the proxy serves and the kernel's
	// diversion is alive (its heartbeat succeeds).
	DataPathDiverting = "diverting"
	// DataPathFailSafe: enforce mode, but the proxy does not serve or the
	// heartbeat fails, so the kernel's failure behaviour is in force:
	// relays' SMTP bridged straight through, everyone else's reset.
	DataPathFailSafe = "fail_safe"
	// DataPathWatching: monitor mode, passive capture runs on the bridge ports.
	DataPathWatching = "watching"
	// DataPathNotWatching: monitor mode, passive capture does not run
	// (disabled by inspect.enabled: false, failed to start, or stopped).
	DataPathNotWatching = "not_watching"
)

// StatusSource reports the appliance's state.
type StatusSource interface {
	Status(ctx context.Context) Status
}

// Deps is what the web UI needs from the rest of the daemon.
type Deps struct {
	// Logger receives request and error logs; nil discards them.
	Logger *slog.Logger
	// Events, Tokens, Config and Status are required.
	Events Events
	Tokens Tokens
	Config ConfigManager
	Status StatusSource
	// Metrics serves /metrics, e.g. promhttp.HandlerFor(registry, ...);
	// nil leaves /metrics out (404).
	Metrics http.Handler
	// Now is the clock, for uptime, sessions and login throttling; nil
	// means time.Now.
	Now func() time.Time

	// Admins, Audit, TokenAdmin and Series are required by the browser
	// UI: administrators and sessions, the audit log, token management
	// and the per-minute series of the dashboard.
	Admins     Admins
	Audit      AuditLog
	TokenAdmin TokenManager
	Series     SeriesSource
	// Evidence serves pcap evidence per host; nil hides the download.
	Evidence Evidence
	// Inventory is passive inspection's host inventory; nil shows the
	// hosts of the events only.
	Inventory Inventory
	// Locations is where hosts were seen on the switched network; nil
	// shows no location.
	Locations Locations
	// Locator looks a host up now ("locate now"); nil answers 409.
	Locator Locator
	// System reboots the appliance; nil disables the reboot button.
	System System
	// Reputation is the reputation watch and Alerts its test alerts; nil
	// shows the page as not running.
	Reputation Reputation
	Alerts     AlertTester
	// ReputationHistory is the stored blocklist checks (GET
	// /api/v1/reputation/history); nil answers 501.
	ReputationHistory ReputationHistory
	// Update is the firmware update API (GET status, POST bundle), mounted
	// at /api/v1/system/update; nil answers 501.
	Update http.Handler
	// Network is the management port's addressing (GET/PUT
	// /api/v1/system/network and the System page's form); nil answers 501.
	Network ManagementNetwork
	// Neighbors is what the bridge ports hear over LLDP/CDP (GET
	// /api/v1/neighbors, the System page); nil: none heard.
	Neighbors Neighbors
	// Export is the export to syslog collectors (GET /api/v1/export, the
	// System page); nil: none configured.
	Export ExportStatus
	// Console receives the one-time setup token line at start (Serve);
	// nil means os.Stderr.
	Console io.Writer

	// argon overrides the password hashing cost (tests); nil means
	// defaultArgon.
	argon *argonParams
	// hashSlots and hashWait override maxConcurrentHashes and hashWait
	// (tests); hashHook, when set, runs in every hashing slot before
	// the hash (tests: it records concurrency).
	hashSlots int
	hashWait  time.Duration
	hashHook  func()
	// certs is the HTTPS certificate Serve uses, for replacement by
	// upload; nil (NewRouter outside Serve) disables it.
	certs *certStore
}

// check reports missing required dependencies.
func (d *Deps) check() error {
	var errs []error
	if d.Events == nil {
		errs = append(errs, errors.New("webui: Deps.Events is nil"))
	}
	if d.Tokens == nil {
		errs = append(errs, errors.New("webui: Deps.Tokens is nil"))
	}
	if d.Config == nil {
		errs = append(errs, errors.New("webui: Deps.Config is nil"))
	}
	if d.Status == nil {
		errs = append(errs, errors.New("webui: Deps.Status is nil"))
	}
	if d.Admins == nil {
		errs = append(errs, errors.New("webui: Deps.Admins is nil"))
	}
	if d.Audit == nil {
		errs = append(errs, errors.New("webui: Deps.Audit is nil"))
	}
	if d.TokenAdmin == nil {
		errs = append(errs, errors.New("webui: Deps.TokenAdmin is nil"))
	}
	if d.Series == nil {
		errs = append(errs, errors.New("webui: Deps.Series is nil"))
	}
	return errors.Join(errs...)
}
