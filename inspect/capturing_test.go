package inspect

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gopacket/gopacket"

	"github.com/relaygate/relaygate/config"
)

// stubSource delivers nothing: it times out like an idle ring until fail
// is closed, then returns err.
type stubSource struct {
	fail chan struct{}
	err  error
}

func (s *stubSource) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	select {
	case <-s.fail:
		return nil, gopacket.CaptureInfo{}, s.err
	case <-time.After(10 * time.Millisecond):
		return nil, gopacket.CaptureInfo{}, errTimeout
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCapturing(t *testing.T) {
	in, err := New(testConfig(config.Monitor), Options{Recorder: &fakeRecorder{}, Series: &fakeSeries{}})
	if err != nil {
		t.Fatal(err)
	}
	if in.Capturing() {
		t.Fatal("Capturing() = true before Run, want false")
	}
	inside := &stubSource{fail: make(chan struct{}), err: errors.New("ring: network is down")}
	outside := &stubSource{fail: make(chan struct{}), err: errors.New("ring: network is down")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, inside, outside) }()

	waitFor(t, "Capturing() = false while Run reads both sources, want true", in.Capturing)

	close(inside.fail)
	waitFor(t, "Capturing() = true after a source failed, want false", func() bool { return !in.Capturing() })
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with one source still reading; want it to go on", err)
	case <-time.After(50 * time.Millisecond):
	}
	if !in.Stats().Running {
		t.Error("Stats().Running = false while Run still reads a source, want true")
	}

	close(outside.fail)
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run = nil after every source failed, want the capture error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after every source failed")
	}
	if in.Capturing() {
		t.Error("Capturing() = true after Run returned, want false")
	}
}

func TestCapturingEndsWithContext(t *testing.T) {
	in, err := New(testConfig(config.Monitor), Options{Recorder: &fakeRecorder{}, Series: &fakeSeries{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, &stubSource{fail: make(chan struct{})}) }()
	waitFor(t, "Capturing() = false while Run reads its source, want true", in.Capturing)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after cancel, want nil", err)
	}
	if in.Capturing() {
		t.Error("Capturing() = true after Run returned, want false")
	}
}
