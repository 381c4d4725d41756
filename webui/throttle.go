package webui

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// throttle counts failures per key and locks a key out after too many.
type throttle struct {
	mu      sync.Mutex
	now     func() time.Time
	max     int
	window  time.Duration
	lockout time.Duration
	m       map[string]*throttleEntry
}

type throttleEntry struct {
	fails  []time.Time
	locked time.Time // locked until
}

func newThrottle(now func() time.Time, max int, window, lockout time.Duration) *throttle {
	return &throttle{now: now, max: max, window: window, lockout: lockout, m: map[string]*throttleEntry{}}
}

// retryAfter returns how long key is still locked out, or 0.
func (t *throttle) retryAfter(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[key]
	if e == nil {
		return 0
	}
	return max(e.locked.Sub(t.now()), 0)
}

// fail records a failure of key; when it reaches the maximum the key is
// locked out.
func (t *throttle) fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.m) >= maxThrottleKeys {
		t.pruneLocked(now)
	}
	e := t.m[key]
	if e == nil {
		e = &throttleEntry{}
		t.m[key] = e
	}
	keep := e.fails[:0]
	for _, f := range e.fails {
		if now.Sub(f) < t.window {
			keep = append(keep, f)
		}
	}
	e.fails = append(keep, now)
	if len(e.fails) >= t.max {
		e.locked = now.Add(t.lockout)
		e.fails = nil
	}
}

// reset forgets key's failures (after a successful login).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}

func (t *throttle) pruneLocked(now time.Time) {
	for k, e := range t.m {
		if now.After(e.locked) && (len(e.fails) == 0 || now.Sub(e.fails[len(e.fails)-1]) >= t.window) {
			delete(t.m, k)
		}
	}
	if len(t.m) >= maxThrottleKeys {
		// Still full of live entries: an attack; forget the oldest half
		// rather than grow without bound. Lockouts of addresses stay.
		n := 0
		for k, e := range t.m {
			if now.After(e.locked) {
				delete(t.m, k)
				if n++; n >= maxThrottleKeys/2 {
					break
				}
			}
		}
	}
}

// setRetryAfter sets Retry-After in whole seconds, rounded up.
func setRetryAfter(c *gin.Context, d time.Duration) {
	c.Header("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}

// loginThrottled answers 429 when the client address or the username is
// locked out; it reports whether it did.
func (s *server) loginThrottled(c *gin.Context, username string, p *pageData) bool {
	wait := max(s.ipThrottle.retryAfter(remoteAddr(c)), s.userThrottle.retryAfter(strings.ToLower(username)))
	if wait <= 0 {
		return false
	}
	setRetryAfter(c, wait)
	p.Error = fmt.Sprintf(p.M["err_throttled"], int((wait+time.Minute-1)/time.Minute))
	s.render(c, http.StatusTooManyRequests, p.page, p)
	return true
}
