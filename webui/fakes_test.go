package webui

import (
	"context"
	"io"
	"net/netip"
	"sync"
	"testing"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// spyStore is the real store, counting the calls the API tests check
// (the store must not be asked before a request is authenticated and
// valid) and failing reads on demand.
type spyStore struct {
	*store.Store

	mu          sync.Mutex
	queries     []store.Query
	hostLimits  []int
	tokenChecks int
	// eventsErr and tokensErr make Events and Hosts, or CheckToken, fail
	// as a broken database would.
	eventsErr, tokensErr error
}

func (s *spyStore) Events(ctx context.Context, q store.Query) ([]event.Event, error) {
	s.mu.Lock()
	s.queries = append(s.queries, q)
	err := s.eventsErr
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.Store.Events(ctx, q)
}

func (s *spyStore) EachEvent(ctx context.Context, q store.Query, fn func(event.Event) error) (bool, error) {
	s.mu.Lock()
	s.queries = append(s.queries, q)
	err := s.eventsErr
	s.mu.Unlock()
	if err != nil {
		return false, err
	}
	return s.Store.EachEvent(ctx, q, fn)
}

func (s *spyStore) HostByAddr(ctx context.Context, addr netip.Addr) (store.Host, error) {
	s.mu.Lock()
	s.hostLimits = append(s.hostLimits, 1)
	err := s.eventsErr
	s.mu.Unlock()
	if err != nil {
		return store.Host{}, err
	}
	return s.Store.HostByAddr(ctx, addr)
}

func (s *spyStore) Hosts(ctx context.Context, limit int) ([]store.Host, error) {
	s.mu.Lock()
	s.hostLimits = append(s.hostLimits, limit)
	err := s.eventsErr
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.Store.Hosts(ctx, limit)
}

func (s *spyStore) CheckToken(ctx context.Context, token string) (store.TokenInfo, bool, error) {
	s.mu.Lock()
	s.tokenChecks++
	err := s.tokensErr
	s.mu.Unlock()
	if err != nil {
		return store.TokenInfo{}, false, err
	}
	return s.Store.CheckToken(ctx, token)
}

// calls returns how often events or hosts were read.
func (s *spyStore) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queries) + len(s.hostLimits)
}

// record stores events (their IDs are the store's: 1, 2, ... in the
// order given) and their outcome series.
func (s *spyStore) record(t *testing.T, evs ...event.Event) {
	t.Helper()
	for _, e := range evs {
		s.Record(e)
	}
	s.flush(t)
}

// flush writes what was recorded or added to the series.
func (s *spyStore) flush(t *testing.T) {
	t.Helper()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// applyCall is one recorded ConfigManager.Apply.
type applyCall struct {
	Config *config.Config
	Actor  string
	Remote string
}

// fakeConfig is a ConfigManager that keeps the config in memory.
type fakeConfig struct {
	mu       sync.Mutex
	cur      *config.Config
	applyErr error
	applied  []applyCall
}

func (f *fakeConfig) Current() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *fakeConfig) Apply(ctx context.Context, c *config.Config, actor, remote string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, applyCall{c, actor, remote})
	if f.applyErr != nil {
		return f.applyErr
	}
	f.cur = c
	return nil
}

func (f *fakeConfig) calls() []applyCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]applyCall(nil), f.applied...)
}

// fakeStatus returns a fixed Status, or panics when panicking is set.
type fakeStatus struct {
	st    Status
	panic bool
}

func (f *fakeStatus) Status(ctx context.Context) Status {
	if f.panic {
		panic("status exploded")
	}
	return f.st
}

// lockedReader makes a reader safe for concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// fakeEvidence has captures for some addresses.
type fakeEvidence struct{ addrs map[netip.Addr]bool }

func (f *fakeEvidence) HasEvidence(ctx context.Context, a netip.Addr) bool { return f.addrs[a] }

func (f *fakeEvidence) WritePcap(ctx context.Context, w io.Writer, a netip.Addr) error {
	if !f.addrs[a] {
		return store.ErrNotFound
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

func (f *fakeSystem) rebooted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reboots > 0
}
