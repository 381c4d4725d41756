package webui

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestLoginThrottle(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	for i := range userMaxFails {
		if w := b.login(adminUser, "wrong password "+strconv.Itoa(i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i, w.Code)
		}
	}
	// Locked out: even the right password gets 429, from any address.
	b.remote = "198.51.100.7:5555"
	w := b.login(adminUser, adminPass)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("login while locked = %d, want 429", w.Code)
	}
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra < 1 || ra > int(lockoutFor/time.Second) {
		t.Errorf("Retry-After = %q, want 1..%d seconds", w.Header().Get("Retry-After"), int(lockoutFor/time.Second))
	}
	if b.cookie != "" {
		t.Error("a locked-out login got a session")
	}
	// The lockout expires.
	h.clock.Advance(lockoutFor + time.Second)
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Errorf("login after the lockout = %d, want 303", w.Code)
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	for i := range ipMaxFails {
		// A different username each time: the per-address limit catches it.
		b.login("user"+strconv.Itoa(i), "wrong password")
	}
	w := b.login(adminUser, adminPass)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("login from a locked address = %d, Retry-After %q, want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	// Another address is not affected.
	b.remote = "203.0.113.9:1234"
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Errorf("login from another address = %d, want 303", w.Code)
	}
}

func TestThrottleWindow(t *testing.T) {
	clock := &testClock{}
	th := newThrottle(clock.Now, 3, time.Minute, 5*time.Minute)
	th.fail("k")
	th.fail("k")
	clock.Advance(61 * time.Second) // the first two fall out of the window
	th.fail("k")
	th.fail("k")
	if d := th.retryAfter("k"); d != 0 {
		t.Fatalf("locked after failures spread over more than the window: %v", d)
	}
	th.fail("k")
	if d := th.retryAfter("k"); d <= 4*time.Minute || d > 5*time.Minute {
		t.Fatalf("retryAfter after 3 failures in the window = %v, want about 5m", d)
	}
	if d := th.retryAfter("other"); d != 0 {
		t.Errorf("another key is locked: %v", d)
	}
	clock.Advance(5 * time.Minute)
	if d := th.retryAfter("k"); d != 0 {
		t.Errorf("still locked after the lockout: %v", d)
	}
	th.fail("k")
	th.reset("k")
	th.fail("k")
	th.fail("k")
	if d := th.retryAfter("k"); d != 0 {
		t.Errorf("reset did not forget failures: %v", d)
	}
	// The table stays bounded under a spray of keys.
	for i := range maxThrottleKeys + 10 {
		th.fail("spray" + strconv.Itoa(i))
		clock.Advance(time.Millisecond)
	}
	clock.Advance(2 * time.Minute)
	th.fail("last")
	if n := len(th.m); n > maxThrottleKeys {
		t.Errorf("%d throttle entries, want at most %d", n, maxThrottleKeys)
	}
}
