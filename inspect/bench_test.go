package inspect

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/relaygate/relaygate/config"
)

// benchFrames generates SMTP traffic: relays sending messages with
// 20 KiB bodies and bots sending short ones, interleaved flow by flow.
func benchFrames(b testing.TB, flows int) []frame {
	body := bigBody(20 << 10)
	var out []frame
	for i := 0; i < flows; i++ {
		cli := fmt.Sprintf("10.10.%d.%d:%d", i/250%250, i%250+1, 10000+i%50000)
		if i%4 == 0 {
			cli = fmt.Sprintf("10.20.%d.%d:%d", i/250%250, i%250+1, 10000+i%50000)
		}
		f := newTCPFlow(b, cli, "203.0.113.25:25")
		f.now = t0.Add(time.Duration(i) * time.Millisecond)
		f.handshake()
		f.server("220 mx ESMTP\r\n")
		f.client("EHLO host\r\n")
		f.server("250-mx\r\n250 PIPELINING\r\n")
		for m := 0; m < 3; m++ {
			f.client("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@remote.example>\r\nDATA\r\n")
			f.server("250 ok\r\n250 ok\r\n354 go\r\n")
			if i%4 == 0 {
				f.client("Subject: spam\r\n\r\nbuy\r\n.\r\n")
			} else {
				f.client(body + ".\r\n")
			}
			f.server("250 queued\r\n")
		}
		f.client("QUIT\r\n")
		f.server("221 bye\r\n")
		f.close()
		out = append(out, f.frames...)
	}
	return out
}

// BenchmarkDecode replays a generated pcap file of SMTP traffic through the
// decode path (the same as live capture) and reports frames per second.
func BenchmarkDecode(b *testing.B) {
	frames := benchFrames(b, 400)
	path := filepath.Join(b.TempDir(), "smtp.pcap")
	if err := os.WriteFile(path, writePcap(b, frames), 0o600); err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, f := range frames {
		bytes += int64(len(f.data))
	}
	cfg := testConfig(config.Monitor)
	cfg.Relays = []config.Relay{{Name: "relays", Address: config.MustParsePrefix("10.10.0.0/16")}}
	b.SetBytes(bytes)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		in := replayPcap(b, cfg, path, false)
		if got := in.Stats().Messages; got != 1200 {
			b.Fatalf("messages = %d, want 1200", got)
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(len(frames)*b.N)/el, "frames/s")
}

// BenchmarkEnforceRelays is the user-space cost of the capture in enforce
// mode for benchFrames' traffic (three quarters relays' sessions with 20
// KiB messages), with the relays' diverted flows captured (fail-open, or
// before they were left out) and left out: then only the frames the
// kernel filter passes reach the decoder (run through the bpf VM here,
// outside the timer).
func BenchmarkEnforceRelays(b *testing.B) {
	frames := benchFrames(b, 400)
	relays := config.MustParsePrefix("10.10.0.0/16")
	cfg := testConfig(config.Enforce)
	cfg.Relays = []config.Relay{{Name: "relays", Address: relays}}
	for _, leftOut := range []bool{false, true} {
		name, spec := "captured", FilterSpec{Ports: []uint16{25}}
		if leftOut {
			name, spec.Relays = "left_out", []netip.Prefix{relays.Net()}
		}
		b.Run(name, func(b *testing.B) {
			raw, err := Filter(spec)
			if err != nil {
				b.Fatal(err)
			}
			prog, _ := bpf.Disassemble(raw)
			vm, err := bpf.NewVM(prog)
			if err != nil {
				b.Fatal(err)
			}
			var passed []frame
			var bytes int64
			for _, f := range frames {
				if n, _ := vm.Run(f.data); n > 0 {
					passed = append(passed, f)
					bytes += int64(len(f.data))
				}
			}
			path := filepath.Join(b.TempDir(), "smtp.pcap")
			if err := os.WriteFile(path, writePcap(b, passed), 0o600); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(bytes)
			b.ResetTimer()
			for b.Loop() {
				in := replayPcap(b, cfg, path, leftOut)
				if got := in.Stats().FlowsTotal; got != 400 {
					b.Fatalf("flows = %d, want 400", got)
				}
			}
			b.ReportMetric(float64(len(passed)), "frames_to_user_space")
		})
	}
}

// replayPcap runs the pcap file at path through a new inspector for cfg
// (diverting says whether enforce mode diverts, see SetDiverting).
func replayPcap(b *testing.B, cfg *config.Config, path string, diverting bool) *Inspector {
	b.Helper()
	in, err := New(cfg, Options{Recorder: &fakeRecorder{}, Series: &fakeSeries{}})
	if err != nil {
		b.Fatal(err)
	}
	in.SetDiverting(diverting)
	src, err := OpenPcap(path)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	if err := in.Replay(context.Background(), src); err != nil {
		b.Fatal(err)
	}
	return in
}
