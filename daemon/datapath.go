package daemon

import (
	"sync"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/webui"
)

// liveness follows the heartbeat that keeps the kernel's diversion alive.
// The kernel drops the diversion when its alive element is not refreshed
// within its timeout, so the diversion is alive only while the last refresh
// succeeded and is younger than that timeout; a failed refresh ends it at
// once (the element may still count down, but nothing renews it).
type liveness struct {
	ttl time.Duration // the alive element's timeout, e.g. bridge.AliveTimeout

	mu      sync.Mutex
	lastOK  time.Time
	failing bool
}

// streak is what one heartbeat result changed.
type streak int

const (
	streakSame    streak = iota
	streakFailing        // the first failure after successes (or none yet)
	streakHealed         // the first success after failures
)

// record notes the result of a heartbeat at now.
func (l *liveness) record(err error, now time.Time) streak {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil && !l.failing:
		l.failing = true
		return streakFailing
	case err != nil:
		return streakSame
	}
	l.lastOK = now
	if l.failing {
		l.failing = false
		return streakHealed
	}
	return streakSame
}

// alive reports whether the diversion is alive at now.
func (l *liveness) alive(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.failing && !l.lastOK.IsZero() && now.Sub(l.lastOK) < l.ttl
}

// dataPathState is what decides the data path's state.
type dataPathState struct {
	mode config.Mode
	// proxyServing: the proxy serves (enforce mode diverts to it).
	proxyServing bool
	// alive: the heartbeat keeps the kernel's diversion alive.
	alive bool
	// inspectOn: inspect.enabled is not false.
	inspectOn bool
	// capturing: passive capture reads every bridge port.
	capturing bool
}

// dataPath returns the data path's state in one word (webui.DataPath*) and
// whether it does what the mode promises (Status.Serving).
func dataPath(s dataPathState) (word string, serving bool) {
	if s.mode == config.Enforce {
		if s.proxyServing && s.alive {
			return webui.DataPathDiverting, true
		}
		return webui.DataPathFailSafe, false
	}
	if s.inspectOn && s.capturing {
		return webui.DataPathWatching, true
	}
	return webui.DataPathNotWatching, false
}
