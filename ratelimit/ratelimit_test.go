package ratelimit

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestCounter(t *testing.T) {
	c := NewCounter()
	for i := range 3 {
		if !c.TakeIfAllowed("r", 3, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("TakeIfAllowed #%d = false, want true", i)
		}
	}
	if c.TakeIfAllowed("r", 3, t0.Add(59*time.Second)) {
		t.Errorf("fourth in the minute = true, want false")
	}
	if !c.TakeIfAllowed("other", 3, t0) {
		t.Errorf("another key = false, want true")
	}
	// The window slides: at the minute boundary the three are still in it;
	// 20 s later a third of the previous minute has left it (3 -> 2).
	if c.TakeIfAllowed("r", 3, t0.Add(time.Minute)) {
		t.Errorf("at the minute boundary = true, want false (three in the last 60 s)")
	}
	if !c.TakeIfAllowed("r", 3, t0.Add(80*time.Second)) {
		t.Errorf("20 s into the next minute = false, want true")
	}
	if c.TakeIfAllowed("r", 3, t0.Add(81*time.Second)) {
		t.Errorf("a second one 21 s into the next minute = true, want false")
	}
	// 1 in this minute, and 39 s of the previous minute's 3: 1 + 2.
	if got := c.InWindow("r", t0.Add(81*time.Second)); got != 3 {
		t.Errorf("InWindow 21 s into the next minute = %d, want 3", got)
	}
	if !c.TakeIfAllowed("r", 3, t0.Add(3*time.Minute)) {
		t.Errorf("two minutes later = false, want true")
	}
	if !c.Allow("r", 0, t0) || !c.TakeIfAllowed("r", 0, t0) {
		t.Errorf("limit 0 = not allowed, want unlimited")
	}
	if got := c.Add("s", 5, t0); got != 5 || c.Allow("s", 5, t0) {
		t.Errorf("Add = %d, Allow after 5 of 5 = true; want 5, false", got)
	}
}

// TestCounterAcrossBoundary: a burst that straddles a minute boundary is
// held to the limit within any 60 seconds (calendar windows would let
// twice the limit through).
func TestCounterAcrossBoundary(t *testing.T) {
	c := NewCounter()
	start := t0.Add(50 * time.Second)
	passed := 0
	for i := range 40 { // one attempt every half second, 20 s
		if c.TakeIfAllowed("r", 5, start.Add(time.Duration(i)*500*time.Millisecond)) {
			passed++
		}
	}
	// The estimate spreads the previous minute's five evenly over it, so
	// one more may pass before the twentieth second; never the ten that
	// calendar windows let through.
	if passed < 5 || passed > 6 {
		t.Errorf("%d of 40 attempts in 20 s across a minute boundary passed a limit of 5; want 5 or 6", passed)
	}
	// Sixty seconds of steady attempts after that: about the limit again.
	for i := range 120 {
		if c.TakeIfAllowed("r", 5, start.Add(20*time.Second+time.Duration(i)*500*time.Millisecond)) {
			passed++
		}
	}
	if passed < 9 || passed > 11 {
		t.Errorf("%d passed over 80 s at a limit of 5 per minute; want 9-11", passed)
	}
}

func TestDistinct(t *testing.T) {
	d := NewDistinct()
	for _, m := range []string{"a", "b", "a"} {
		if !d.Admit("r", m, 2, t0) {
			t.Fatalf("Admit(%s) = false, want true", m)
		}
	}
	if d.Admit("r", "c", 2, t0) {
		t.Errorf("third member admitted, want refused")
	}
	if !d.Admit("r", "c", 2, t0.Add(time.Minute)) {
		t.Errorf("next minute: refused, want admitted")
	}
}

func TestGauge(t *testing.T) {
	g := NewGauge()
	for i, want := range []bool{true, true, false} {
		if got := g.Acquire("r", 2); got != want {
			t.Fatalf("Acquire #%d = %v, want %v", i, got, want)
		}
	}
	g.Release("r")
	if !g.Acquire("r", 2) || g.Value("r") != 2 {
		t.Errorf("after Release: no slot or value %d", g.Value("r"))
	}
	g.Release("r")
	g.Release("r")
	if g.Value("r") != 0 {
		t.Errorf("Value = %d, want 0", g.Value("r"))
	}
}

func TestBurstDetector(t *testing.T) {
	b := NewBurstDetector(BurstConfig{Factor: 10, MinMessages: 10, Hold: true, HoldFor: 15 * time.Minute})
	now := t0
	// Two messages a minute for three hours: a baseline near 2 (1.9).
	for range 180 {
		for range 2 {
			if bu := b.Observe("s", now); bu != nil {
				t.Fatalf("steady sender flagged: %+v", bu)
			}
		}
		now = now.Add(time.Minute)
	}
	// 18 messages in a minute is not above 10 x 1.9.
	for range 18 {
		if bu := b.Observe("s", now); bu != nil {
			t.Fatalf("20 in a minute flagged at baseline ~2: %+v", bu)
		}
	}
	// The next minute, with the 18 folded in (baseline 2.17): the 22nd alerts.
	now = now.Add(time.Minute)
	var got *Burst
	for i := range 40 {
		if bu := b.Observe("s", now); bu != nil {
			if got != nil {
				t.Fatalf("second alert in the same hold period at message %d", i)
			}
			got = bu
		}
	}
	if got == nil || got.Messages != 22 || got.Baseline < 1 || got.Baseline > 3 || !got.HeldUntil.Equal(now.Add(15*time.Minute)) {
		t.Fatalf("burst = %+v, want one with a baseline about 2", got)
	}
	if !b.Held("s", now) || b.Held("other", now) {
		t.Errorf("Held: s %v, other %v; want true, false", b.Held("s", now), b.Held("other", now))
	}
	if b.Held("s", now.Add(16*time.Minute)) {
		t.Errorf("held after HoldFor")
	}
	// A new sender: MinMessages is the threshold.
	for i := 1; i <= 20; i++ {
		if bu := b.Observe("new", now); (bu != nil) != (i == 10) {
			t.Errorf("new sender message %d: burst %v", i, bu != nil)
		}
	}
	b.SetConfig(BurstConfig{Factor: 10, MinMessages: 10, HoldFor: 15 * time.Minute})
	if b.Held("new", now) {
		t.Errorf("held after hold was switched off")
	}
}
