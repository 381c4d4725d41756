package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSeries(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	s, err := Open(ctx, t.TempDir(), Options{Now: func() time.Time { return now }, PruneInterval: -1, Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m0 := now.Truncate(time.Minute)
	s.AddSeries(SeriesRelayMessages, "relay-a", now, 2)
	s.AddSeries(SeriesRelayMessages, "relay-a", now.Add(10*time.Second), 3)
	s.AddSeries(SeriesRelayMessages, "relay-b", now.Add(time.Minute), 7)
	s.AddSeries(SeriesRelayMessages, "relay-a", time.Time{}, 1) // zero time: now
	s.AddSeries(SeriesDeferred, "relay-a", now, 1)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A second round adds to the stored minute.
	s.AddSeries(SeriesRelayMessages, "relay-a", now, 4)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Series(ctx, SeriesQuery{Metric: SeriesRelayMessages})
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{
		{SeriesRelayMessages, "relay-a", m0, 10},
		{SeriesRelayMessages, "relay-b", m0.Add(time.Minute), 7},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Series (-want +got):\n%s", diff)
	}
	got, _ = s.Series(ctx, SeriesQuery{Metric: SeriesRelayMessages, Key: "relay-b", Since: m0, Until: m0.Add(time.Minute)})
	if len(got) != 0 {
		t.Errorf("Series with Until excluding the minute = %v; want none", got)
	}
	top, err := s.TopKeys(ctx, SeriesRelayMessages, m0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]KeyTotal{{"relay-a", 10}}, top); diff != "" {
		t.Errorf("TopKeys (-want +got):\n%s", diff)
	}
	// Retention removes old minutes.
	now = now.Add(48 * time.Hour)
	if _, err := s.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Series(ctx, SeriesQuery{Metric: SeriesRelayMessages}); len(got) != 0 {
		t.Errorf("after retention, Series = %v; want none", got)
	}
}

// fillWide adds keys x minutes points of SeriesBlocked ending at the
// minute of now, key k at minute i worth k+i+1 (and a second metric, which
// must not count), and returns the first minute and the expected total of
// each minute.
func fillWide(ctx context.Context, t *testing.T, s *Store, now time.Time, keys, minutes int) (time.Time, []int64) {
	t.Helper()
	m0 := now.Truncate(time.Minute).Add(-time.Duration(minutes-1) * time.Minute)
	want := make([]int64, minutes)
	for i := range minutes {
		m := m0.Add(time.Duration(i) * time.Minute)
		for k := range keys {
			s.AddSeries(SeriesBlocked, fmt.Sprintf("10.%d.%d.%d", k>>16, (k>>8)&255, k&255), m, int64(k+i+1))
			want[i] += int64(k + i + 1)
		}
		s.AddSeries(SeriesDeferred, "relay", m, 1000)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return m0, want
}

// TestSeriesWideRange: 2000 keys over 100 minutes are 200,000 points, twice
// the cap of one answer. The per-minute totals are still exact and reach
// the newest minute, and a capped Series keeps the newest minutes.
func TestSeriesWideRange(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)
	s, err := Open(ctx, t.TempDir(), Options{Now: func() time.Time { return now }, PruneInterval: -1, Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const keys, minutes = 2000, 100
	m0, sums := fillWide(ctx, t, s, now, keys, minutes)
	newest := m0.Add((minutes - 1) * time.Minute)

	tot, err := s.SeriesTotals(ctx, SeriesBlocked, m0, newest.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var want []Point
	for i, v := range sums {
		want = append(want, Point{Metric: SeriesBlocked, Minute: m0.Add(time.Duration(i) * time.Minute), Value: v})
	}
	if diff := cmp.Diff(want, tot); diff != "" {
		t.Errorf("SeriesTotals (-want +got):\n%s", diff)
	}
	// Bounds: since inclusive, until exclusive.
	tot, err = s.SeriesTotals(ctx, SeriesBlocked, m0.Add(time.Minute), newest)
	if err != nil || len(tot) != minutes-2 || !tot[0].Minute.Equal(m0.Add(time.Minute)) || !tot[len(tot)-1].Minute.Equal(newest.Add(-time.Minute)) {
		t.Errorf("SeriesTotals(m0+1, newest) = %d points, %v; want minutes 1 to %d", len(tot), err, minutes-2)
	}

	pts, err := s.Series(ctx, SeriesQuery{Metric: SeriesBlocked})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) == 0 || !pts[len(pts)-1].Minute.Equal(newest) {
		t.Fatalf("Series over the cap: %d points, the newest minute missing", len(pts))
	}
	pts, truncated, err := s.SeriesNewest(ctx, SeriesQuery{Metric: SeriesBlocked}, MaxSeriesPoints)
	if err != nil {
		t.Fatal(err)
	}
	// 50 whole minutes fit exactly; the answer is the newest 50, each whole.
	perMinute := map[time.Time]int64{}
	for _, p := range pts {
		perMinute[p.Minute] += p.Value
	}
	if !truncated || len(pts) != MaxSeriesPoints || len(perMinute) != 50 || !pts[0].Minute.Equal(m0.Add(50*time.Minute)) {
		t.Errorf("SeriesNewest = %d points in %d minutes from %v, truncated %v; want %d in the newest 50, truncated",
			len(pts), len(perMinute), pts[0].Minute, truncated, MaxSeriesPoints)
	}
	for m, v := range perMinute {
		if i := int(m.Sub(m0) / time.Minute); v != sums[i] {
			t.Errorf("SeriesNewest minute %d sums to %d, want %d", i, v, sums[i])
		}
	}
	// A limit that cuts a minute leaves that minute out entirely.
	pts, truncated, err = s.SeriesNewest(ctx, SeriesQuery{Metric: SeriesBlocked}, keys+10)
	if err != nil || !truncated || len(pts) != keys || !pts[0].Minute.Equal(newest) || !pts[keys-1].Minute.Equal(newest) {
		t.Errorf("SeriesNewest(limit %d) = %d points, truncated %v, %v; want the %d of the newest minute", keys+10, len(pts), truncated, err, keys)
	}
	// Oldest first, by key within a minute.
	if pts[0].Key != "10.0.0.0" || pts[1].Key != "10.0.0.1" {
		t.Errorf("SeriesNewest order: %q, %q first; want by key", pts[0].Key, pts[1].Key)
	}
	pts, truncated, err = s.SeriesNewest(ctx, SeriesQuery{Metric: SeriesBlocked, Key: "10.0.0.7"}, 0)
	if err != nil || truncated || len(pts) != minutes || !pts[0].Minute.Equal(m0) || !pts[minutes-1].Minute.Equal(newest) {
		t.Errorf("SeriesNewest of one key = %d points, truncated %v, %v; want all %d", len(pts), truncated, err, minutes)
	}
}
