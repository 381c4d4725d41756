package webui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// Wrong passwords for admin from one source lock out that pair only: the
// rightful administrator logs in from their own address meanwhile.
func TestLoginThrottlePerPair(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	attacker := h.browser(t)
	attacker.remote = "198.51.100.7:5555"
	for i := range pairMaxFails {
		if w := attacker.login(adminUser, "wrong password "+strconv.Itoa(i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i, w.Code)
		}
	}
	// The attacker's pair is locked out: even the right password gets 429.
	w := attacker.login(adminUser, adminPass)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("login from the locked pair = %d, want 429", w.Code)
	}
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra < 1 || ra > int(lockoutFor/time.Second) {
		t.Errorf("Retry-After = %q, want 1..%d seconds", w.Header().Get("Retry-After"), int(lockoutFor/time.Second))
	}
	if attacker.cookie != "" {
		t.Error("a locked-out login got a session")
	}
	// The administrator, elsewhere, is not locked out.
	admin := h.browser(t)
	admin.remote = "192.0.2.10:40000"
	if w := admin.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Fatalf("login from another source while the attacker's pair is locked = %d, want 303", w.Code)
	}
	// Nor does the admin's success unlock the attacker's pair.
	if w := attacker.login(adminUser, adminPass); w.Code != http.StatusTooManyRequests {
		t.Errorf("attacker's pair after the admin's login = %d, want 429", w.Code)
	}
	// The lockout expires.
	h.clock.Advance(lockoutFor + time.Second)
	if w := attacker.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Errorf("login after the lockout = %d, want 303", w.Code)
	}
}

// IPv6 sources in one /64 are one source for the throttle (sourcekey).
func TestLoginThrottleIPv6Per64(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	for i := range pairMaxFails {
		// A new address of the same /64 each time.
		b.remote = "[2001:db8:1:2::" + strconv.Itoa(i+1) + "]:5555"
		if w := b.login(adminUser, "wrong password"); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i, w.Code)
		}
	}
	b.remote = "[2001:db8:1:2:ffff:ffff:ffff:ffff]:5555"
	if w := b.login(adminUser, adminPass); w.Code != http.StatusTooManyRequests {
		t.Errorf("login from the same /64 = %d, want 429", w.Code)
	}
	b.remote = "[2001:db8:1:3::1]:5555"
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Errorf("login from the next /64 = %d, want 303", w.Code)
	}
}

func TestLoginThrottlePerSource(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	for i := range sourceMaxFails {
		// A different username each time: the per-source limit catches it.
		b.login("user"+strconv.Itoa(i), "wrong password")
	}
	w := b.login(adminUser, adminPass)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("login from a locked source = %d, Retry-After %q, want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	// Another source is not affected.
	b.remote = "203.0.113.9:1234"
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Errorf("login from another source = %d, want 303", w.Code)
	}
}

// A successful login gives its advance count back: successes never add
// up to a lockout of the source.
func TestLoginSuccessNotCounted(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	for i := range sourceMaxFails + 2 {
		if w := h.browser(t).login(adminUser, adminPass); w.Code != http.StatusSeeOther {
			t.Fatalf("login %d = %d, want 303", i, w.Code)
		}
	}
}

// Attempts are counted before the password is hashed: with pairMaxFails
// attempts of one pair still hashing, the next is refused at once,
// without a hash.
func TestLoginCountedBeforeHashing(t *testing.T) {
	d, h := testDeps(t)
	entered, release := make(chan struct{}, 100), make(chan struct{})
	d.hashSlots = 100
	d.hashHook = func() {
		entered <- struct{}{}
		<-release
	}
	h.router = NewRouter(d)
	h.addAdmin(t)
	var wg sync.WaitGroup
	codes := make([]int, pairMaxFails)
	for i := range pairMaxFails {
		b := h.browser(t)
		wg.Go(func() {
			codes[i] = b.do("POST", "/login", url.Values{"username": {adminUser}, "password": {"wrong"}}, nil).Code
		})
	}
	for range pairMaxFails {
		<-entered
	}
	w := h.browser(t).login(adminUser, adminPass)
	close(release)
	wg.Wait()
	if w.Code != http.StatusTooManyRequests {
		t.Errorf("attempt %d while %d are hashing = %d, want 429", pairMaxFails+1, pairMaxFails, w.Code)
	}
	if n := len(entered); n != 0 {
		t.Errorf("the refused attempt hashed (%d more hashes)", n)
	}
	for i, c := range codes {
		if c != http.StatusUnauthorized {
			t.Errorf("wrong password %d = %d, want 401", i, c)
		}
	}
}

// At most maxConcurrentHashes passwords are hashed at once; a login that
// gets no slot within the wait is answered 429 with Retry-After, counts
// nothing and changes nothing; with a longer wait every one gets through.
func TestLoginHashConcurrency(t *testing.T) {
	const n = 12
	for _, tc := range []struct {
		name string
		wait time.Duration
		all  bool // every login must succeed
	}{
		// The first two hold their slots until the other ten have
		// been answered: those got 429 after the wait.
		{"short wait: the rest get 429", 50 * time.Millisecond, false},
		{"long wait: every login waits its turn", 20 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, h := testDeps(t)
			var cur, peak, hashes atomic.Int32
			release := make(chan struct{})
			if tc.all {
				close(release)
			}
			d.hashWait = tc.wait
			d.hashHook = func() {
				hashes.Add(1)
				c := cur.Add(1)
				for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
				}
				<-release
				time.Sleep(10 * time.Millisecond)
				cur.Add(-1)
			}
			h.router = NewRouter(d)
			h.addAdmin(t)
			var wg sync.WaitGroup
			res := make([]*httptest.ResponseRecorder, n)
			done := make(chan struct{}, n)
			for i := range n {
				b := h.browser(t)
				b.remote = "192.0.2." + strconv.Itoa(10+i) + ":40000"
				wg.Go(func() {
					res[i] = b.do("POST", "/login", url.Values{"username": {adminUser}, "password": {adminPass}}, nil)
					done <- struct{}{}
				})
			}
			if !tc.all {
				for range n - maxConcurrentHashes {
					<-done
				}
				close(release)
			}
			wg.Wait()
			if p := peak.Load(); p > maxConcurrentHashes || p < 1 {
				t.Errorf("%d hashes at once, want 1..%d", p, maxConcurrentHashes)
			}
			ok, busy := 0, 0
			for i, w := range res {
				switch w.Code {
				case http.StatusSeeOther:
					ok++
				case http.StatusTooManyRequests:
					busy++
					if w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "busy checking other passwords") {
						t.Errorf("login %d: 429 with Retry-After %q and body without the message", i, w.Header().Get("Retry-After"))
					}
					if len(w.Result().Cookies()) != 0 {
						t.Errorf("login %d: 429 set a cookie", i)
					}
				default:
					t.Errorf("login %d = %d, want 303 or 429", i, w.Code)
				}
			}
			if int(hashes.Load()) != ok {
				t.Errorf("%d hashes for %d successful logins", hashes.Load(), ok)
			}
			if (tc.all && ok != n) || (!tc.all && (ok != maxConcurrentHashes || busy != n-maxConcurrentHashes)) {
				t.Errorf("%d logins succeeded, %d got 429", ok, busy)
			}
			// Nothing else happened to the refused ones: no failure in
			// the audit log, and their source can log in now.
			for _, a := range h.auditActions(t) {
				if a != "login" {
					t.Errorf("audit action %q", a)
				}
			}
			for i, w := range res {
				if w.Code == http.StatusTooManyRequests {
					b := h.browser(t)
					b.remote = "192.0.2." + strconv.Itoa(10+i) + ":40000"
					if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
						t.Errorf("login %d again after its 429 = %d, want 303", i, w.Code)
					}
				}
			}
		})
	}
}

// The API answers a busy hashing gate with a JSON error (no API path
// hashes a password today; the helper is ready for one).
func TestHashBusyJSON(t *testing.T) {
	s := &server{log: testLogger(t), hashes: newHashGate(1, 2*time.Second, nil)}
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest("POST", "/api/v1/whatever", nil)
	s.hashBusy(c, nil, errHashBusy)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" {
		t.Errorf("hashBusy on the API = %d, Retry-After %q, want 429 and 2", w.Code, w.Header().Get("Retry-After"))
	}
	if msg := decodeError(t, w); !strings.Contains(msg, "busy") {
		t.Errorf("error %q", msg)
	}
}

func TestThrottleWindow(t *testing.T) {
	clock := &testClock{}
	th := newThrottle(clock.Now, 3, time.Minute, 5*time.Minute)
	th.attempt("k")
	th.attempt("k")
	clock.Advance(61 * time.Second) // the first two fall out of the window
	th.attempt("k")
	th.attempt("k")
	if d := th.retryAfter("k"); d != 0 {
		t.Fatalf("locked after failures spread over more than the window: %v", d)
	}
	th.attempt("k")
	if d := th.retryAfter("k"); d <= 4*time.Minute || d > 5*time.Minute {
		t.Fatalf("retryAfter after 3 failures in the window = %v, want about 5m", d)
	}
	if d, c := th.attempt("k"); d == 0 || c != 0 {
		t.Errorf("attempt while locked = %v, %d, want a wait and no charge", d, c)
	}
	if d := th.retryAfter("other"); d != 0 {
		t.Errorf("another key is locked: %v", d)
	}
	clock.Advance(5 * time.Minute)
	if d := th.retryAfter("k"); d != 0 {
		t.Errorf("still locked after the lockout: %v", d)
	}
	th.attempt("k")
	th.reset("k")
	th.attempt("k")
	th.attempt("k")
	if d := th.retryAfter("k"); d != 0 {
		t.Errorf("reset did not forget failures: %v", d)
	}
}

func TestThrottleRefund(t *testing.T) {
	clock := &testClock{}
	th := newThrottle(clock.Now, 3, time.Minute, 5*time.Minute)
	_, c1 := th.attempt("k")
	th.refund("k", c1)
	th.attempt("k")
	th.attempt("k")
	if d := th.retryAfter("k"); d != 0 {
		t.Fatalf("a refunded attempt still counts: locked for %v", d)
	}
	// The attempt that locks the key is refunded: the lockout is lifted
	// and the failures before it stay.
	_, c3 := th.attempt("k")
	if d := th.retryAfter("k"); d == 0 {
		t.Fatal("not locked after 3 failures")
	}
	th.refund("k", c3)
	if d := th.retryAfter("k"); d != 0 {
		t.Fatalf("locked after refunding the attempt that locked it: %v", d)
	}
	th.attempt("k")
	if d := th.retryAfter("k"); d == 0 {
		t.Error("the failures before the refunded attempt were forgotten")
	}
}

// A full table forgets expired keys first, then the least recently
// charged ones, oldest first; never a random choice.
func TestThrottleEvictsOldest(t *testing.T) {
	clock := &testClock{}
	th := newThrottle(clock.Now, 1, time.Minute, time.Hour) // every key locked at once
	for i := range maxThrottleKeys {
		th.attempt("k" + strconv.Itoa(i))
	}
	th.attempt("k0") // locked: no charge, and no refresh of its place
	th.attempt("new")
	if len(th.m) > maxThrottleKeys || len(th.m) != th.order.Len() {
		t.Fatalf("%d entries (%d in order), want at most %d", len(th.m), th.order.Len(), maxThrottleKeys)
	}
	evicted := maxThrottleKeys - len(th.m) + 1
	for i := range maxThrottleKeys {
		k := "k" + strconv.Itoa(i)
		if gone := th.retryAfter(k) == 0; gone != (i < evicted) {
			t.Fatalf("key %d of %d (oldest first): evicted %v, want %v (%d evicted)", i, maxThrottleKeys, gone, i < evicted, evicted)
		}
	}
	if th.retryAfter("new") == 0 {
		t.Error("the new key is not locked")
	}
	// Expired entries go before live ones, whatever their age.
	th2 := newThrottle(clock.Now, 1, time.Minute, time.Hour)
	th2.attempt("old-live")
	clock.Advance(time.Minute)
	for i := range maxThrottleKeys - 1 {
		th2.attempt("x" + strconv.Itoa(i))
		th2.refund("x"+strconv.Itoa(i), charge(th2.seq)) // unlocked, no failure: dead
	}
	th2.attempt("fresh")
	if th2.retryAfter("old-live") == 0 {
		t.Error("a live lockout was evicted while dead entries remained")
	}
	if len(th2.m) != 2 {
		t.Errorf("%d entries after pruning dead ones, want 2", len(th2.m))
	}
}

// Setup and the password change take a hashing slot too: without one
// they answer 429 with Retry-After and change nothing.
func TestHashBusySetupAndPasswordChange(t *testing.T) {
	d, h := testDeps(t)
	hold, release := make(chan struct{}), make(chan struct{})
	var holding atomic.Bool
	d.hashSlots, d.hashWait = 1, 20*time.Millisecond
	d.hashHook = func() {
		if holding.Load() {
			hold <- struct{}{}
			<-release
		}
	}
	h.router = NewRouter(d)
	tok, err := PrepareSetup(t.Context(), d, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// occupy takes the only slot with a login until the returned func.
	occupy := func() func() {
		holding.Store(true)
		b := h.browser(t)
		b.remote = "203.0.113.50:1"
		done := make(chan struct{})
		go func() {
			b.do("POST", "/login", url.Values{"username": {adminUser}, "password": {"x"}}, nil)
			close(done)
		}()
		<-hold
		holding.Store(false)
		return func() { release <- struct{}{}; <-done }
	}
	b := h.browser(t)
	setup := url.Values{"token": {tok}, "username": {adminUser}, "password": {adminPass}, "password2": {adminPass}}
	free := occupy()
	w := b.do("POST", "/setup", setup, nil)
	free()
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "busy checking other passwords") {
		t.Fatalf("setup without a slot = %d, Retry-After %q, want 429 with the message", w.Code, w.Header().Get("Retry-After"))
	}
	if n, _ := h.store.UserCount(t.Context()); n != 0 {
		t.Fatal("setup without a slot created a user")
	}
	if w := b.do("POST", "/setup", setup, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("setup again (the token still works) = %d, want 303", w.Code)
	}
	b.refreshCSRF()
	const newPass = "a much better passphrase 2026"
	free = occupy()
	w = b.post("/account/password", url.Values{"current": {adminPass}, "password": {newPass}, "password2": {newPass}})
	free()
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("password change without a slot = %d, want 429 with Retry-After", w.Code)
	}
	if w := h.browser(t).login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Errorf("login with the old password after the refused change = %d, want 303", w.Code)
	}
}
