package integration

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

const rejectText = "554 5.7.1 Direct SMTP from this host is not permitted. Send mail through the company mail server."

// TestRelayReopensPort: a relay that opens a session with the source port
// of one that just ended, while the box holds that connection in TIME_WAIT
// (it closed first, after the 221), is served on its first SYN; the old
// connection's TIME_WAIT socket must not answer it (with an ACK that costs
// the relay a SYN retransmission, a second, for every such session).
func TestRelayReopensPort(t *testing.T) {
	startAppliance(t, "enforce", "")
	for _, tc := range []struct{ name, relay, mx string }{
		{"ipv4", lab.Relay4, lab.MX4},
		{"ipv6", lab.Relay6, lab.MX6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := theLab.Run(ctx, "relay", "python3", "testdata/reopen.py", tc.relay, tc.mx, "40025")
			if err != nil {
				t.Fatalf("two sessions from port 40025: %v\n%s", err, out)
			}
			if n := strings.Count(out, "221 "); n != 2 {
				t.Errorf("%d sessions ended with 221, want 2:\n%s", n, out)
			}
			if !strings.Contains(out, "syn_retransmits=0") {
				t.Errorf("the relay had to retransmit its SYN for the reopened connection:\n%s", out)
			}
		})
	}
}

func TestEnforce(t *testing.T) {
	a := startAppliance(t, "enforce", "")
	for _, tc := range []struct {
		name          string
		relay, pc, mx string
	}{
		{"ipv4", lab.Relay4, lab.PC4, lab.MX4},
		{"ipv6", lab.Relay6, lab.PC6, lab.MX6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The infected PC: refused at the SMTP level, envelope kept.
			from := uniqueSender(t, "bot")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := theLab.Run(ctx, "pc", "swaks", "--server", server(tc.mx), "--from", from,
				"--to", "victim1@remote.example,victim2@remote.example", "--helo", "infected.lab", "--timeout", "15")
			if err == nil {
				t.Fatalf("swaks from the PC succeeded; want a refusal:\n%s", out)
			}
			if !strings.Contains(out, rejectText) {
				t.Errorf("PC transcript lacks %q:\n%s", rejectText, out)
			}
			ev := waitEvent(t, a, event.Blocked, tc.pc, from)
			want := event.Event{Kind: event.Blocked, Helo: "infected.lab", MailFrom: from,
				Rcpt: []string{"victim1@remote.example", "victim2@remote.example"}, Code: 554}
			got := event.Event{Kind: ev.Kind, Helo: ev.Helo, MailFrom: ev.MailFrom, Rcpt: ev.Rcpt, Code: ev.Code}
			if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("blocked event (-want +got):\n%s", diff)
			}
			if ev.Client.String() != tc.pc || ev.Server.String() != tc.mx {
				t.Errorf("blocked event client, server = %s, %s; want %s, %s", ev.Client, ev.Server, tc.pc, tc.mx)
			}
			if msgs, _ := theMX.Messages(); hasSender(msgs, from) {
				t.Errorf("the PC's message reached the MX")
			}

			// The relay: passes, and the MX sees the relay's own address.
			rfrom := uniqueSender(t, "relay")
			sendOK(t, "relay", tc.mx, rfrom)
			msg, err := theMX.WaitMessage(rfrom, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Client != tc.relay {
				t.Errorf("MX saw the relay's message from %s; want the relay's own address %s", msg.Client, tc.relay)
			}
			ev = waitEvent(t, a, event.Relayed, tc.relay, "")
			if ev.Relay == "" || ev.Bytes == 0 {
				t.Errorf("relayed event = %+v; want the relay's name and a byte count", ev)
			}
		})
	}
	// The diversion is in the ruleset an admin reads with nft.
	out, err := theLab.Run(context.Background(), "box", "nft", "list", "table", "inet", "relaygate")
	if err != nil || !strings.Contains(out, "tproxy ip to :10025") {
		t.Errorf("nft list table inet relaygate: %v\n%s", err, out)
	}
}

func hasSender(msgs []lab.Message, from string) bool {
	for _, m := range msgs {
		if m.MailFrom == from {
			return true
		}
	}
	return false
}

func TestMonitor(t *testing.T) {
	a := startAppliance(t, "monitor", "")
	for _, tc := range []struct{ host, addr, mx string }{
		{"pc", lab.PC4, lab.MX4}, {"relay", lab.Relay4, lab.MX4},
		{"pc", lab.PC6, lab.MX6}, {"relay", lab.Relay6, lab.MX6},
	} {
		from := uniqueSender(t, tc.host)
		sendOK(t, tc.host, tc.mx, from)
		msg, err := theMX.WaitMessage(from, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Client != tc.addr {
			t.Errorf("MX saw %s's message from %s; want %s", tc.host, msg.Client, tc.addr)
		}
	}
	if evs := events(t, a, event.Blocked, lab.PC4); len(evs) != 0 {
		t.Errorf("monitor mode recorded blocked events: %+v", evs)
	}
	out, err := theLab.Run(context.Background(), "box", "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "tproxy") || strings.Contains(out, "reject") || !strings.Contains(out, `counter name "smtp_packets"`) {
		t.Errorf("monitor ruleset diverts or rejects, or does not count:\n%s", out)
	}
}

func TestRestartResumes(t *testing.T) {
	a := startAppliance(t, "enforce", "")
	first := uniqueSender(t, "before")
	sendOK(t, "relay", lab.MX4, first)
	waitEvent(t, a, event.Relayed, lab.Relay4, "")
	if err := a.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	out, _ := theLab.Run(context.Background(), "box", "nft", "list", "set", "bridge", "relaygate", "alive")
	if strings.Contains(out, "elements") {
		t.Errorf("liveness set not emptied on stop:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := theLab.StartApplianceFile(ctx, a.CfgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Signal(syscall.SIGTERM, 15*time.Second)
	second := uniqueSender(t, "after")
	sendOK(t, "relay", lab.MX4, second)
	if _, err := theMX.WaitMessage(second, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// The store survived the restart: both sessions are on record.
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; n < 2; n = len(events(t, b, event.Relayed, lab.Relay4)) {
		if time.Now().After(deadline) {
			t.Fatalf("relayed events after restart = %d; want at least 2 (one per run)", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestKill9FailureBehaviour(t *testing.T) {
	a := startAppliance(t, "enforce", "")
	if err := a.Signal(syscall.SIGKILL, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Within a few seconds the liveness element expires: relays pass
	// straight through, everyone else is reset.
	var lastOut string
	for {
		from := uniqueSender(t, "failopen")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := theLab.Swaks(ctx, "relay", lab.MX4, from, "someone@remote.example")
		cancel()
		if err == nil {
			msg, err := theMX.WaitMessage(from, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Client != lab.Relay4 {
				t.Errorf("MX saw %s; want %s", msg.Client, lab.Relay4)
			}
			break
		}
		lastOut = out
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("relay mail not flowing 10s after kill -9:\n%s", lastOut)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("relay mail flowing %.1fs after kill -9", time.Since(killed).Seconds())
	for _, mx := range []string{lab.MX4, lab.MX6} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := theLab.Swaks(ctx, "pc", server(mx), uniqueSender(t, "bot"), "victim@remote.example")
		cancel()
		if err == nil || !strings.Contains(out, "refused") {
			t.Errorf("PC's SMTP to %s after kill -9: want connection refused (TCP reset), got err=%v:\n%s", mx, err, out)
		}
	}
	// The failure behaviour does not touch other traffic.
	if out, err := theLab.Run(context.Background(), "pc", "ping", "-c1", "-W2", lab.MX4); err != nil {
		t.Errorf("ping after kill -9: %v\n%s", err, out)
	}
	// A new daemon takes over by itself.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := theLab.StartApplianceFile(ctx, a.CfgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Signal(syscall.SIGTERM, 15*time.Second)
	from := uniqueSender(t, "bot")
	out, err := theLab.Swaks(ctx, "pc", lab.MX4, from, "victim@remote.example")
	if err == nil || !strings.Contains(out, rejectText) {
		t.Errorf("after restart the PC should get the SMTP refusal again:\n%s", out)
	}
}

func TestFloodDoesNotStarveRelay(t *testing.T) {
	a := startAppliance(t, "enforce", "proxy:\n  max_conns_per_source: 4\n")
	// The PC opens 300 connections and holds them.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	flood := theLab.Command(ctx, "pc", "bash", "-c",
		`for i in $(seq 300); do (exec 3<>/dev/tcp/`+lab.MX4+`/25 && sleep 30) 2>/dev/null & done; wait`)
	startGroup(t, flood)
	time.Sleep(2 * time.Second)
	for i := 0; i < 5; i++ {
		from := uniqueSender(t, "relay")
		sendOK(t, "relay", lab.MX4, from)
		if _, err := theMX.WaitMessage(from, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ev := waitEvent(t, a, event.Refused, lab.PC4, "")
	if ev.Code != 421 {
		t.Errorf("refused event code = %d; want 421", ev.Code)
	}
	// The kernel shed most of the flood before it reached the proxy.
	var st struct {
		Counters map[string]uint64 `json:"counters"`
	}
	if err := a.API(context.Background(), "GET", "/api/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Counters["flood_dropped"] == 0 {
		t.Errorf("flood_dropped = 0 after 300 connections at once; want the kernel to shed the flood (counters %v)", st.Counters)
	}
}
