package smtpproxy

import (
	"sync"
	"time"
)

// eventEvery bounds the events a flood would repeat: at most one per key
// in this period (a source refused at the connection caps; a relay, limit
// and sender for deferrals; a relay and MX for sessions the MX never
// took), so that a bot's connection flood, a stolen account's retries or a
// relay's queue against a dead MX cannot flood the store. Metrics and
// per-minute series count every one.
const eventEvery = time.Minute

// maxThrottleKeys bounds the keys an eventThrottle remembers. When that
// many keys had an event within eventEvery, events of new keys are held
// back too (and counted only in metrics and series).
const maxThrottleKeys = 4096

// eventThrottle lets one event per key through in every eventEvery and
// counts those it holds back, for the next recorded event of that key to
// report.
type eventThrottle[K comparable] struct {
	mu   sync.Mutex
	last map[K]throttled
}

type throttled struct {
	at   time.Time // last recorded event
	held int       // events held back since
}

// allow reports whether an event for key at now is recorded; if so, held
// is the number of events for key held back since the last recorded one,
// which was at since.
func (t *eventThrottle[K]) allow(key K, now time.Time) (ok bool, held int, since time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[K]throttled{}
	}
	e, seen := t.last[key]
	if seen && now.Sub(e.at) < eventEvery {
		e.held++
		t.last[key] = e
		return false, 0, time.Time{}
	}
	if !seen && len(t.last) >= maxThrottleKeys {
		for k, v := range t.last {
			if now.Sub(v.at) >= eventEvery {
				delete(t.last, k)
			}
		}
		if len(t.last) >= maxThrottleKeys {
			return false, 0, time.Time{}
		}
	}
	t.last[key] = throttled{at: now}
	return true, e.held, e.at
}
