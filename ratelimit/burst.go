package ratelimit

import (
	"math"
	"sync"
	"time"
)

// BurstConfig configures a BurstDetector.
type BurstConfig struct {
	// Factor: a sender bursts when its messages in the current minute exceed
	// Factor times its baseline, e.g. 10. Zero or less turns detection off.
	Factor float64
	// MinMessages: and reach at least this many, e.g. 30. It is the
	// threshold for a sender without history (baseline 0).
	MinMessages int
	// Hold: a bursting sender is held (see Held) for HoldFor.
	Hold bool
	// HoldFor is how long a hold lasts, and how often one sender raises an
	// alert at most, e.g. 15m.
	HoldFor time.Duration
}

// baselineAlpha weighs one minute in the baseline, an exponentially
// weighted moving average of messages per minute whose weights fall to
// 1/e after about an hour (1 - 1/60 per minute).
const baselineAlpha = 1.0 / 60

// BurstDetector keeps per envelope sender a baseline of messages per minute
// and reports the minute in which a sender exceeds it by the configured
// factor (the stolen-account case).
type BurstDetector struct {
	mu      sync.Mutex
	cfg     BurstConfig
	senders map[string]*senderState
}

type senderState struct {
	minute    int64   // minute of cur
	cur       int     // messages in minute
	baseline  float64 // EWMA of messages per minute, minutes before minute
	lastAlert time.Time
	heldUntil time.Time
}

// Burst describes a detected burst.
type Burst struct {
	Sender    string
	Messages  int     // in the current minute
	Baseline  float64 // messages per minute before it
	HeldUntil time.Time
}

// NewBurstDetector returns a detector with cfg.
func NewBurstDetector(cfg BurstConfig) *BurstDetector {
	return &BurstDetector{cfg: cfg, senders: map[string]*senderState{}}
}

// SetConfig replaces the configuration; baselines and holds are kept.
func (b *BurstDetector) SetConfig(cfg BurstConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg = cfg
	if !cfg.Hold {
		for _, s := range b.senders {
			s.heldUntil = time.Time{}
		}
	}
}

// Held reports whether sender is held at now.
func (b *BurstDetector) Held(sender string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.senders[sender]
	return ok && b.cfg.Hold && now.Before(s.heldUntil)
}

// roll moves s to the minute m, folding the minutes in between into the
// baseline.
func (s *senderState) roll(m int64) {
	if m <= s.minute {
		return
	}
	s.baseline = s.baseline*(1-baselineAlpha) + float64(s.cur)*baselineAlpha
	if gap := m - s.minute - 1; gap > 0 {
		s.baseline *= math.Pow(1-baselineAlpha, float64(min(gap, 100000)))
	}
	s.minute, s.cur = m, 0
}

// Observe counts one accepted message of sender at now. It returns a
// non-nil Burst when this message makes the sender burst and no alert for
// it was raised within HoldFor; the sender is then held if Hold is set.
func (b *BurstDetector) Observe(sender string, now time.Time) *Burst {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := minuteOf(now)
	s, ok := b.senders[sender]
	if !ok {
		if len(b.senders) >= maxKeys {
			b.sweepLocked(m, now)
			if len(b.senders) >= maxKeys {
				return nil // bounded memory: new senders go unwatched until old ones decay
			}
		}
		s = &senderState{minute: m}
		b.senders[sender] = s
	}
	s.roll(m)
	s.cur++
	cfg := b.cfg
	if cfg.Factor <= 0 || s.cur < cfg.MinMessages || float64(s.cur) <= cfg.Factor*s.baseline {
		return nil
	}
	if !s.lastAlert.IsZero() && now.Sub(s.lastAlert) < cfg.HoldFor {
		return nil
	}
	s.lastAlert = now
	bu := &Burst{Sender: sender, Messages: s.cur, Baseline: s.baseline}
	if cfg.Hold {
		s.heldUntil = now.Add(cfg.HoldFor)
		bu.HeldUntil = s.heldUntil
	}
	return bu
}

// sweepLocked forgets senders with a negligible baseline, nothing in the
// current minute and no hold or recent alert.
func (b *BurstDetector) sweepLocked(m int64, now time.Time) {
	for k, s := range b.senders {
		s.roll(m)
		if s.cur == 0 && s.baseline < 0.01 && now.After(s.heldUntil) && now.Sub(s.lastAlert) > b.cfg.HoldFor {
			delete(b.senders, k)
		}
	}
}
