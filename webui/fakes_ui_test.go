package webui

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// memAdmins is an in-memory Admins.
type memAdmins struct {
	mu       sync.Mutex
	users    map[string]string // username -> hash
	sessions map[string]Session
	settings map[string]string
	err      error
}

func newMemAdmins() *memAdmins {
	return &memAdmins{users: map[string]string{}, sessions: map[string]Session{}, settings: map[string]string{}}
}

func (m *memAdmins) UserCount(ctx context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.users), m.err
}

func (m *memAdmins) CreateFirstUser(ctx context.Context, username, hash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.users) > 0 {
		return fmt.Errorf("create user: %w", ErrExists)
	}
	m.users[username] = hash
	return nil
}

func (m *memAdmins) PasswordHash(ctx context.Context, username string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.users[username]
	return h, ok, m.err
}

func (m *memAdmins) SetPasswordHash(ctx context.Context, username, hash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[username]; !ok {
		return ErrNotFound
	}
	m.users[username] = hash
	return nil
}

func (m *memAdmins) CreateSession(ctx context.Context, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[string(s.IDHash)] = s
	return nil
}

func (m *memAdmins) Session(ctx context.Context, id []byte) (Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return Session{}, false, m.err
	}
	s, ok := m.sessions[string(id)]
	return s, ok, nil
}

func (m *memAdmins) TouchSession(ctx context.Context, id []byte, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sessions[string(id)]; ok {
		s.LastSeen = t
		m.sessions[string(id)] = s
	}
	return nil
}

func (m *memAdmins) DeleteSession(ctx context.Context, id []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, string(id))
	return nil
}

func (m *memAdmins) DeleteUserSessions(ctx context.Context, username string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sessions {
		if s.Username == username {
			delete(m.sessions, k)
		}
	}
	return nil
}

func (m *memAdmins) Setting(ctx context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.settings[key]
	return v, ok, nil
}

func (m *memAdmins) SetSetting(ctx context.Context, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settings[key] = value
	return nil
}

func (m *memAdmins) TakeSetting(ctx context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.settings[key]
	delete(m.settings, key)
	return v, ok, nil
}

func (m *memAdmins) sessionCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// memAudit is an in-memory AuditLog.
type memAudit struct {
	mu      sync.Mutex
	entries []AuditEntry
}

func (m *memAudit) Audit(ctx context.Context, a AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a.ID = int64(len(m.entries) + 1)
	m.entries = append(m.entries, a)
	return nil
}

func (m *memAudit) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.entries)
	slices.Reverse(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// actions lists the audit actions in order.
func (m *memAudit) actions() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.entries {
		out = append(out, e.Action)
	}
	return out
}

func (m *memAudit) last() AuditEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) == 0 {
		return AuditEntry{}
	}
	return m.entries[len(m.entries)-1]
}

// memTokens is an in-memory TokenManager that also feeds fakeTokens, so
// that created tokens authenticate.
type memTokens struct {
	mu     sync.Mutex
	next   int64
	list   []TokenInfo
	check  *fakeTokens
	tokens map[int64]string
}

func (m *memTokens) CreateToken(ctx context.Context, name string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	tok := fmt.Sprintf("rg_created%d", m.next)
	m.list = append(m.list, TokenInfo{ID: m.next, Name: name, Created: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)})
	if m.tokens == nil {
		m.tokens = map[int64]string{}
	}
	m.tokens[m.next] = tok
	m.check.mu.Lock()
	m.check.tokens[tok] = name
	m.check.mu.Unlock()
	return tok, nil
}

func (m *memTokens) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.list), nil
}

func (m *memTokens) RevokeToken(ctx context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.list, func(t TokenInfo) bool { return t.ID == id })
	if i < 0 {
		return fmt.Errorf("revoke %d: %w", id, ErrNotFound)
	}
	m.list = slices.Delete(m.list, i, i+1)
	m.check.mu.Lock()
	delete(m.check.tokens, m.tokens[id])
	m.check.mu.Unlock()
	return nil
}

// memSeries is an in-memory SeriesSource.
type memSeries struct {
	mu     sync.Mutex
	points []Point
}

func (m *memSeries) add(metric, key string, minute time.Time, v int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.points = append(m.points, Point{Metric: metric, Key: key, Minute: minute.Truncate(time.Minute).UTC(), Value: v})
}

func (m *memSeries) Series(ctx context.Context, metric, key string, since, until time.Time) ([]Point, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Point
	for _, p := range m.points {
		if p.Metric != metric || (key != "" && p.Key != key) || p.Minute.Before(since.Truncate(time.Minute)) || (!until.IsZero() && !p.Minute.Before(until)) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// SeriesNewest keeps the newest limit points, in whole minutes when it
// cuts, like the store.
func (m *memSeries) SeriesNewest(ctx context.Context, metric, key string, since, until time.Time, limit int) ([]Point, bool, error) {
	pts, _ := m.Series(ctx, metric, key, since, until)
	slices.SortStableFunc(pts, func(a, b Point) int {
		return cmp.Or(a.Minute.Compare(b.Minute), strings.Compare(a.Key, b.Key))
	})
	if len(pts) <= limit {
		return pts, false, nil
	}
	cut := pts[len(pts)-limit-1].Minute
	pts = pts[len(pts)-limit:]
	n := 0
	for n < len(pts) && pts[n].Minute.Equal(cut) {
		n++
	}
	if n < len(pts) {
		pts = pts[n:]
	}
	return pts, true, nil
}

func (m *memSeries) SeriesTotals(ctx context.Context, metric string, since, until time.Time) ([]Point, error) {
	pts, _ := m.Series(ctx, metric, "", since, until)
	sums := map[time.Time]int64{}
	for _, p := range pts {
		sums[p.Minute] += p.Value
	}
	out := []Point{}
	for _, mi := range slices.SortedFunc(maps.Keys(sums), time.Time.Compare) {
		out = append(out, Point{Metric: metric, Minute: mi, Value: sums[mi]})
	}
	return out, nil
}

func (m *memSeries) TopKeys(ctx context.Context, metric string, since time.Time, n int) ([]KeyTotal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sums := map[string]int64{}
	for _, p := range m.points {
		if p.Metric == metric && !p.Minute.Before(since.Truncate(time.Minute)) {
			sums[p.Key] += p.Value
		}
	}
	var out []KeyTotal
	for k, v := range sums {
		out = append(out, KeyTotal{k, v})
	}
	slices.SortFunc(out, func(a, b KeyTotal) int {
		if a.Value != b.Value {
			return int(b.Value - a.Value)
		}
		if a.Key < b.Key {
			return -1
		}
		return 1
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// fakeEvidence has captures for some addresses.
type fakeEvidence struct{ addrs map[netip.Addr]bool }

func (f *fakeEvidence) HasEvidence(ctx context.Context, a netip.Addr) bool { return f.addrs[a] }

func (f *fakeEvidence) WritePcap(ctx context.Context, w io.Writer, a netip.Addr) error {
	if !f.addrs[a] {
		return ErrNotFound
	}
	_, err := io.WriteString(w, "\xd4\xc3\xb2\xa1fake pcap")
	return err
}

// fakeSystem records reboots.
type fakeSystem struct {
	mu      sync.Mutex
	reboots int
}

func (f *fakeSystem) Reboot(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reboots++
	return nil
}

// testArgon is a cheap argon2id cost for tests.
var testArgon = argonParams{time: 1, memKiB: 64, threads: 1}

// fakeInventory is a fixed passive inventory.
type fakeInventory struct{ hosts []SeenHost }

func (f *fakeInventory) HostsSeen(ctx context.Context, limit int) ([]SeenHost, error) {
	return slices.Clone(f.hosts), nil
}

func (f *fakeInventory) HostSeen(ctx context.Context, a netip.Addr) (SeenHost, bool, error) {
	for _, h := range f.hosts {
		if h.Addr == a {
			return h, true, nil
		}
	}
	return SeenHost{}, false, nil
}

// labInventory is what passive inspection saw in the lab, including a
// printer that spoke SMTP but has no event yet.
func labInventory(now time.Time) *fakeInventory {
	a := netip.MustParseAddr
	return &fakeInventory{hosts: []SeenHost{
		{Addr: a("10.20.0.50"), FirstSeen: now.Add(-41 * time.Minute), LastSeen: now.Add(-10 * time.Minute), Flows: 9, Messages: 7,
			RcptDomains: []string{"remote.example"}, RemoteMXs: []string{"198.51.100.25", "198.51.100.27"}, RDNS: "desktop-7qx.office.example"},
		{Addr: a("10.10.0.25"), FirstSeen: now.Add(-50 * time.Minute), LastSeen: now.Add(-20 * time.Minute), Flows: 120, Messages: 300,
			EncryptedFlows: 118, RDNS: "mail.example.com", AuthMechs: []string{}},
		{Addr: a("10.40.0.9"), FirstSeen: now.Add(-5 * time.Minute), LastSeen: now.Add(-5 * time.Minute), Flows: 1, RDNS: "printer-3f.office.example"},
	}}
}
