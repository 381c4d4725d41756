package webui

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"time"

	"github.com/relaygate/relaygate/mgmtnet"
	"github.com/relaygate/relaygate/store"
)

// ErrNotFound is what implementations of the interfaces below wrap when
// the record asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is what Admins.CreateFirstUser wraps when an administrator
// exists already.
var ErrExists = errors.New("already exists")

// Session is a browser login. Only the SHA-256 of the cookie is stored.
type Session struct {
	IDHash   []byte
	Username string
	// CSRF is the token every state-changing request of the session carries.
	CSRF     string
	Created  time.Time
	LastSeen time.Time
	// Remote is the client address at login.
	Remote string
}

// Admins stores the administrators, their sessions and small settings
// (the setup token's hash).
type Admins interface {
	UserCount(ctx context.Context) (int, error)
	// CreateFirstUser creates the first administrator; it wraps ErrExists
	// when one exists.
	CreateFirstUser(ctx context.Context, username, passwordHash string) error
	// PasswordHash returns the user's password hash; ok is false for an
	// unknown user.
	PasswordHash(ctx context.Context, username string) (hash string, ok bool, err error)
	SetPasswordHash(ctx context.Context, username, passwordHash string) error

	CreateSession(ctx context.Context, s Session) error
	// Session returns the session with the given id hash; ok is false
	// when there is none.
	Session(ctx context.Context, idHash []byte) (s Session, ok bool, err error)
	TouchSession(ctx context.Context, idHash []byte, t time.Time) error
	DeleteSession(ctx context.Context, idHash []byte) error
	DeleteUserSessions(ctx context.Context, username string) error

	Setting(ctx context.Context, key string) (string, bool, error)
	SetSetting(ctx context.Context, key, value string) error
	// TakeSetting deletes the setting and returns its value atomically.
	TakeSetting(ctx context.Context, key string) (string, bool, error)
}

// AuditEntry is one administrative change.
type AuditEntry struct {
	ID     int64     `json:"id"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Detail string    `json:"detail"`
	Remote string    `json:"remote"`
}

// AuditLog is the admin audit log.
type AuditLog interface {
	// Audit appends an entry; a zero Time means now.
	Audit(ctx context.Context, a AuditEntry) error
	// AuditLog returns the newest entries first, at most limit.
	AuditLog(ctx context.Context, limit int) ([]AuditEntry, error)
}

// TokenInfo describes an API bearer token (never the token itself).
type TokenInfo struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
}

// TokenManager creates, lists and revokes API bearer tokens.
type TokenManager interface {
	// CreateToken returns a new token named name; it is shown once.
	CreateToken(ctx context.Context, name string) (string, error)
	ListTokens(ctx context.Context) ([]TokenInfo, error)
	// RevokeToken deletes a token; it wraps ErrNotFound for an unknown id.
	RevokeToken(ctx context.Context, id int64) error
}

// Point is one minute of a per-minute series.
type Point struct {
	Metric string    `json:"metric"`
	Key    string    `json:"key"`
	Minute time.Time `json:"minute"`
	Value  int64     `json:"value"`
}

// KeyTotal is a series key's sum over a time range.
type KeyTotal struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
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

// SeriesSource reads the per-minute series.
type SeriesSource interface {
	// Series returns the points of metric (every key when key is empty)
	// with since <= minute < until (zero: unbounded), oldest first. Over
	// the store's cap it returns the newest points.
	Series(ctx context.Context, metric, key string, since, until time.Time) ([]Point, error)
	// SeriesNewest is Series with a cap: at most limit points, the newest,
	// oldest first; truncated reports that older points were left out (the
	// minutes in the answer are then whole: every key of each).
	SeriesNewest(ctx context.Context, metric, key string, since, until time.Time, limit int) (pts []Point, truncated bool, err error)
	// SeriesTotals returns, per minute, the sum of metric over all its
	// keys (points with Key ""), with since <= minute < until (zero:
	// unbounded), oldest first; exact however many keys there are.
	SeriesTotals(ctx context.Context, metric string, since, until time.Time) ([]Point, error)
	// TopKeys returns the n keys of metric with the largest sums since.
	TopKeys(ctx context.Context, metric string, since time.Time, n int) ([]KeyTotal, error)
}

// Evidence serves the pcap evidence kept for offending hosts (passive
// inspection). Optional: without it the UI shows no download link.
type Evidence interface {
	// HasEvidence reports whether there is a capture for addr.
	HasEvidence(ctx context.Context, addr netip.Addr) bool
	// WritePcap writes the capture for addr in pcap format; it wraps
	// ErrNotFound when there is none (before writing anything).
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

// SeenHost is what passive inspection learned about a client address that
// spoke SMTP on the wire.
type SeenHost struct {
	Addr           netip.Addr `json:"addr"`
	FirstSeen      time.Time  `json:"first_seen"`
	LastSeen       time.Time  `json:"last_seen"`
	Flows          int64      `json:"flows"`
	Messages       int64      `json:"messages"`
	EncryptedFlows int64      `json:"encrypted_flows"`
	RcptDomains    []string   `json:"rcpt_domains"`
	RemoteMXs      []string   `json:"remote_mxs"`
	AuthMechs      []string   `json:"auth_mechs"`
	// RDNS is the reverse DNS name, if looked up.
	RDNS string `json:"rdns"`
	// Label names the host's subnet (inspect.labels), e.g. "Koror office".
	Label string `json:"label,omitempty"`
}

// Inventory is passive inspection's host inventory. Optional: without it
// the hosts pages show what the events say.
type Inventory interface {
	// HostsSeen returns the inventory, most recently seen first.
	HostsSeen(ctx context.Context, limit int) ([]SeenHost, error)
	// HostSeen returns one host; ok is false when it was not seen.
	HostSeen(ctx context.Context, addr netip.Addr) (h SeenHost, ok bool, err error)
}
