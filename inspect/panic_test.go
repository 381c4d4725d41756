package inspect

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"

	"github.com/relaygate/relaygate/config"
)

// TestDecoderPanicRecovered: a frame whose decoding panics (injected through
// the frame hook) is skipped and counted, and the frames after it are still
// decoded: the bot's session that follows is reported as usual.
func TestDecoderPanicRecovered(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	poison := []byte("relaygate test: this frame panics the decoder")
	r.in.frameHook = func(data []byte) {
		if bytes.Equal(data, poison) {
			panic("injected decoder panic")
		}
	}
	f := sessionFrames(t, "40001", 2)
	frames := []frame{{data: poison, ci: gopacket.CaptureInfo{Timestamp: t0, CaptureLength: len(poison), Length: len(poison)}}}
	frames = append(frames, f.frames[:3]...)
	frames = append(frames, frames[0]) // and again mid-session
	frames = append(frames, f.frames[3:]...)
	r.replay(t, frames)

	if got := r.in.Stats().DecodePanics; got != 2 {
		t.Errorf("DecodePanics = %d, want 2", got)
	}
	if got := r.in.Stats().Packets; got != uint64(len(f.frames)) {
		t.Errorf("Packets = %d, want the session's %d frames", got, len(f.frames))
	}
	got := r.wouldBlock()
	if len(got) != 1 || got[0].Messages != 2 || got[0].Helo != "pc" {
		t.Fatalf("would_block after the panics = %+v, want the bot's session with 2 messages", got)
	}
}
