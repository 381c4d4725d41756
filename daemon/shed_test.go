package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seriesRec records AddSeries calls.
type seriesRec struct{ adds []seriesAdd }

type seriesAdd struct {
	Metric, Key string
	T           time.Time
	Delta       int64
}

func (r *seriesRec) AddSeries(metric, key string, t time.Time, delta int64) {
	r.adds = append(r.adds, seriesAdd{metric, key, t, delta})
}

func TestShedSampler(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * shedInterval) }
	type counters = map[string]uint64
	for _, tc := range []struct {
		name     string
		readings []counters
		want     []seriesAdd
	}{
		{"first reading is the baseline", []counters{{"flood_dropped": 500, "reset": 7, "tagged_dropped": 3}}, nil},
		{"deltas per counter", []counters{
			{"flood_dropped": 500, "reset": 7, "tagged_dropped": 3},
			{"flood_dropped": 520, "reset": 7, "tagged_dropped": 4},
			{"flood_dropped": 521, "reset": 9, "tagged_dropped": 4},
		}, []seriesAdd{
			{"shed", "flood_dropped", at(1), 20}, {"shed", "tagged_dropped", at(1), 1},
			{"shed", "flood_dropped", at(2), 1}, {"shed", "reset", at(2), 2},
		}},
		{"a counter that goes down restarts from its new value", []counters{
			{"flood_dropped": 500},
			{"flood_dropped": 40},
			{"flood_dropped": 45},
		}, []seriesAdd{{"shed", "flood_dropped", at(2), 5}}},
		{"unknown counters are ignored", []counters{
			{"smtp_packets": 1, "diverted": 1, "returned": 0, "tagged_relay": 0},
			{"smtp_packets": 900, "diverted": 800, "returned": 700, "tagged_relay": 6},
		}, nil},
		{"a counter missing from a reading keeps its baseline", []counters{
			{"reset": 10},
			{},
			{"reset": 12},
		}, []seriesAdd{{"shed", "reset", at(2), 2}}},
		{"a counter appearing later starts with a baseline", []counters{
			{},
			{"reset": 10},
			{"reset": 11},
		}, []seriesAdd{{"shed", "reset", at(2), 1}}},
		{"no reading, nothing added", []counters{nil, nil}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			rec := &seriesRec{}
			s := newShedSampler(func() map[string]uint64 { return tc.readings[i] }, rec)
			for i = range tc.readings {
				s.sample(at(i))
			}
			if diff := cmp.Diff(tc.want, rec.adds); diff != "" {
				t.Errorf("AddSeries calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShedSamplerRunSamplesAtTheEnd(t *testing.T) {
	n := uint64(0)
	rec := &seriesRec{}
	s := newShedSampler(func() map[string]uint64 { n += 3; return map[string]uint64{"flood_dropped": n} }, rec)
	s.sample(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.run(ctx, time.Hour)
	if len(rec.adds) != 1 || rec.adds[0].Delta != 3 || rec.adds[0].Key != "flood_dropped" {
		t.Errorf("run with an ended context: AddSeries calls %+v, want one of 3 for flood_dropped", rec.adds)
	}
}
