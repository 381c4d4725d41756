package webui

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/store"
)

// TestReputationHistoryAPI serves GET /api/v1/reputation/history from a
// real store in a temp dir.
func TestReputationHistoryAPI(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	var checks []store.ReputationCheck
	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Hour)
		checks = append(checks,
			store.ReputationCheck{Time: at, Address: "198.51.100.25", Zone: "zen.spamhaus.org", Status: "clean"},
			store.ReputationCheck{Time: at, Address: "198.51.100.25", Zone: "bl.spamcop.net", Status: "error", Error: "timeout"},
			store.ReputationCheck{Time: at, Address: "2001:db8::25", Zone: "zen.spamhaus.org", Status: "clean"})
	}
	checks[6].Status, checks[6].Code, checks[6].Reason = "listed", "127.0.0.4", "see check.spamhaus.org" // newest zen check of .25
	if err := st.AddReputation(ctx, checks); err != nil {
		t.Fatal(err)
	}
	d, h := testDeps(t)
	d.ReputationHistory = st
	h.router = NewRouter(d)

	type answer struct {
		Checks []store.ReputationCheck `json:"checks"`
	}
	get := func(q string) answer {
		t.Helper()
		w := h.do(t, "GET", "/api/v1/reputation/history"+q, bearer, "")
		if w.Code != http.StatusOK {
			t.Fatalf("GET /api/v1/reputation/history%s = %d %s", q, w.Code, w.Body)
		}
		return decode[answer](t, w)
	}
	// Filtered by address (any spelling) and zone, newest first.
	got := get("?address=198.51.100.25&zone=zen.spamhaus.org")
	want := []store.ReputationCheck{checks[6], checks[3], checks[0]}
	if diff := cmp.Diff(want, got.Checks); diff != "" {
		t.Errorf("history of 198.51.100.25 in zen (-want +got):\n%s", diff)
	}
	if got := get("?address=2001:DB8:0::25&limit=2"); len(got.Checks) != 2 || got.Checks[0].Address != "2001:db8::25" || !got.Checks[0].Time.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("history of 2001:DB8:0::25, limit 2 = %+v; want the two newest of 2001:db8::25", got.Checks)
	}
	if got := get(""); len(got.Checks) != 9 || !got.Checks[0].Time.Equal(t0.Add(2*time.Hour)) || !got.Checks[8].Time.Equal(t0) {
		t.Errorf("whole history = %d checks from %v to %v; want 9 newest first", len(got.Checks), got.Checks[0].Time, got.Checks[len(got.Checks)-1].Time)
	}
	if got := get("?zone=dnsbl.example"); got.Checks == nil || len(got.Checks) != 0 {
		t.Errorf("history of an unknown zone = %#v; want an empty list", got.Checks)
	}
	for q, param := range map[string]string{
		"?address=198.51.100":               "address",
		"?address=fe80::1%25eth0":           "address",
		"?address=mail.example":             "address",
		"?limit=0":                          "limit",
		"?limit=10001":                      "limit",
		"?limit=x":                          "limit",
		"?zone=zen.spamhaus.org%3Bdrop":     "zone",
		"?zone=" + strings.Repeat("a", 254): "zone",
		"?adress=198.51.100.25":             "adress",
	} {
		w := h.do(t, "GET", "/api/v1/reputation/history"+q, bearer, "")
		if msg := decodeError(t, w); w.Code != http.StatusBadRequest || !strings.Contains(msg, param) {
			t.Errorf("GET /api/v1/reputation/history%s = %d %q; want 400 naming %s", q, w.Code, msg, param)
		}
	}
	if w := h.do(t, "GET", "/api/v1/reputation/history", "", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("without credentials = %d, want 401", w.Code)
	}
	// Without the dependency: 501.
	if w := newHarness(t).do(t, "GET", "/api/v1/reputation/history", bearer, ""); w.Code != http.StatusNotImplemented {
		t.Errorf("without ReputationHistory = %d, want 501", w.Code)
	}
}
