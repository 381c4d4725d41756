package webui

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/store"
)

// TestMemSeriesContract pins the test fake memSeries to the store: the
// same points give the same SeriesNewest and SeriesTotals answers.
func TestMemSeriesContract(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{PruneInterval: -1, Retention: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mem := &memSeries{}
	m0 := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	for i := range 10 {
		m := m0.Add(time.Duration(i) * time.Minute)
		for k := range 3 + i%3 {
			key := fmt.Sprintf("10.20.0.%d", k)
			st.AddSeries(MetricBlocked, key, m, int64(i*10+k))
			mem.add(MetricBlocked, key, m, int64(i*10+k))
		}
		st.AddSeries(MetricDeferred, "relay", m, 7)
		mem.add(MetricDeferred, "relay", m, 7)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	conv := func(ps []store.Point) []Point {
		out := []Point{}
		for _, p := range ps {
			out = append(out, Point{Metric: p.Metric, Key: p.Key, Minute: p.Minute, Value: p.Value})
		}
		return out
	}
	since, until := m0.Add(time.Minute), m0.Add(9*time.Minute)
	for _, limit := range []int{1, 4, 5, 9, 10, 100} {
		for _, key := range []string{"", "10.20.0.1"} {
			sp, strunc, err := st.SeriesNewest(ctx, store.SeriesQuery{Metric: MetricBlocked, Key: key, Since: since, Until: until}, limit)
			if err != nil {
				t.Fatal(err)
			}
			mp, mtrunc, _ := mem.SeriesNewest(ctx, MetricBlocked, key, since, until, limit)
			if mp == nil {
				mp = []Point{}
			}
			if diff := cmp.Diff(conv(sp), mp); diff != "" || strunc != mtrunc {
				t.Errorf("SeriesNewest(key %q, limit %d): truncated store %v, fake %v; points (-store +fake):\n%s", key, limit, strunc, mtrunc, diff)
			}
		}
	}
	stot, err := st.SeriesTotals(ctx, MetricBlocked, since, until)
	if err != nil {
		t.Fatal(err)
	}
	mtot, _ := mem.SeriesTotals(ctx, MetricBlocked, since, until)
	if diff := cmp.Diff(conv(stot), mtot); diff != "" {
		t.Errorf("SeriesTotals (-store +fake):\n%s", diff)
	}
}
