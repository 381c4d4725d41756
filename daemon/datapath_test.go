package daemon

import (
	"errors"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/webui"
)

func TestLiveness(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	fail := errors.New("refresh liveness sets: no such file or directory")
	type step struct {
		at     time.Duration // after t0
		err    error         // heartbeat result recorded at at
		streak streak        // what record returns
		alive  bool          // alive(t0+at) after the record
	}
	for _, tc := range []struct {
		name  string
		steps []step
		// then: alive at t0+probe after all steps
		probe time.Duration
		want  bool
	}{
		{"never beaten", nil, 0, false},
		{"beating", []step{{0, nil, streakSame, true}, {time.Second, nil, streakSame, true}, {2 * time.Second, nil, streakSame, true}}, 2*time.Second + 500*time.Millisecond, true},
		{"success goes stale after the alive timeout", []step{{0, nil, streakSame, true}}, 3 * time.Second, false},
		{"just under the alive timeout", []step{{0, nil, streakSame, true}}, 3*time.Second - time.Millisecond, true},
		{"a failure ends it at once", []step{{0, nil, streakSame, true}, {time.Second, fail, streakFailing, false}}, time.Second, false},
		{"failing from the start", []step{{0, fail, streakFailing, false}, {time.Second, fail, streakSame, false}}, time.Second, false},
		{"one log per streak", []step{
			{0, nil, streakSame, true},
			{1 * time.Second, fail, streakFailing, false},
			{2 * time.Second, fail, streakSame, false},
			{3 * time.Second, fail, streakSame, false},
			{4 * time.Second, nil, streakHealed, true},
			{5 * time.Second, nil, streakSame, true},
			{6 * time.Second, fail, streakFailing, false},
		}, 6 * time.Second, false},
		{"a later success brings it back", []step{{0, nil, streakSame, true}, {time.Second, fail, streakFailing, false}, {2 * time.Second, nil, streakHealed, true}}, 4 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &liveness{ttl: 3 * time.Second}
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if got := l.record(s.err, now); got != s.streak {
					t.Errorf("step %d: record(%v) = %d, want %d", i, s.err, got, s.streak)
				}
				if got := l.alive(now); got != s.alive {
					t.Errorf("step %d: alive after record(%v) = %v, want %v", i, s.err, got, s.alive)
				}
			}
			if got := l.alive(t0.Add(tc.probe)); got != tc.want {
				t.Errorf("alive(t0+%s) = %v, want %v", tc.probe, got, tc.want)
			}
		})
	}
}

func TestDataPath(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          dataPathState
		word        string
		wantServing bool
	}{
		{"enforce alive", dataPathState{mode: config.Enforce, proxyServing: true, alive: true}, webui.DataPathDiverting, true},
		{"enforce heartbeat failing", dataPathState{mode: config.Enforce, proxyServing: true, alive: false}, webui.DataPathFailSafe, false},
		{"enforce proxy stopped", dataPathState{mode: config.Enforce, proxyServing: false, alive: true}, webui.DataPathFailSafe, false},
		{"enforce ignores capture", dataPathState{mode: config.Enforce, inspectOn: true, capturing: true}, webui.DataPathFailSafe, false},
		{"monitor capturing", dataPathState{mode: config.Monitor, inspectOn: true, capturing: true}, webui.DataPathWatching, true},
		{"monitor capture not running", dataPathState{mode: config.Monitor, proxyServing: true, alive: true, inspectOn: true}, webui.DataPathNotWatching, false},
		{"monitor inspect disabled", dataPathState{mode: config.Monitor, proxyServing: true, alive: true, capturing: true}, webui.DataPathNotWatching, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			word, serving := dataPath(tc.in)
			if word != tc.word || serving != tc.wantServing {
				t.Errorf("dataPath(%+v) = %s, %v, want %s, %v", tc.in, word, serving, tc.word, tc.wantServing)
			}
		})
	}
}
