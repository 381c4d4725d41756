package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

// lineRE is the summary line of send and load, as the scripts and the
// integration tests read it (per_second=, p50_ms=, p99_ms=,
// "send messages=N failed=M").
var lineRE = regexp.MustCompile(`^(send|load) messages=(\d+) failed=(\d+) secs=[0-9.]+ per_second=[0-9.]+ p50_ms=[0-9.]+ p90_ms=[0-9.]+ p99_ms=[0-9.]+ max_ms=[0-9.]+\n$`)

func TestSendAndLoad(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantFrom   string // prefix of every MAIL FROM
		wantHelo   string
		minSize    int
		wantStatus int
	}{
		{
			name:     "send defaults",
			args:     []string{"-mode", "send", "-n", "6", "-concurrency", "3"},
			wantFrom: "bench", // bench<i>@relay.example
			wantHelo: "smtpflood.example",
			minSize:  1024,
		},
		{
			name:     "send envelope",
			args:     []string{"-mode", "send", "-n", "4", "-concurrency", "2", "-from", "Thief@corp.example", "-to", "list@remote.example", "-size", "2048", "-src", "127.0.0.1"},
			wantFrom: "Thief@corp.example",
			wantHelo: "smtpflood.example",
			minSize:  2048,
		},
		{
			name:     "load defaults",
			args:     []string{"-mode", "load", "-n", "5", "-concurrency", "5"},
			wantFrom: "load@relay.lab.example",
			wantHelo: "relay.lab.example",
			minSize:  10240,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mx := fakemx.Start(t, "127.0.0.1:0")
			var out, errOut bytes.Buffer
			args := append([]string{"-target", mx.Addr().String()}, tc.args...)
			if got := run(args, &out, &errOut); got != tc.wantStatus {
				t.Fatalf("run(%q) = %d, want %d; stderr:\n%s", args, got, tc.wantStatus, errOut.String())
			}
			m := lineRE.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("run(%q) printed %q, want a line matching %s", args, out.String(), lineRE)
			}
			n := flagValue(args, "-n")
			if m[2] != n || m[3] != "0" {
				t.Errorf("run(%q): messages=%s failed=%s, want %s and 0", args, m[2], m[3], n)
			}
			msgs := mx.Messages()
			if got := len(msgs); strconv.Itoa(got) != n {
				t.Fatalf("fake MX got %d messages, want %s", got, n)
			}
			for i, msg := range msgs {
				if !strings.HasPrefix(msg.From, tc.wantFrom) || msg.Helo != tc.wantHelo {
					t.Errorf("message %d: HELO %q, MAIL FROM %q; want %q and %q...", i, msg.Helo, msg.From, tc.wantHelo, tc.wantFrom)
				}
				if len(msg.Data) < tc.minSize || len(msg.Data) > tc.minSize+1024 {
					t.Errorf("message %d: %d octets, want about %d", i, len(msg.Data), tc.minSize)
				}
			}
		})
	}
}

// TestLoadFails: load exits 1 when a message is refused (a benchmark's
// numbers are taken only from clean runs); send reports the failures and
// exits 0.
func TestLoadFails(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	mx.FailData(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try later"})
	for mode, want := range map[string]int{"load": 1, "send": 0} {
		var out, errOut bytes.Buffer
		args := []string{"-mode", mode, "-target", mx.Addr().String(), "-n", "2", "-timeout", "10s"}
		if got := run(args, &out, &errOut); got != want {
			t.Errorf("run(%q) = %d, want %d", args, got, want)
		}
		m := lineRE.FindStringSubmatch(out.String())
		if m == nil || m[2] != "0" || m[3] != "2" {
			t.Errorf("run(%q) printed %q, want messages=0 failed=2", args, out.String())
		}
		if !strings.Contains(errOut.String(), "end of DATA: 451 4.3.0") {
			t.Errorf("run(%q) stderr = %q, want the refusal of the end of DATA", args, errOut.String())
		}
	}
}

func TestFloodAndHold(t *testing.T) {
	mx := fakemx.Start(t, "127.0.0.1:0")
	var out bytes.Buffer
	if got := run([]string{"-mode", "flood", "-target", mx.Addr().String(), "-concurrency", "4", "-duration", "300ms", "-timeout", "2s"}, &out, &out); got != 0 {
		t.Fatalf("flood = %d, want 0:\n%s", got, out.String())
	}
	if !regexp.MustCompile(`^flood connections=\d+ per_second=\d+ greeted=[1-9]\d* refused=0 failed=0\n$`).MatchString(out.String()) {
		t.Errorf("flood printed %q", out.String())
	}
	out.Reset()
	start := time.Now()
	if got := run([]string{"-mode", "hold", "-target", mx.Addr().String(), "-n", "3", "-hold", "100ms"}, &out, &out); got != 0 {
		t.Fatalf("hold = %d, want 0:\n%s", got, out.String())
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("hold returned after %s, want at least -hold 100ms", d)
	}
	if diff := cmp.Diff("held established=3 failed=0", strings.Join(strings.Fields(out.String())[:3], " ")); diff != "" {
		t.Errorf("hold printed %q (-want +got):\n%s", out.String(), diff)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "send"},                     // no -target
		{"-mode", "smash", "-target", "x:25"}, // unknown mode
		{"-target", "x:25", "-n", "0"},        // nothing to send
		{"-target", "x:25", "-no-such-flag"},  // unknown flag
		{"-target", "x:25", "-rate", "-1"},    // negative rate
	} {
		var out bytes.Buffer
		if got := run(args, &out, &out); got != 2 {
			t.Errorf("run(%q) = %d, want 2 (usage)", args, got)
		}
	}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
