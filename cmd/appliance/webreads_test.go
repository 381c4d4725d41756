package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

// readsAPI is the web UI's API on a real store in a temp dir, through the
// daemon's adapters, with a bearer token.
type readsAPI struct {
	st    *store.Store
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
	srv := httptest.NewServer(webui.NewRouter(deps))
	t.Cleanup(srv.Close)
	tok, err := st.CreateToken(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	return &readsAPI{st: st, srv: srv, token: tok}
}

// get answers the status and the body of an authenticated GET.
func (a *readsAPI) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", a.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
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
		Points    []webui.Point `json:"points"`
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

	tot, err := webStore{api.st}.SeriesTotals(ctx, webui.MetricBlocked, m0, newest.Add(time.Minute))
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
