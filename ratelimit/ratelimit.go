// Package ratelimit counts what relays send in one-minute windows, so that
// the SMTP proxy can defer mail over a configured rate, and detects an
// envelope sender that suddenly sends far above its own baseline.
//
// Counter limits over a sliding minute: the count of the current calendar
// minute plus the previous minute's count weighted by the part of it that
// is still inside the last 60 seconds. So a burst that straddles a minute
// boundary meets the limit too (calendar windows would pass up to twice
// it), with two integers of state per key.
// Distinct counts per calendar minute (the minute of t, as in the store's
// per-minute series). Every type is safe for concurrent use and holds one
// short mutex per call; time is always passed in, so tests drive a fake
// clock.
package ratelimit

import (
	"sync"
	"time"
)

// maxKeys bounds the keys a Counter or Distinct remembers; beyond it, keys
// of past minutes are swept on the next call.
const maxKeys = 1 << 16

func minuteOf(t time.Time) int64 { return t.Unix() / 60 }

// Counter counts events per key in the current minute.
type Counter struct {
	mu sync.Mutex
	m  map[string]*slot
}

type slot struct {
	minute int64
	n      int // events in minute
	prev   int // events in minute-1
}

// advance moves s to minute m.
func (s *slot) advance(m int64) {
	switch {
	case s.minute == m:
	case s.minute == m-1:
		s.minute, s.prev, s.n = m, s.n, 0
	default:
		s.minute, s.prev, s.n = m, 0, 0
	}
}

// inWindow estimates the events in the 60 seconds before now: those of
// the current minute and, of the previous minute's, the share of it that
// is still inside the window (rounded to the nearest event).
func (s slot) inWindow(now time.Time) int {
	m := minuteOf(now)
	if s.minute > m {
		return s.n // a clock step back: be strict
	}
	s.advance(m)
	const minute = int64(time.Minute)
	left := minute - (now.UnixNano() - m*minute) // of the previous minute, in the window
	return s.n + int((int64(s.prev)*left+minute/2)/minute)
}

// NewCounter returns an empty counter.
func NewCounter() *Counter { return &Counter{m: map[string]*slot{}} }

// InWindow returns the events of key in the sliding minute before now
// (see the package comment).
func (c *Counter) InWindow(key string, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[key]; ok {
		return s.inWindow(now)
	}
	return 0
}

// Allow reports whether key had fewer than limit events in the sliding
// minute before now; a limit of 0 or less always allows.
func (c *Counter) Allow(key string, limit int, now time.Time) bool {
	return limit <= 0 || c.InWindow(key, now) < limit
}

// Add counts n events of key in the minute of now and returns the new count.
func (c *Counter) Add(key string, n int, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addLocked(key, n, minuteOf(now))
}

func (c *Counter) addLocked(key string, n int, m int64) int {
	s, ok := c.m[key]
	if !ok {
		if len(c.m) >= maxKeys {
			for k, s := range c.m {
				if s.minute < m-1 {
					delete(c.m, k)
				}
			}
		}
		s = &slot{minute: m}
		c.m[key] = s
	}
	if s.minute < m {
		s.advance(m)
	}
	s.n += n
	return s.n
}

// TakeIfAllowed counts one event of key unless key already had limit
// events in the sliding minute before now; it reports whether the event
// was counted. A limit of 0 or less always counts.
func (c *Counter) TakeIfAllowed(key string, limit int, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[key]; ok && limit > 0 && s.inWindow(now) >= limit {
		return false
	}
	c.addLocked(key, 1, minuteOf(now))
	return true
}

// Distinct counts distinct members per key in the current minute (e.g.
// remote MX addresses per relay).
type Distinct struct {
	mu sync.Mutex
	m  map[string]*set
}

type set struct {
	minute  int64
	members map[string]struct{}
}

// NewDistinct returns an empty Distinct.
func NewDistinct() *Distinct { return &Distinct{m: map[string]*set{}} }

// Admit adds member to key's set of the minute of now unless the set
// already holds limit other members; a member already in the set is always
// admitted, and a limit of 0 or less admits everything.
func (d *Distinct) Admit(key, member string, limit int, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := minuteOf(now)
	s, ok := d.m[key]
	if !ok || s.minute != m {
		if !ok && len(d.m) >= maxKeys {
			for k, s := range d.m {
				if s.minute != m {
					delete(d.m, k)
				}
			}
		}
		s = &set{minute: m, members: map[string]struct{}{}}
		d.m[key] = s
	}
	if _, ok := s.members[member]; ok {
		return true
	}
	if limit > 0 && len(s.members) >= limit {
		return false
	}
	s.members[member] = struct{}{}
	return true
}

// Gauge counts concurrent holders per key (e.g. open sessions per relay).
type Gauge struct {
	mu sync.Mutex
	m  map[string]int
}

// NewGauge returns an empty gauge.
func NewGauge() *Gauge { return &Gauge{m: map[string]int{}} }

// Acquire takes one slot of key unless limit are taken; a limit of 0 or
// less always succeeds. Every successful Acquire needs one Release.
func (g *Gauge) Acquire(key string, limit int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if limit > 0 && g.m[key] >= limit {
		return false
	}
	g.m[key]++
	return true
}

// Release gives back one slot of key.
func (g *Gauge) Release(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[key] <= 1 {
		delete(g.m, key)
		return
	}
	g.m[key]--
}

// Value returns the slots of key in use.
func (g *Gauge) Value(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[key]
}
