package webui

import (
	"context"
	"io"
	"net/netip"
	"time"

	"github.com/relaygate/relaygate/mgmtnet"
	"github.com/relaygate/relaygate/store"
)

// Admins stores the administrators, their sessions and small settings
// (the setup token's hash). *store.Store implements it.
type Admins interface {
	UserCount(ctx context.Context) (int, error)
	// CreateFirstUser creates the first administrator; it wraps
	// store.ErrExists when one exists.
	CreateFirstUser(ctx context.Context, username, passwordHash string) error
	// User returns the administrator; it wraps store.ErrNotFound for an
	// unknown user.
	User(ctx context.Context, username string) (store.User, error)
	SetPasswordHash(ctx context.Context, username, passwordHash string) error

	CreateSession(ctx context.Context, s store.Session) error
	// Session returns the session with the given id hash; it wraps
	// store.ErrNotFound when there is none.
	Session(ctx context.Context, idHash []byte) (store.Session, error)
	TouchSession(ctx context.Context, idHash []byte, t time.Time) error
	DeleteSession(ctx context.Context, idHash []byte) error
	DeleteUserSessions(ctx context.Context, username string) error

	Setting(ctx context.Context, key string) (string, bool, error)
	SetSetting(ctx context.Context, key, value string) error
	// TakeSetting deletes the setting and returns its value atomically.
	TakeSetting(ctx context.Context, key string) (string, bool, error)
}

// AuditLog is the admin audit log. *store.Store implements it.
type AuditLog interface {
	// Audit appends an entry; a zero Time means now.
	Audit(ctx context.Context, a store.AuditEntry) error
	// AuditLog returns the newest entries first, at most limit.
	AuditLog(ctx context.Context, limit int) ([]store.AuditEntry, error)
}

// TokenManager creates, lists and revokes API bearer tokens.
// *store.Store implements it.
type TokenManager interface {
	// CreateScopedToken returns a new token; it is shown once.
	CreateScopedToken(ctx context.Context, nt store.NewToken) (string, error)
	Tokens(ctx context.Context) ([]store.TokenInfo, error)
	// RevokeToken deletes a token; it wraps store.ErrNotFound for an
	// unknown id.
	RevokeToken(ctx context.Context, id int64) error
}

// Series metric names the UI draws: the store's.
const (
	MetricRelayMessages       = store.SeriesRelayMessages       // key: relay name
	MetricBlocked             = store.SeriesBlocked             // key: client address
	MetricDeferred            = store.SeriesDeferred            // key: relay name
	MetricRelaySenderMessages = store.SeriesRelaySenderMessages // key: store.RelaySenderKey
	MetricRelayEncrypted      = store.SeriesRelayEncrypted      // key: relay name
	MetricShed                = store.SeriesShed                // key: ruleset counter name
)

// SeriesSource reads the per-minute series. *store.Store implements it.
type SeriesSource interface {
	// Series returns the points of q (every key when q.Key is empty),
	// oldest first. Over the store's cap it returns the newest points.
	Series(ctx context.Context, q store.SeriesQuery) ([]store.Point, error)
	// SeriesNewest is Series with a cap: at most limit points, the newest,
	// oldest first; truncated reports that older points were left out (the
	// minutes in the answer are then whole: every key of each).
	SeriesNewest(ctx context.Context, q store.SeriesQuery, limit int) (pts []store.Point, truncated bool, err error)
	// SeriesTotals returns, per minute, the sum of metric over all its
	// keys (points with Key ""), with since <= minute < until (zero:
	// unbounded), oldest first; exact however many keys there are.
	SeriesTotals(ctx context.Context, metric string, since, until time.Time) ([]store.Point, error)
	// TopKeys returns the n keys of metric with the largest sums since.
	TopKeys(ctx context.Context, metric string, since time.Time, n int) ([]store.KeyTotal, error)
}

// Evidence serves the pcap evidence kept for offending hosts (passive
// inspection). Optional: without it the UI shows no download link.
type Evidence interface {
	// HasEvidence reports whether there is a capture for addr.
	HasEvidence(ctx context.Context, addr netip.Addr) bool
	// WritePcap writes the capture for addr in pcap format; it wraps
	// store.ErrNotFound when there is none (before writing anything).
	WritePcap(ctx context.Context, w io.Writer, addr netip.Addr) error
}

// System is the appliance's own machine. Optional: without it the reboot
// button is disabled with an explanation.
type System interface {
	// Reboot restarts the appliance; it returns once the reboot is
	// scheduled.
	Reboot(ctx context.Context) error
}

// ManagementNetwork is the management port's addressing: DHCP or a static
// address (data_dir/management.conf, applied by the appliance image).
type ManagementNetwork interface {
	// Load returns the settings in force (DHCP when none were saved).
	Load() (mgmtnet.Settings, error)
	// Save validates the settings (an error of type mgmtnet.FieldErrors
	// names each bad field; nothing is saved then), saves them atomically
	// and applies them where the appliance image's hook exists.
	Save(ctx context.Context, s mgmtnet.Settings) (*mgmtnet.Result, error)
}

// Inventory is passive inspection's host inventory. Optional: without it
// the hosts pages show what the events say. *store.Store implements it
// (without subnet labels); the inspector adds what it has not written yet
// and the labels.
type Inventory interface {
	// HostsSeen returns the inventory, most recently seen first.
	HostsSeen(ctx context.Context, limit int) ([]store.HostSeen, error)
	// HostSeenByAddr returns one host; it wraps store.ErrNotFound when
	// the host was not seen.
	HostSeenByAddr(ctx context.Context, addr netip.Addr) (store.HostSeen, error)
}
