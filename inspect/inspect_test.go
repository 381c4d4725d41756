package inspect

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

const (
	pc    = "10.20.0.50"
	relay = "10.10.0.25"
	mx    = "203.0.113.25"
)

func testConfig(mode config.Mode) *config.Config {
	c := config.Default()
	c.Mode = mode
	c.Relays = []config.Relay{{Name: "mail-relay", Address: config.MustParsePrefix("10.10.0.25/32")}, {Name: "relay6", Address: config.MustParsePrefix("2001:db8:10::25/128")}}
	c.Ports = []int{25}
	off := false
	c.Inspect.ReverseDNS = &off
	c.Inspect.Labels = []config.Label{{Prefix: config.MustParsePrefix("10.20.0.0/16"), Label: "Koror office"}, {Prefix: config.MustParsePrefix("10.20.0.0/24"), Label: "Koror 1st floor"}}
	return c
}

type rig struct {
	in  *Inspector
	rec *fakeRecorder
	ser *fakeSeries
	st  *store.Store
	dir string
}

func newRig(t *testing.T, mode config.Mode, withStore bool) *rig {
	t.Helper()
	r := &rig{rec: &fakeRecorder{}, ser: &fakeSeries{}, dir: t.TempDir()}
	opts := Options{Recorder: r.rec, Series: r.ser, EvidenceDir: filepath.Join(r.dir, "evidence"),
		Now: func() time.Time { return t0 }}
	if withStore {
		st, err := store.Open(context.Background(), r.dir, store.Options{PruneInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		r.st = st
		opts.Inventory = st
	}
	in, err := New(testConfig(mode), opts)
	if err != nil {
		t.Fatal(err)
	}
	r.in = in
	return r
}

// replay writes frames into a pcap and replays it, as the live path would
// decode them.
func (r *rig) replay(t *testing.T, frames []frame) {
	t.Helper()
	src, err := NewPcapSource(bytes.NewReader(writePcap(t, frames)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.in.Replay(context.Background(), src); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) wouldBlock() []event.Event {
	var out []event.Event
	for _, e := range r.rec.all() {
		if e.Kind == event.WouldBlock {
			out = append(out, e)
		}
	}
	return out
}

// envelope is the part of an event the tests compare.
type envelope struct {
	Client, Server string
	Helo, MailFrom string
	Rcpt           []string
	Messages, Code int
	Encrypted      bool
}

func envOf(e event.Event) envelope {
	return envelope{Client: e.Client.String(), Server: e.Server.String(), Helo: e.Helo, MailFrom: e.MailFrom,
		Rcpt: e.Rcpt, Messages: e.Messages, Code: e.Code, Encrypted: e.Encrypted}
}

func TestDirectSMTPWouldBlock(t *testing.T) {
	tests := []struct {
		name     string
		cli, srv string
		vlan     uint16
	}{
		{"ipv4", pc + ":40001", mx + ":25", 0},
		{"ipv4 vlan", pc + ":40002", mx + ":25", 100},
		{"ipv6", "[2001:db8:20::50]:40003", "[2001:db8:25::25]:25", 0},
		{"ipv6 vlan", "[2001:db8:20::50]:40004", "[2001:db8:25::25]:25", 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, config.Monitor, false)
			f := newTCPFlow(t, tt.cli, tt.srv)
			f.vlan = tt.vlan
			f.smtpSession("infected-pc", "bot@pc.example", []string{"a@x.example", "b@y.example"}, 3)
			r.replay(t, f.frames)
			got := r.wouldBlock()
			if len(got) != 1 {
				t.Fatalf("would_block events = %d, want 1: %+v", len(got), got)
			}
			want := envelope{Client: f.cli.Addr().String(), Server: f.srv.Addr().String(), Helo: "infected-pc",
				MailFrom: "bot@pc.example", Rcpt: []string{"a@x.example", "b@y.example", "a@x.example", "b@y.example", "a@x.example", "b@y.example"},
				Messages: 3, Code: 250}
			if diff := cmp.Diff(want, envOf(got[0])); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if got := r.ser.get(store.SeriesInspectMessages, f.cli.Addr().String()); got != 3 {
				t.Errorf("inspect_messages = %d, want 3", got)
			}
			if got := r.ser.get(store.SeriesInspectFlows, f.cli.Addr().String()); got != 1 {
				t.Errorf("inspect_flows = %d, want 1", got)
			}
		})
	}
}

func TestRelayCountedPerMinute(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	var frames []frame
	for i := 0; i < 4; i++ {
		f := newTCPFlow(t, relay+":"+itoa(41000+i), mx+":25")
		f.now = t0.Add(time.Duration(i) * 30 * time.Second)
		f.smtpSession("relay.example", "user@example.com", []string{"r@remote.example"}, 5)
		frames = append(frames, f.frames...)
	}
	r.replay(t, frames)
	if got := r.wouldBlock(); len(got) != 0 {
		t.Errorf("relay produced would_block events: %+v", got)
	}
	if got := r.ser.get(store.SeriesInspectMessages, relay); got != 20 {
		t.Errorf("inspect_messages[%s] = %d, want 20", relay, got)
	}
	want := map[time.Time]int64{t0: 10, t0.Add(time.Minute): 10}
	if diff := cmp.Diff(want, r.ser.minutes); diff != "" {
		t.Errorf("messages per minute (-want +got):\n%s", diff)
	}
}

func TestEnforceCountsWithoutEvents(t *testing.T) {
	r := newRig(t, config.Enforce, false)
	f := newTCPFlow(t, pc+":40010", mx+":25").smtpSession("pc", "a@b.example", []string{"c@d.example"}, 2)
	r.replay(t, f.frames)
	if got := r.rec.all(); len(got) != 0 {
		t.Errorf("enforce mode recorded %d events, want 0", len(got))
	}
	if got := r.ser.get(store.SeriesInspectMessages, pc); got != 2 {
		t.Errorf("inspect_messages = %d, want 2", got)
	}
}

// sessionFrames returns a one-message-per-iteration session's frames.
func sessionFrames(t *testing.T, port string, n int) *tcpFlow {
	return newTCPFlow(t, pc+":"+port, mx+":25").smtpSession("pc", "bot@pc.example", []string{"x@y.example"}, n)
}

func TestDamagedCaptures(t *testing.T) {
	tests := []struct {
		name   string
		mangle func([]frame) []frame
		want   int // messages
	}{
		{"retransmissions", func(fs []frame) []frame {
			var out []frame
			for i, f := range fs {
				out = append(out, f)
				if i%3 == 0 {
					out = append(out, f, f)
				}
			}
			return out
		}, 5},
		{"out of order", func(fs []frame) []frame {
			out := append([]frame(nil), fs...)
			rnd := rand.New(rand.NewPCG(1, 2))
			// Swap neighbours after the handshake, keeping the final FINs last.
			for i := 3; i+1 < len(out)-3; i += 2 {
				if rnd.IntN(2) == 0 {
					out[i], out[i+1] = out[i+1], out[i]
				}
			}
			return out
		}, 5},
		{"reversed window", func(fs []frame) []frame {
			out := append([]frame(nil), fs...)
			for i, j := 10, 20; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
			return out
		}, 5},
		{"cut in the middle: no start", func(fs []frame) []frame {
			// The capture starts in the middle of the second message.
			return fs[len(fs)/4:]
		}, 4},
		{"cut in the middle: no end", func(fs []frame) []frame {
			return fs[:len(fs)/2]
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, config.Monitor, false)
			f := sessionFrames(t, "40020", 5)
			r.replay(t, tt.mangle(f.frames))
			got := r.wouldBlock()
			if len(got) != 1 {
				t.Fatalf("would_block events = %d, want 1", len(got))
			}
			if got[0].Messages < tt.want-1 || got[0].Messages > tt.want {
				t.Errorf("Messages = %d, want %d", got[0].Messages, tt.want)
			}
			if !strings.HasPrefix(tt.name, "cut") && got[0].Messages != tt.want {
				t.Errorf("Messages = %d, want exactly %d", got[0].Messages, tt.want)
			}
		})
	}
}

func TestPipelinedAndBigBody(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	f := newTCPFlow(t, pc+":40030", mx+":25").handshake()
	f.server("220 mx ESMTP\r\n")
	f.client("EHLO pc\r\n")
	f.server("250-mx\r\n250 PIPELINING\r\n")
	// RFC 2920: the whole envelope in one segment, the replies in another.
	f.client("MAIL FROM:<p@pc.example> SIZE=1048576\r\nRCPT TO:<a@one.example>\r\nRCPT TO:<b@two.example>\r\nDATA\r\n")
	f.server("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
	body := bigBody(1 << 20)
	f.client(body + ".\r\n")
	f.server("250 queued\r\n")
	// A second message rejected at RCPT, then DATA refused: no body.
	f.client("MAIL FROM:<p@pc.example>\r\nRCPT TO:<c@three.example>\r\nDATA\r\n")
	f.server("250 ok\r\n250 ok\r\n554 no valid recipients\r\n")
	f.client("RSET\r\nMAIL FROM:<p@pc.example>\r\nRCPT TO:<d@four.example>\r\nDATA\r\n")
	f.server("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
	f.client("short\r\n.\r\nQUIT\r\n")
	f.server("250 queued\r\n221 bye\r\n")
	f.close()
	r.replay(t, f.frames)
	got := r.wouldBlock()
	if len(got) != 1 {
		t.Fatalf("would_block events = %d, want 1", len(got))
	}
	want := envelope{Client: pc, Server: mx, Helo: "pc", MailFrom: "p@pc.example",
		Rcpt: []string{"a@one.example", "b@two.example", "c@three.example", "d@four.example"}, Messages: 2, Code: 250}
	if diff := cmp.Diff(want, envOf(got[0])); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

// bigBody returns a body of about n bytes with lines that look like SMTP
// but are not the end of data.
func bigBody(n int) string {
	var b strings.Builder
	b.WriteString("Subject: big\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		switch i % 5 {
		case 0:
			b.WriteString("..leading dot, stuffed\r\n")
		case 1:
			b.WriteString("MAIL FROM:<not-a-command@example.com>\r\n")
		case 2:
			b.WriteString(".\r \r\n") // not the end
		default:
			b.WriteString(strings.Repeat("x", 70) + "\r\n")
		}
	}
	return b.String()
}

func TestStartTLSStopsParsing(t *testing.T) {
	for _, oneSided := range []bool{false, true} {
		name := "both directions"
		if oneSided {
			name = "client only"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, config.Monitor, false)
			f := newTCPFlow(t, pc+":40040", mx+":25").handshake()
			f.server("220 mx ESMTP\r\n")
			f.client("EHLO pc\r\n")
			f.server("250-mx\r\n250 STARTTLS\r\n")
			f.client("STARTTLS\r\n")
			f.server("220 2.0.0 Ready to start TLS\r\n")
			f.client("\x16\x03\x01\x02\x00MAIL FROM:<hidden@x.example>\r\nDATA\r\nbody\r\n.\r\n")
			f.server("\x16\x03\x03\x00\x40 250 fake\r\n")
			f.close()
			frames := f.frames
			if oneSided {
				frames = nil
				for _, fr := range f.frames {
					if bytes.Equal(fr.data[6:12], macCli) {
						frames = append(frames, fr)
					}
				}
			}
			r.replay(t, frames)
			got := r.wouldBlock()
			if len(got) != 1 {
				t.Fatalf("would_block events = %d, want 1", len(got))
			}
			want := envelope{Client: pc, Server: mx, Helo: "pc", Rcpt: []string{}, Encrypted: true, Code: 220}
			if oneSided {
				want.Code = 0
			}
			e := got[0]
			if e.Rcpt == nil {
				e.Rcpt = []string{}
			}
			if diff := cmp.Diff(want, envOf(e)); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBDATAndAuth(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	f := newTCPFlow(t, pc+":40050", mx+":587").handshake()
	f.server("220 mx ESMTP\r\n")
	f.client("EHLO pc\r\n")
	f.server("250-mx\r\n250-CHUNKING\r\n250 AUTH PLAIN LOGIN\r\n")
	f.client("AUTH LOGIN\r\n")
	f.server("334 VXNlcm5hbWU6\r\n")
	f.client("dXNlcg==\r\n")
	f.server("334 UGFzc3dvcmQ6\r\n")
	f.client("cGFzcw==\r\n")
	f.server("235 2.7.0 Authentication successful\r\n")
	f.client("MAIL FROM:<u@pc.example>\r\nRCPT TO:<z@zz.example>\r\n")
	f.server("250 ok\r\n250 ok\r\n")
	f.client("BDAT 11\r\nRCPT TO:<x>BDAT 8 LAST\r\n.\r\n\r\n.\r\n")
	f.server("250 ok\r\n250 queued\r\n")
	f.client("QUIT\r\n")
	f.close()
	c := testConfig(config.Monitor)
	c.Ports = []int{25, 587}
	r.in.SetConfig(c)
	r.replay(t, f.frames)
	got := r.wouldBlock()
	if len(got) != 1 {
		t.Fatalf("would_block events = %d, want 1", len(got))
	}
	if got[0].Messages != 1 || got[0].Code != 250 || len(got[0].Rcpt) != 1 {
		t.Errorf("event = %+v, want 1 message, code 250, 1 recipient", got[0])
	}
	if !strings.Contains(got[0].Detail, "AUTH LOGIN (succeeded)") {
		t.Errorf("Detail = %q, want AUTH LOGIN (succeeded)", got[0].Detail)
	}
}

func TestIdleSweep(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	f := newTCPFlow(t, pc+":40060", mx+":25").handshake()
	f.server("220 mx\r\n")
	f.client("HELO pc\r\n")
	for _, fr := range f.frames {
		r.in.Process(fr.data, fr.ci)
	}
	r.in.Sweep(f.now.Add(time.Minute))
	if got := r.wouldBlock(); len(got) != 0 {
		t.Fatalf("flow ended after 1m idle: %+v", got)
	}
	if got := r.in.Stats().FlowsActive; got != 1 {
		t.Errorf("FlowsActive = %d, want 1", got)
	}
	r.in.Sweep(f.now.Add(DefaultIdleTimeout))
	if got := r.wouldBlock(); len(got) != 1 || got[0].Helo != "pc" {
		t.Fatalf("after idle timeout: %+v, want one event with HELO pc", got)
	}
	if got := r.in.Stats().FlowsActive; got != 0 {
		t.Errorf("FlowsActive = %d, want 0", got)
	}
}

func TestLiveConfigChange(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	c := testConfig(config.Monitor)
	c.Relays = append(c.Relays, config.Relay{Name: "new", Address: config.MustParsePrefix(pc + "/32")})
	r.in.SetConfig(c)
	r.replay(t, sessionFrames(t, "40070", 1).frames)
	if got := r.wouldBlock(); len(got) != 0 {
		t.Errorf("host made a relay live still gives would_block: %+v", got)
	}
}

func TestInventoryAndEvidence(t *testing.T) {
	r := newRig(t, config.Monitor, true)
	var frames []frame
	for i := 0; i < 7; i++ {
		f := newTCPFlow(t, pc+":"+itoa(42000+i), mx+":25")
		f.now = t0.Add(time.Duration(i) * time.Second)
		f.smtpSession("pc", "bot@pc.example", []string{"a@one.example", "b@Two.example"}, 1)
		frames = append(frames, f.frames...)
	}
	f := newTCPFlow(t, "[2001:db8:10::25]:43000", "[2001:db8:25::25]:25").smtpSession("relay6", "u@x.example", []string{"q@three.example"}, 2)
	frames = append(frames, f.frames...)
	r.replay(t, frames)

	ctx := context.Background()
	hosts, err := r.in.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 {
		t.Fatalf("Inventory() = %d hosts, want 2: %+v", len(hosts), hosts)
	}
	h, err := r.in.Host(ctx, netip.MustParseAddr(pc))
	if err != nil {
		t.Fatal(err)
	}
	if h.Flows != 7 || h.Messages != 7 || h.Label != "Koror 1st floor" || !h.Evidence || h.Relay != "" {
		t.Errorf("Host(%s) = %+v, want 7 flows, 7 messages, label, evidence", pc, h)
	}
	if diff := cmp.Diff([]string{"one.example", "two.example"}, h.RcptDomains); diff != "" {
		t.Errorf("RcptDomains (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{mx}, h.RemoteMXs); diff != "" {
		t.Errorf("RemoteMXs (-want +got):\n%s", diff)
	}
	h6, err := r.in.Host(ctx, netip.MustParseAddr("2001:db8:10::25"))
	if err != nil {
		t.Fatal(err)
	}
	if h6.Relay != "relay6" || h6.Evidence || h6.Messages != 2 {
		t.Errorf("relay host = %+v, want relay6 without evidence, 2 messages", h6)
	}
	if _, err := r.in.Host(ctx, netip.MustParseAddr("192.0.2.1")); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("Host(unseen) error = %v, want ErrUnknownHost", err)
	}
	if _, err := r.in.HostPcap(netip.MustParseAddr("2001:db8:10::25")); !errors.Is(err, ErrNoEvidence) {
		t.Errorf("HostPcap(relay) error = %v, want ErrNoEvidence", err)
	}

	rc, err := r.in.HostPcap(netip.MustParseAddr(pc))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := pr.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	cfg := testConfig(config.Monitor)
	wantMax := cfg.Inspect.PcapFlowsPerHost * cfg.Inspect.PcapPacketsPerFlow
	if n == 0 || n > wantMax {
		t.Errorf("evidence has %d packets, want 1..%d", n, wantMax)
	}
	if cfg.Inspect.PcapFlowsPerHost < 7 && n >= len(frames)-len(f.frames) {
		t.Errorf("evidence has %d packets: flows beyond pcap_flows_per_host=%d were kept", n, cfg.Inspect.PcapFlowsPerHost)
	}

	path := filepath.Join(t.TempDir(), "host.pcap")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: skipping the tshark -r check")
		return
	}
	out, err := exec.Command(tshark, "-r", path, "-Y", "smtp").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", path, err, out)
	}
	if !strings.Contains(string(out), "MAIL FROM:<bot@pc.example>") {
		t.Errorf("tshark -r shows no SMTP MAIL FROM:\n%s", out)
	}
}

func TestEvidenceDiskBound(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	c := testConfig(config.Monitor)
	c.Inspect.PcapMaxMB = 1
	c.Inspect.PcapFlowsPerHost = 100
	c.Inspect.PcapPacketsPerFlow = 100000
	r.in.SetConfig(c)
	var frames []frame
	for i := 0; i < 4; i++ {
		f := newTCPFlow(t, "10.20.1."+itoa(i+1)+":40000", mx+":25")
		f.handshake().client("MAIL FROM:<a@b>\r\nDATA\r\n" + bigBody(400<<10) + ".\r\n").close()
		frames = append(frames, f.frames...)
		r.replay(t, frames)
		frames = nil
	}
	if got := r.in.Stats().EvidenceBytes; got > 1<<20 {
		t.Errorf("EvidenceBytes = %d, want <= 1 MiB", got)
	}
	if _, err := r.in.HostPcap(netip.MustParseAddr("10.20.1.1")); !errors.Is(err, ErrNoEvidence) {
		t.Errorf("oldest host's evidence not evicted: err = %v", err)
	}
	if _, err := r.in.HostPcap(netip.MustParseAddr("10.20.1.4")); err != nil {
		t.Errorf("newest host's evidence: %v", err)
	}
}

func TestNotSMTPIgnored(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	f := newTCPFlow(t, pc+":40080", mx+":443").handshake().client("GET / HTTP/1.1\r\n\r\n").close()
	r.replay(t, f.frames)
	if got := r.rec.all(); len(got) != 0 {
		t.Errorf("non-SMTP flow recorded: %+v", got)
	}
	if got := r.in.Stats(); got.FlowsTotal != 0 || got.Packets != uint64(len(f.frames)) {
		t.Errorf("Stats() = %+v, want 0 flows, %d packets", got, len(f.frames))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// clientOnly keeps the frames the client sent (what enforce mode's capture
// sees of a diverted session: the proxy's answers leave by the box).
func clientOnly(fs []frame) []frame {
	var out []frame
	for _, fr := range fs {
		if bytes.Equal(fr.data[6:12], macCli) {
			out = append(out, fr)
		}
	}
	return out
}

func TestOneSided(t *testing.T) {
	t.Run("client only", func(t *testing.T) {
		r := newRig(t, config.Monitor, false)
		r.replay(t, clientOnly(sessionFrames(t, "40090", 3).frames))
		got := r.wouldBlock()
		if len(got) != 1 || got[0].Messages != 3 || len(got[0].Rcpt) != 3 {
			t.Fatalf("would_block = %+v, want one event with 3 messages and 3 recipients", got)
		}
	})
	t.Run("server only", func(t *testing.T) {
		r := newRig(t, config.Monitor, false)
		var fs []frame
		for _, fr := range sessionFrames(t, "40091", 3).frames {
			if bytes.Equal(fr.data[6:12], macSrv) {
				fs = append(fs, fr)
			}
		}
		r.replay(t, fs)
		if got := r.in.Stats().FlowsTotal; got != 0 {
			t.Errorf("server-only packets made %d flows, want 0", got)
		}
	})
}

func TestResetEndsFlow(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	f := newTCPFlow(t, pc+":40095", mx+":25").handshake()
	f.server("220 mx\r\n").client("EHLO pc\r\nMAIL FROM:<r@pc.example>\r\n").reset()
	for _, fr := range f.frames {
		r.in.Process(fr.data, fr.ci)
	}
	got := r.wouldBlock()
	if len(got) != 1 || got[0].MailFrom != "r@pc.example" {
		t.Fatalf("after RST: would_block = %+v, want one event from r@pc.example", got)
	}
	if n := r.in.Stats().FlowsActive; n != 0 {
		t.Errorf("FlowsActive = %d after RST, want 0", n)
	}
}

// TestLabPcap replays traffic recorded with tcpdump on the lab box's inside
// port: swaks from the PC over IPv4 and IPv6 (pipelined) and from the relay,
// to labmx.
func TestLabPcap(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	src, err := OpenPcap(filepath.Join("testdata", "lab-swaks.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := r.in.Replay(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	var got []envelope
	for _, e := range r.wouldBlock() {
		got = append(got, envOf(e))
	}
	want := []envelope{
		{Client: pc, Server: mx, Helo: "pc.lab.example", MailFrom: "bot@pc.lab.example",
			Rcpt: []string{"victim1@remote.example", "victim2@other.example"}, Messages: 1, Code: 250},
		{Client: "2001:db8:20::50", Server: "2001:db8:25::25", Helo: "pc.lab.example", MailFrom: "bot6@pc.lab.example",
			Rcpt: []string{"victim@remote.example"}, Messages: 1, Code: 250},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("would_block events (-want +got):\n%s", diff)
	}
	if n := r.ser.get(store.SeriesInspectMessages, relay); n != 1 {
		t.Errorf("relay messages = %d, want 1", n)
	}
}

// TestEvidenceInCaptureOrder feeds a flow as the two capture ports deliver
// it, in blocks per port (the client's first segments, then the server's
// side, then the rest of the client's), with the periodic flush running
// between the blocks. The pcap served must hold every packet in capture
// order at each point, else tshark misreads the SMTP dialogue.
func TestEvidenceInCaptureOrder(t *testing.T) {
	r := newRig(t, config.Monitor, false)
	now := t0
	r.in.opts.Now = func() time.Time { return now }
	f := newTCPFlow(t, pc+":42000", mx+":25").smtpSession("pc", "bot@pc.example", []string{"a@one.example"}, 1)
	var cli, srv []frame
	for _, fr := range f.frames {
		if bytes.Equal(fr.data[6:12], macCli) {
			cli = append(cli, fr)
		} else {
			srv = append(srv, fr)
		}
	}
	ctx := context.Background()
	seen := 0
	for i, block := range [][]frame{cli[:4], srv, cli[4:]} {
		for _, fr := range block {
			r.in.Process(fr.data, fr.ci)
		}
		seen += len(block)
		if i == 2 {
			seen-- // the client's last ACK follows both FINs: the flow has ended
		}
		now = now.Add(200 * time.Millisecond)
		if err := r.in.flush(ctx, now.Add(-evidenceHoldback)); err != nil {
			t.Fatal(err)
		}
		checkEvidenceOrder(t, r.in, "after block "+itoa(i+1), seen)
	}
	now = now.Add(2 * evidenceHoldback)
	if err := r.in.flush(ctx, now.Add(-evidenceHoldback)); err != nil {
		t.Fatal(err)
	}
	if r.in.Stats().EvidenceBytes == 0 {
		t.Error("evidence older than the holdback was not written to disk")
	}
	checkEvidenceOrder(t, r.in, "from disk", seen)
}

func checkEvidenceOrder(t *testing.T, in *Inspector, when string, want int) {
	t.Helper()
	rc, err := in.HostPcap(netip.MustParseAddr(pc))
	if err != nil {
		t.Fatalf("%s: HostPcap: %v", when, err)
	}
	defer rc.Close()
	pr, err := pcapgo.NewReader(rc)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	var last time.Time
	n := 0
	for {
		_, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v", when, n+1, err)
		}
		n++
		if ci.Timestamp.Before(last) {
			t.Errorf("%s: packet %d captured at %s comes after one captured at %s", when, n, ci.Timestamp.Format(time.StampMicro), last.Format(time.StampMicro))
		}
		last = ci.Timestamp
	}
	if n != want {
		t.Errorf("%s: evidence has %d packets, want %d", when, n, want)
	}
}

// TestMonitorRelayedFeedsSeries: in monitor mode a relay's sessions are
// recorded as relayed events, and the store counts them in the series the
// dashboard draws (messages per relay and per relay and sender, sessions
// per client, encrypted sessions), as the proxy's events do in enforce
// mode.
func TestMonitorRelayedFeedsSeries(t *testing.T) {
	r := newRig(t, config.Monitor, true)
	r.in.opts.Recorder = r.st
	var frames []frame
	for i := 0; i < 4; i++ {
		f := newTCPFlow(t, relay+":"+itoa(41100+i), mx+":25")
		f.now = t0.Add(time.Duration(i) * 10 * time.Second)
		f.smtpSession("relay.example", "User@Example.com", []string{"r@remote.example"}, 5)
		frames = append(frames, f.frames...)
	}
	enc := newTCPFlow(t, relay+":41200", mx+":25").handshake()
	enc.server("220 mx ESMTP\r\n")
	enc.client("EHLO relay.example\r\n")
	enc.server("250-mx\r\n250 STARTTLS\r\n")
	enc.client("STARTTLS\r\n")
	enc.server("220 2.0.0 Ready to start TLS\r\n")
	enc.client("\x16\x03\x01\x02\x00 encrypted\r\n")
	enc.close()
	frames = append(frames, enc.frames...)
	r.replay(t, frames)
	ctx := context.Background()
	if err := r.st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sum := func(metric, key string) int64 {
		pts, err := r.st.Series(ctx, store.SeriesQuery{Metric: metric, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range pts {
			n += p.Value
		}
		return n
	}
	got := map[string]int64{
		"relay_messages":           sum(store.SeriesRelayMessages, "mail-relay"),
		"relay_sender_messages":    sum(store.SeriesRelaySenderMessages, store.RelaySenderKey("mail-relay", "user@example.com")),
		"attempts_relayed":         sum(store.AttemptsSeries(event.Relayed), relay),
		"relay_encrypted_sessions": sum(store.SeriesRelayEncrypted, "mail-relay"),
	}
	want := map[string]int64{"relay_messages": 20, "relay_sender_messages": 20, "attempts_relayed": 5, "relay_encrypted_sessions": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	evs, err := r.st.Events(ctx, store.Query{Kind: event.Relayed, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 {
		t.Fatalf("relayed events = %d, want 5 (one per session)", len(evs))
	}
	for _, e := range evs {
		if e.Relay != "mail-relay" || !strings.HasPrefix(e.Detail, "seen passively") {
			t.Errorf("relayed event %+v, want relay mail-relay and a passive detail", e)
		}
	}
}
