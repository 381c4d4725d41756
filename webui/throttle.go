package webui

import (
	"container/list"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/internal/sourcekey"
)

// throttle counts failures per key and locks a key out after too many.
//
// An attempt is counted as a failure before the password is checked
// (charge) and the count is given back when it did not fail (refund):
// parallel attempts of one key are bounded like sequential ones, and an
// attempt of a locked-out key costs no password hash.
//
// The table holds at most maxThrottleKeys keys; when it is full, the keys
// charged least recently go first (a list in charge order), so that a
// spray of new keys pushes out old ones, not the lockouts of the moment.
type throttle struct {
	mu      sync.Mutex
	now     func() time.Time
	max     int
	window  time.Duration
	lockout time.Duration
	m       map[string]*list.Element // value: *throttleEntry
	order   *list.List               // least recently charged first
	seq     charge
}

// charge identifies one counted attempt, for refund; 0 is none.
type charge uint64

type throttleEntry struct {
	key    string
	fails  []failure
	locked time.Time // locked until
	// lockedBy is the attempt that set locked; preLock the failures
	// before it, restored when that attempt is refunded.
	lockedBy charge
	preLock  []failure
}

type failure struct {
	at time.Time
	id charge
}

func newThrottle(now func() time.Time, max int, window, lockout time.Duration) *throttle {
	return &throttle{now: now, max: max, window: window, lockout: lockout, m: map[string]*list.Element{}, order: list.New()}
}

// retryAfter returns how long key is still locked out, or 0.
func (t *throttle) retryAfter(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.retryAfterLocked(key, t.now())
}

func (t *throttle) retryAfterLocked(key string, now time.Time) time.Duration {
	el := t.m[key]
	if el == nil {
		return 0
	}
	return max(el.Value.(*throttleEntry).locked.Sub(now), 0)
}

// attempt returns how long key is locked out; when it is not, it counts
// the attempt as a failure in advance and returns its charge, for refund
// when the attempt turns out not to be one.
func (t *throttle) attempt(key string) (wait time.Duration, c charge) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if wait := t.retryAfterLocked(key, now); wait > 0 {
		return wait, 0
	}
	return 0, t.failLocked(key, now)
}

func (t *throttle) failLocked(key string, now time.Time) charge {
	el := t.m[key]
	if el == nil {
		t.makeRoomLocked(now)
		el = t.order.PushBack(&throttleEntry{key: key})
		t.m[key] = el
	} else {
		t.order.MoveToBack(el)
	}
	e := el.Value.(*throttleEntry)
	t.seq++
	id := t.seq
	keep := make([]failure, 0, len(e.fails)+1)
	for _, f := range e.fails {
		if now.Sub(f.at) < t.window {
			keep = append(keep, f)
		}
	}
	e.fails = append(keep, failure{at: now, id: id})
	if len(e.fails) >= t.max {
		e.preLock = e.fails[:len(e.fails)-1]
		e.locked = now.Add(t.lockout)
		e.lockedBy = id
		e.fails = nil
	}
	return id
}

// refund gives back the failure counted by attempt c of key: the attempt
// succeeded, or was not made. A lockout that c set is lifted.
func (t *throttle) refund(key string, c charge) {
	if c == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	el := t.m[key]
	if el == nil {
		return
	}
	e := el.Value.(*throttleEntry)
	if e.lockedBy == c {
		e.locked, e.lockedBy, e.fails, e.preLock = time.Time{}, 0, e.preLock, nil
		return
	}
	for i, f := range e.fails {
		if f.id == c {
			e.fails = append(e.fails[:i], e.fails[i+1:]...)
			return
		}
	}
}

// reset forgets key's failures (after a successful login).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el := t.m[key]; el != nil {
		t.order.Remove(el)
		delete(t.m, key)
	}
}

// makeRoomLocked makes room for one new key: it forgets the keys that
// are neither locked nor have a failure in the window and, when the table
// is still full, the least recently charged keys, oldest first.
func (t *throttle) makeRoomLocked(now time.Time) {
	if len(t.m) < maxThrottleKeys {
		return
	}
	for el := t.order.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*throttleEntry)
		if !now.Before(e.locked) && (len(e.fails) == 0 || now.Sub(e.fails[len(e.fails)-1].at) >= t.window) {
			t.order.Remove(el)
			delete(t.m, e.key)
		}
		el = next
	}
	// Still full of live entries: a spray of keys. Forget the oldest
	// tenth at once, so that the next new keys do not each scan again.
	for n := len(t.m) - maxThrottleKeys*9/10; n > 0; n-- {
		el := t.order.Front()
		t.order.Remove(el)
		delete(t.m, el.Value.(*throttleEntry).key)
	}
}

// setRetryAfter sets Retry-After in whole seconds, rounded up.
func setRetryAfter(c *gin.Context, d time.Duration) {
	c.Header("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}

// sourceKey is the client's source as every per-source limit of the
// appliance counts it (sourcekey: an IPv4 address, an IPv6 /64).
func sourceKey(c *gin.Context) string {
	if ap, err := netip.ParseAddrPort(c.Request.RemoteAddr); err == nil {
		return sourcekey.Key(ap.Addr()).String()
	}
	return c.Request.RemoteAddr
}

// pairKey is the login throttle's key of a username from a source.
func pairKey(username, source string) string {
	return strings.ToLower(username) + " " + source
}

// passwordAttempt is one counted attempt at a password (or setup token):
// a failure in advance for the username from this source (pairs) and,
// when chargeSource, for the source whatever the username (sources).
// A failed attempt needs nothing more; ok and cancel settle the others.
type passwordAttempt struct {
	s              *server
	pair, source   string // keys; pair "" when not charged
	pairC, sourceC charge
}

// beginAttempt answers 429 when the client's source, or username from
// that source, is locked out, and reports false. Otherwise it counts the
// attempt as a failure of the pair (username from source; only for a
// valid username) and, when chargeSource, of the source, before any
// password is hashed, and returns the attempt to settle.
//
// There is no lockout of a username from every source: the attacker could
// use it to lock the rightful administrator out from their own address
// (docs/webui.md). Guessing from many sources is bounded by the hashing
// slots instead (maxConcurrentHashes).
func (s *server) beginAttempt(c *gin.Context, username string, chargeSource bool, p *pageData) (*passwordAttempt, bool) {
	a, wait := s.chargeAttempt(c, username, chargeSource)
	if wait <= 0 {
		return a, true
	}
	setRetryAfter(c, wait)
	p.Error = fmt.Sprintf(p.M["err_throttled"], int((wait+time.Minute-1)/time.Minute))
	s.render(c, http.StatusTooManyRequests, p.page, p)
	return nil, false
}

// chargeAttempt is beginAttempt without the answer: it returns the
// attempt to settle, or how long the source or pair is locked out (nil
// attempt then).
func (s *server) chargeAttempt(c *gin.Context, username string, chargeSource bool) (*passwordAttempt, time.Duration) {
	a := &passwordAttempt{s: s, source: sourceKey(c)}
	if validUsername(username) {
		a.pair = pairKey(username, a.source)
	}
	wait := s.sourceThrottle.retryAfter(a.source)
	if wait <= 0 && a.pair != "" {
		wait, a.pairC = s.pairThrottle.attempt(a.pair)
	}
	if wait <= 0 && chargeSource {
		if wait, a.sourceC = s.sourceThrottle.attempt(a.source); wait > 0 {
			s.pairThrottle.refund(a.pair, a.pairC) // a concurrent attempt locked the source
		}
	}
	if wait > 0 {
		return nil, wait
	}
	return a, 0
}

// ok settles a successful attempt: the pair's failures are forgotten,
// the source's advance count given back.
func (a *passwordAttempt) ok() {
	if a.pair != "" {
		a.s.pairThrottle.reset(a.pair)
	}
	a.s.sourceThrottle.refund(a.source, a.sourceC)
}

// cancel settles an attempt that was not made (no hashing slot): nothing
// is counted.
func (a *passwordAttempt) cancel() {
	a.s.pairThrottle.refund(a.pair, a.pairC)
	a.s.sourceThrottle.refund(a.source, a.sourceC)
}

// hashBusy answers a request that got no hashing slot: 429 with
// Retry-After and nothing else done; the form again with the message, or
// a JSON error on the API.
func (s *server) hashBusy(c *gin.Context, p *pageData, err error) {
	s.log.Warn("password hashing busy: request refused", "err", err, "path", c.Request.URL.Path, "remote", remoteAddr(c))
	setRetryAfter(c, s.hashes.wait)
	if isAPI(c.Request.URL.Path) || p == nil {
		abortError(c, http.StatusTooManyRequests, "busy checking other passwords: try again in a few seconds")
		return
	}
	p.Error = p.M["err_hash_busy"]
	s.render(c, http.StatusTooManyRequests, p.page, p)
}
