package daemon

import (
	"context"
	"time"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/store"
)

// shedInterval is how often the kernel's shed counters are sampled.
const shedInterval = 5 * time.Second

// shedCounters are the ruleset counters of attempts the kernel sheds
// without the proxy seeing them: floods, resets while not serving, tagged
// and stacked-tag non-relay frames, TCP fragments.
var shedCounters = []string{bridge.CounterFloodDropped, bridge.CounterReset, bridge.CounterTaggedDropped,
	bridge.CounterStackedDropped, bridge.CounterFragDropped}

// seriesAdder is the store's per-minute series, as the sampler uses it.
type seriesAdder interface {
	AddSeries(metric, key string, t time.Time, delta int64)
}

var _ seriesAdder = (*store.Store)(nil)

// shedSampler turns the ruleset's cumulative packet counters of shed
// attempts into the per-minute series store.SeriesShed, so that charts can
// show them. It is not safe for concurrent use.
type shedSampler struct {
	read   func() map[string]uint64 // e.g. (*bridge.Bridge).Counters
	series seriesAdder
	last   map[string]uint64
}

func newShedSampler(read func() map[string]uint64, series seriesAdder) *shedSampler {
	return &shedSampler{read: read, series: series, last: map[string]uint64{}}
}

// sample reads the counters and adds what each grew since the last reading
// to the minute of now. The first reading of a counter is its baseline. A
// counter that went down (its ruleset was rebuilt without carrying it over)
// starts again from its new value: nothing is added for that reading.
func (s *shedSampler) sample(now time.Time) {
	cur := s.read()
	for _, name := range shedCounters {
		v, ok := cur[name]
		if !ok {
			continue // not in this ruleset (e.g. monitor mode): keep the baseline
		}
		prev, seen := s.last[name]
		s.last[name] = v
		if seen && v > prev {
			s.series.AddSeries(store.SeriesShed, name, now, int64(v-prev))
		}
	}
}

// run samples every interval until ctx ends, and once more then.
func (s *shedSampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.sample(time.Now())
			return
		case now := <-t.C:
			s.sample(now)
		}
	}
}
