package webui

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
)

// fakeEvents is an in-memory Events that records its calls.
type fakeEvents struct {
	mu         sync.Mutex
	events     []event.Event
	hosts      []Host
	err        error
	queries    []EventQuery
	hostLimits []int
	// filter applies the query like the store does (lab data).
	filter bool
}

func (f *fakeEvents) Events(ctx context.Context, q EventQuery) ([]event.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if f.err != nil {
		return nil, f.err
	}
	if f.filter {
		var out []event.Event
		for _, e := range f.events {
			if (q.Kind != "" && e.Kind != q.Kind) || (q.Client.IsValid() && e.Client != q.Client) ||
				(!q.Since.IsZero() && e.Time.Before(q.Since)) || (!q.Until.IsZero() && !e.Time.Before(q.Until)) ||
				(q.Text != "" && !strings.Contains(strings.Join([]string{e.Helo, e.MailFrom, strings.Join(e.Rcpt, " "), e.Detail, e.Reply}, "\n"), q.Text)) {
				continue
			}
			out = append(out, e)
		}
		return out, nil
	}
	return append([]event.Event(nil), f.events...), nil
}

func (f *fakeEvents) Hosts(ctx context.Context, limit int) ([]Host, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hostLimits = append(f.hostLimits, limit)
	if f.err != nil {
		return nil, f.err
	}
	return append([]Host(nil), f.hosts...), nil
}

func (f *fakeEvents) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queries) + len(f.hostLimits)
}

// fakeTokens maps tokens to names.
type fakeTokens struct {
	mu     sync.Mutex
	tokens map[string]string
	err    error
	n      int
}

func (f *fakeTokens) CheckToken(ctx context.Context, token string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.err != nil {
		return "", false, f.err
	}
	name, ok := f.tokens[token]
	return name, ok, nil
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
	goodToken  = "rg_s3cr3t-Token.value~1"
	actorName  = "admin-laptop"
	remoteIP   = "192.0.2.1" // httptest.NewRequest's RemoteAddr
	metricText = "# HELP relaygate_up Whether relaygate is up.\n# TYPE relaygate_up gauge\nrelaygate_up 1\n"
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

// harness is a router with fakes behind it.
type harness struct {
	router http.Handler
	events *fakeEvents
	tokens *fakeTokens
	config *fakeConfig
	status *fakeStatus

	admins   *memAdmins
	audit    *memAudit
	tokAdmin *memTokens
	series   *memSeries
	clock    *testClock
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

func testDeps(t *testing.T) (Deps, *harness) {
	t.Helper()
	h := &harness{
		events: &fakeEvents{},
		tokens: &fakeTokens{tokens: map[string]string{goodToken: actorName}},
		config: &fakeConfig{cur: mustParse(t, testConfigYAML)},
		status: &fakeStatus{},
		admins: newMemAdmins(),
		audit:  &memAudit{},
		series: &memSeries{},
		clock:  &testClock{},
	}
	h.tokAdmin = &memTokens{check: h.tokens}
	d := Deps{
		Admins:     h.admins,
		Audit:      h.audit,
		TokenAdmin: h.tokAdmin,
		Series:     h.series,
		Now:        h.clock.Now,
		argon:      &testArgon,
		Console:    io.Discard,
		Logger:     testLogger(t),
		Events:     h.events,
		Tokens:     h.tokens,
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
