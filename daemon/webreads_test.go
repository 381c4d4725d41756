package daemon

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

// readsAPI is the web UI's API on a real store in a temp dir, through the
// daemon's adapters, with a bearer token.
type readsAPI struct {
	st    *store.Store
	deps  webui.Deps
	dir   string
	srv   *httptest.Server
	token string
}

func newReadsAPI(t *testing.T, now func() time.Time) *readsAPI {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir, store.Options{PruneInterval: -1, Now: now, Retention: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Default()
	cfg.DataDir = dir
	d := &daemon{store: st}
	deps := d.webDeps(nil)
	deps.Config, deps.Status, deps.Console, deps.Now = &testConfig{cfg}, testStatus{}, io.Discard, now
	srv := httptest.NewTLSServer(webui.NewRouter(deps))
	t.Cleanup(srv.Close)
	tok, err := st.CreateToken(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	return &readsAPI{st: st, deps: deps, dir: dir, srv: srv, token: tok}
}

// get answers the status and the body of a GET with the bearer token.
func (a *readsAPI) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	return a.getWith(t, a.srv.Client(), path, "Bearer "+a.token)
}

func (a *readsAPI) getWith(t *testing.T, c *http.Client, path, auth string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", a.srv.URL+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// browser creates the administrator through the first-start setup and
// returns a client holding its session.
func (a *readsAPI) browser(t *testing.T) *http.Client {
	t.Helper()
	tok, err := webui.PrepareSetup(context.Background(), a.deps, a.dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := a.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	pass := "a long and boring passphrase"
	resp, err := c.PostForm(a.srv.URL+"/setup", url.Values{"token": {tok}, "username": {"admin"}, "password": {pass}, "password2": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /setup = %s", resp.Status)
	}
	return c
}

// TestSeriesAPIWideRange: 2000 blocked sources over 100 minutes are twice
// the points one answer holds. GET /api/v1/series without a key answers the
// newest minutes, whole, and says that it left the oldest out; the totals
// through the adapter are exact for every minute.
func TestSeriesAPIWideRange(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	api := newReadsAPI(t, func() time.Time { return now })
	const keys, minutes = 2000, 100
	m0 := now.Truncate(time.Minute).Add(-(minutes - 1) * time.Minute)
	newest := now.Truncate(time.Minute)
	sums := map[time.Time]int64{}
	for i := range minutes {
		m := m0.Add(time.Duration(i) * time.Minute)
		for k := range keys {
			api.st.AddSeries(store.SeriesBlocked, fmt.Sprintf("10.20.%d.%d", k>>8, k&255), m, int64(k%7+i))
			sums[m] += int64(k%7 + i)
		}
	}
	if err := api.st.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	code, body := api.get(t, "/api/v1/series?metric=blocked&since="+url.QueryEscape(m0.Format(time.RFC3339)))
	var r struct {
		Points    []store.Point `json:"points"`
		Truncated *bool         `json:"truncated"`
	}
	if err := json.Unmarshal(body, &r); code != 200 || err != nil {
		t.Fatalf("GET /api/v1/series = %d %v", code, err)
	}
	got := map[time.Time]int64{}
	for _, p := range r.Points {
		got[p.Minute] += p.Value
	}
	if r.Truncated == nil || !*r.Truncated {
		t.Errorf("truncated = %v, want true", r.Truncated)
	}
	if len(r.Points) == 0 || !r.Points[len(r.Points)-1].Minute.Equal(newest) {
		t.Fatalf("the newest minute %v is missing from %d points", newest, len(r.Points))
	}
	if len(got) != 50 {
		t.Errorf("answer spans %d minutes, want the newest 50", len(got))
	}
	for m, v := range got {
		if v != sums[m] {
			t.Errorf("minute %v sums to %d in the answer, want %d (all keys)", m, v, sums[m])
		}
	}
	// One key: nothing left out.
	code, body = api.get(t, "/api/v1/series?metric=blocked&key=10.20.0.7&since="+url.QueryEscape(m0.Format(time.RFC3339)))
	r.Points, r.Truncated = nil, nil
	if err := json.Unmarshal(body, &r); code != 200 || err != nil || len(r.Points) != minutes || r.Truncated == nil || *r.Truncated {
		t.Errorf("GET /api/v1/series for one key = %d, %d points, truncated %v; want %d, false", code, len(r.Points), r.Truncated, minutes)
	}

	tot, err := api.st.SeriesTotals(ctx, webui.MetricBlocked, m0, newest.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(tot) != minutes || !tot[minutes-1].Minute.Equal(newest) {
		t.Fatalf("SeriesTotals = %d points, want %d up to the newest minute", len(tot), minutes)
	}
	for _, p := range tot {
		if p.Key != "" || p.Metric != webui.MetricBlocked || p.Value != sums[p.Minute] {
			t.Errorf("SeriesTotals point %+v, want key \"\" and value %d", p, sums[p.Minute])
		}
	}
}

// TestReputationHistoryWired: the daemon's web UI serves the store's
// blocklist history (not the 501 of a missing dependency).
func TestReputationHistoryWired(t *testing.T) {
	ctx := context.Background()
	api := newReadsAPI(t, time.Now)
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	if err := api.st.AddReputation(ctx, []store.ReputationCheck{{Time: at, Address: "198.51.100.25", Zone: "zen.spamhaus.org", Status: "listed", Code: "127.0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	code, body := api.get(t, "/api/v1/reputation/history?address=198.51.100.25")
	var r struct{ Checks []store.ReputationCheck }
	if err := json.Unmarshal(body, &r); code != 200 || err != nil || len(r.Checks) != 1 || r.Checks[0].Code != "127.0.0.2" || !r.Checks[0].Time.Equal(at) {
		t.Errorf("GET /api/v1/reputation/history = %d %s", code, body)
	}
}

// TestEventFieldsShown: an event's messages, size, reply, tls and
// encrypted, stored in a real store, reach the CSV export, the events page
// and the host's timeline; ?q= finds the reply text.
func TestEventFieldsShown(t *testing.T) {
	ctx := context.Background()
	api := newReadsAPI(t, time.Now)
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	api.st.Record(event.Event{Time: at, Kind: event.Relayed, Client: netip.MustParseAddr("10.10.0.25"),
		Server: netip.MustParseAddr("203.0.113.25"), ServerPort: 25, Relay: "mail-relay", Helo: "mail.corp.example",
		MailFrom: "alice@corp.example", Rcpt: []string{"bob@remote.example"}, Code: 250, Detail: "delivered", Bytes: 4242,
		Messages: 3, Size: 123457, Reply: "250 2.0.0 Ok: queued as 4XyZ9", TLS: "passthrough"})
	api.st.Record(event.Event{Time: at.Add(-time.Second), Kind: event.WouldBlock, Client: netip.MustParseAddr("10.30.0.80"),
		Server: netip.MustParseAddr("198.51.100.26"), ServerPort: 25, Messages: 2, Encrypted: true})
	if err := api.st.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	code, body := api.get(t, "/api/v1/events.csv")
	if code != 200 {
		t.Fatalf("GET /api/v1/events.csv = %d %s", code, body)
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := []string{"time", "kind", "client", "server", "server_port", "relay", "helo", "mail_from", "rcpt", "code", "detail", "bytes",
		"messages", "size", "reply", "tls", "encrypted"}
	wantRows := [][]string{
		{at.Format(time.RFC3339), "relayed", "10.10.0.25", "203.0.113.25", "25", "mail-relay", "mail.corp.example", "alice@corp.example",
			"bob@remote.example", "250", "delivered", "4242", "3", "123457", "250 2.0.0 Ok: queued as 4XyZ9", "passthrough", "false"},
		{at.Add(-time.Second).Format(time.RFC3339), "would_block", "10.30.0.80", "198.51.100.26", "25", "", "", "", "", "0", "", "0",
			"2", "0", "", "", "true"},
	}
	if diff := cmp.Diff(append([][]string{wantHeader}, wantRows...), recs); diff != "" {
		t.Errorf("events CSV (-want +got):\n%s", diff)
	}

	// ?q= searches the reply (and what docs/api.md lists) in the real store.
	code, body = api.get(t, "/api/v1/events?q=QUEUED+AS+4xyz9")
	var r struct{ Events []event.Event }
	if err := json.Unmarshal(body, &r); code != 200 || err != nil || len(r.Events) != 1 || r.Events[0].Reply != "250 2.0.0 Ok: queued as 4XyZ9" {
		t.Errorf("GET /api/v1/events?q=QUEUED AS 4xyz9 = %d %s", code, body)
	}

	b := api.browser(t)
	cell := func(s string) string { return "<td>" + s + "</td>" }
	num := func(s string) string { return `<td class="num">` + s + "</td>" }
	for _, page := range []string{"/events", "/hosts/10.10.0.25"} {
		code, body := api.getWith(t, b, page, "")
		html := string(body)
		if code != 200 {
			t.Fatalf("GET %s = %d", page, code)
		}
		for _, want := range []string{">Messages</th>", ">Size (octets)</th>", ">Remote reply</th>", ">STARTTLS</th>", ">Encrypted</th>",
			num("3"), num("123457"), `<td class="wrap">250 2.0.0 Ok: queued as 4XyZ9</td>`, cell("passthrough")} {
			if !strings.Contains(html, want) {
				t.Errorf("GET %s lacks %q", page, want)
			}
		}
	}
	code, body = api.getWith(t, b, "/hosts/10.30.0.80", "")
	if code != 200 || !strings.Contains(string(body), cell("✓")) || !strings.Contains(string(body), num("2")) {
		t.Errorf("GET /hosts/10.30.0.80 = %d, lacks the encrypted mark or the message count", code)
	}
	code, body = api.getWith(t, b, "/events", "")
	if code != 200 || !strings.Contains(string(body), cell("✓")) {
		t.Errorf("GET /events = %d, lacks the encrypted mark", code)
	}
}
