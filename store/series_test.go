package store

import (
	"context"
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
