package webui

import (
	"context"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

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

func (s *spyStore) CheckToken(ctx context.Context, token string) (string, bool, error) {
	s.mu.Lock()
	s.tokenChecks++
	err := s.tokensErr
	s.mu.Unlock()
	if err != nil {
		return "", false, err
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

const (
	actorName  = "admin-laptop"
	remoteIP   = "192.0.2.1" // httptest.NewRequest's RemoteAddr
	metricText = "# HELP relaygate_up Whether relaygate is up.\n# TYPE relaygate_up gauge\nrelaygate_up 1\n"
)

// tokenSeed seeds the store's token randomness, so that the first token
// of every harness, named actorName, is goodToken.
var tokenSeed = [32]byte{'r', 'e', 'l', 'a', 'y', 'g', 'a', 't', 'e'}

var (
	goodToken = func() string {
		var b [32]byte
		rand.NewChaCha8(tokenSeed).Read(b[:])
		return store.TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	}()
	bearer = "Bearer " + goodToken
)

const testConfigYAML = `mode: enforce
interfaces:
  bridge: br0
  inside: eth1
  outside: eth2
  management: eth0
relays:
  - name: mail-relay
    address: 10.10.0.25/32
data_dir: /var/lib/relaygate
`

// harness is a router with a store in a temporary directory and fakes
// for the rest of the daemon behind it.
type harness struct {
	router http.Handler
	store  *spyStore
	config *fakeConfig
	status *fakeStatus
	clock  *testClock
}

// testClock is an injectable clock: the real time plus what Advance added.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func mustParse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return c
}

// openStore opens a store in a temporary directory, closed by the test's
// cleanup, with goodToken named actorName in it.
func openStore(t *testing.T, now func() time.Time) *spyStore {
	t.Helper()
	ctx := context.Background()
	// Not t.TempDir: subtest names can hold '#', which the store refuses.
	dir, err := os.MkdirTemp("", "webui-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	st, err := store.Open(ctx, dir, store.Options{PruneInterval: -1, Retention: 365 * 24 * time.Hour, Now: now,
		Rand: &lockedReader{r: rand.NewChaCha8(tokenSeed)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if tok, err := st.CreateToken(ctx, actorName); err != nil || tok != goodToken {
		t.Fatalf("CreateToken = %q, %v; want %q", tok, err, goodToken)
	}
	return &spyStore{Store: st}
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

func testDeps(t *testing.T) (Deps, *harness) {
	t.Helper()
	clock := &testClock{}
	h := &harness{
		store:  openStore(t, clock.Now),
		config: &fakeConfig{cur: mustParse(t, testConfigYAML)},
		status: &fakeStatus{},
		clock:  clock,
	}
	d := Deps{
		Admins:     h.store,
		Audit:      h.store,
		TokenAdmin: h.store,
		Series:     h.store,
		Now:        h.clock.Now,
		argon:      &testArgon,
		Console:    io.Discard,
		Logger:     testLogger(t),
		Events:     h.store,
		Tokens:     h.store,
		Config:     h.config,
		Status:     h.status,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			io.WriteString(w, metricText)
		}),
	}
	return d, h
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	d, h := testDeps(t)
	h.router = NewRouter(d)
	return h
}

// do sends one request; auth is the whole Authorization header, "" for none.
func (h *harness) do(t *testing.T, method, target, auth, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.router.ServeHTTP(w, req)
	return w
}
