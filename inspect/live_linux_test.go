//go:build linux

package inspect

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
)

// TestLiveCapture is a privileged helper, not a unit test: with
// RELAYGATE_INSPECT_LIVE=eth1,eth2 it captures on those interfaces (in the
// caller's network namespace) until SIGTERM or RELAYGATE_INSPECT_SECONDS,
// then prints its Stats as JSON. scripts/bench-inspect.sh runs it in the
// lab's box namespace while iperf3 crosses the bridge.
func TestLiveCapture(t *testing.T) {
	ifaces := os.Getenv("RELAYGATE_INSPECT_LIVE")
	if ifaces == "" {
		t.Skip("helper for scripts/bench-inspect.sh: set RELAYGATE_INSPECT_LIVE=iface,iface (needs root)")
	}
	secs := 60 * time.Second
	if d, err := time.ParseDuration(os.Getenv("RELAYGATE_INSPECT_SECONDS") + "s"); err == nil {
		secs = d
	}
	cfg := testConfig(config.Monitor)
	rec, ser := &fakeRecorder{}, &fakeSeries{}
	in, err := New(cfg, Options{Recorder: rec, Series: ser})
	if err != nil {
		t.Fatal(err)
	}
	var srcs []PacketSource
	for _, ifc := range strings.Split(ifaces, ",") {
		s, err := OpenLive(ifc, cfg.Inspect.RingMB, in.Ports())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srcs = append(srcs, s)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, secs)
	defer cancel2()
	os.Stdout.WriteString("capturing\n")
	if err := in.Run(ctx, srcs...); err != nil {
		t.Fatal(err)
	}
	out := struct {
		Stats
		WouldBlock []string         `json:"would_block_events"`
		Series     map[string]int64 `json:"series"`
	}{Stats: in.Stats(), Series: map[string]int64{}}
	ser.mu.Lock()
	for k, v := range ser.m {
		out.Series[k.metric+"/"+k.key] = v
	}
	ser.mu.Unlock()
	for _, e := range rec.all() {
		if e.Kind != event.WouldBlock {
			continue // the relays' sessions are relayed events
		}
		out.WouldBlock = append(out.WouldBlock, e.Client.String()+" "+e.MailFrom+" messages="+itoa(e.Messages))
	}
	b, _ := json.Marshal(out)
	os.Stdout.Write(append(b, '\n'))
}
