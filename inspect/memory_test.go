package inspect

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/event"
)

const (
	flooder   = "10.20.0.66"
	bystander = "10.20.0.77"
)

// budgetRig is a monitor-mode inspector whose flows may hold mb MiB.
func budgetRig(t *testing.T, mb int) *rig {
	t.Helper()
	r := newRig(t, config.Monitor, false)
	c := testConfig(config.Monitor)
	c.Inspect.MemoryMB = mb
	r.in.SetConfig(c)
	return r
}

// longRcpts are n recipients of about 300 bytes each.
func longRcpts(tag string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%03d-%s@example.net", tag, i, strings.Repeat("r", 280)))
	}
	return out
}

// heldFlow is a session left half-finished, as a flooding host leaves
// hundreds: 100 long recipients pipelined, then DATA and ~60 KB of body
// whose 354 never came, so the parser holds it all (DATA hold).
func heldFlow(t testing.TB, cli string, start time.Time) *tcpFlow {
	f := newTCPFlow(t, cli, mx+":25")
	f.now = start
	f.handshake()
	f.server("220 mx.example ESMTP\r\n")
	f.client("EHLO bot\r\n")
	f.server("250 mx.example\r\n")
	f.client("MAIL FROM:<bot@bot.example>\r\n")
	f.server("250 2.1.0 Ok\r\n")
	var b strings.Builder
	for _, r := range longRcpts("flood", maxRcpt) {
		b.WriteString("RCPT TO:<" + r + ">\r\n")
	}
	f.client(b.String())
	f.client("DATA\r\n")
	f.client(strings.Repeat("buy cheap stuff\r\n", 3500))
	return f
}

// feed passes frames through the decoder one by one, as live capture does,
// and checks after each that the accounted memory stays within the budget.
// It returns the highest accounted usage seen and whether it ever went down.
func feed(t *testing.T, in *Inspector, frames []frame) (peak int64, dropped bool) {
	t.Helper()
	budget := in.Stats().MemoryBudget
	last := in.Stats().MemoryBytes
	for _, fr := range frames {
		in.Process(fr.data, fr.ci)
		s := in.Stats()
		if s.MemoryBytes > budget {
			t.Fatalf("accounted inspection memory = %d, over the budget %d", s.MemoryBytes, budget)
		}
		peak = max(peak, s.MemoryBytes)
		dropped = dropped || s.MemoryBytes < last
		last = s.MemoryBytes
	}
	return peak, dropped
}

// checkAccounting: what the budget holds is exactly what the tracked flows
// were charged, per source and in total.
func checkAccounting(t *testing.T, in *Inspector) {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	total, bySrc := 0, map[string]int{}
	for _, f := range in.flows {
		if f.mem < flowOverhead {
			t.Errorf("flow %v charged %d, less than its overhead %d", f.key, f.mem, flowOverhead)
		}
		total += f.mem
		bySrc[f.src.String()] += f.mem
	}
	if total != in.mem.used {
		t.Errorf("budget used = %d, the flows were charged %d", in.mem.used, total)
	}
	got := map[string]int{}
	for k, v := range in.mem.bySrc {
		got[k.String()] = v
	}
	if diff := cmp.Diff(bySrc, got); diff != "" {
		t.Errorf("per source charges (-flows +budget):\n%s", diff)
	}
}

// TestMemoryBudgetSheds: a host floods with half-finished sessions that
// each hold a DATA body and 100 long recipients. The accounted memory never
// exceeds inspect.memory_mb, the flooder's flows are shed and counted (and
// reported as not fully inspected), their memory is released, and the
// sessions of another host, one that started before the flood and ended
// after it and one that came after it, are still inspected in full.
func TestMemoryBudgetSheds(t *testing.T) {
	r := budgetRig(t, 1)
	in := r.in
	early := newTCPFlow(t, bystander+":41000", mx+":25").
		smtpSession("pc77", "alice@corp.example", longRcpts("early", maxRcpt), 2)
	half := len(early.frames) / 2
	feed(t, in, early.frames[:half])
	if in.Stats().FlowsActive != 1 {
		t.Fatalf("flows active = %d after half a session, want 1", in.Stats().FlowsActive)
	}
	const floods = 60 // about 6 MiB held without a budget
	var peak int64
	var dropped bool
	var first *tcpFlow
	for i := range floods {
		start := t0.Add(time.Minute + time.Duration(i)*time.Second)
		f := heldFlow(t, fmt.Sprintf("%s:%d", flooder, 42000+i), start)
		p, d := feed(t, in, f.frames)
		peak, dropped = max(peak, p), dropped || d
		checkAccounting(t, in)
		if i == 0 {
			first = f
		}
	}
	// The first flood flow was shed (the flooder's longest idle); when it
	// sends on, it is not taken up again as a new flow.
	if _, ok := in.mem.gone[flowKey{first.cli, first.srv}]; !ok {
		t.Fatalf("the first flood flow %v is not remembered as shed", first.cli)
	}
	flows, shed := in.Stats().FlowsTotal, in.Stats().MemoryShed
	first.frames = nil
	feed(t, in, first.client(strings.Repeat("buy more stuff\r\n", 200)).frames)
	if s := in.Stats(); s.FlowsTotal != flows || s.MemoryShed != shed {
		t.Errorf("a shed connection sending on: FlowsTotal %d -> %d, MemoryShed %d -> %d, want both unchanged", flows, s.FlowsTotal, shed, s.MemoryShed)
	}
	rest := early.frames[half:]
	for i := range rest {
		rest[i].ci.Timestamp = rest[i].ci.Timestamp.Add(2 * time.Minute)
	}
	feed(t, in, rest)
	late := newTCPFlow(t, bystander+":41001", mx+":25")
	late.now = t0.Add(3 * time.Minute)
	late.smtpSession("pc77", "bob@corp.example", longRcpts("late", maxRcpt), 1)
	feed(t, in, late.frames)

	s := in.Stats()
	t.Logf("budget %d, peak accounted %d, shed %d, active %d", s.MemoryBudget, peak, s.MemoryShed, s.FlowsActive)
	if s.MemoryShed == 0 {
		t.Errorf("MemoryShed = 0 after %d flows of %d KiB each in a %d byte budget, want > 0", floods, 100, s.MemoryBudget)
	}
	if !dropped {
		t.Error("the accounted memory never went down: shed flows' memory was not released")
	}
	if peak < s.MemoryBudget/2 {
		t.Errorf("peak accounted memory = %d, want near the budget %d (is the DATA hold charged?)", peak, s.MemoryBudget)
	}

	byClient := map[string][]event.Event{}
	for _, e := range r.wouldBlock() {
		byClient[e.Client.String()] = append(byClient[e.Client.String()], e)
	}
	good := byClient[bystander]
	if len(good) != 2 {
		t.Fatalf("would_block events of %s = %d, want 2 (its sessions, before and after the flood)", bystander, len(good))
	}
	for _, e := range good {
		if strings.Contains(e.Detail, "not fully inspected") {
			t.Errorf("%s's session was shed: %q", bystander, e.Detail)
		}
	}
	slices.SortFunc(good, func(a, b event.Event) int { return strings.Compare(a.MailFrom, b.MailFrom) })
	want := []envelope{
		{Client: bystander, Server: mx, Helo: "pc77", MailFrom: "alice@corp.example", Rcpt: longRcpts("early", maxRcpt), Messages: 2, Code: 250},
		{Client: bystander, Server: mx, Helo: "pc77", MailFrom: "bob@corp.example", Rcpt: longRcpts("late", maxRcpt), Messages: 1, Code: 250},
	}
	if diff := cmp.Diff(want, []envelope{envOf(good[0]), envOf(good[1])}); diff != "" {
		t.Errorf("%s's sessions (-want +got):\n%s", bystander, diff)
	}
	// The shed flows leave evidence: an event saying the host was not
	// fully inspected, as far as it was parsed.
	shedEvents := 0
	for _, e := range byClient[flooder] {
		if strings.Contains(e.Detail, "not fully inspected") {
			shedEvents++
			if e.MailFrom != "bot@bot.example" {
				t.Errorf("shed flow's event MailFrom = %q, want bot@bot.example", e.MailFrom)
			}
		}
	}
	if uint64(shedEvents) != s.MemoryShed {
		t.Errorf("events of shed flows = %d, want %d (MemoryShed)", shedEvents, s.MemoryShed)
	}

	in.Finish()
	if s := in.Stats(); s.MemoryBytes != 0 || s.FlowsActive != 0 {
		t.Errorf("after Finish: MemoryBytes = %d, FlowsActive = %d, want 0 and 0", s.MemoryBytes, s.FlowsActive)
	}
	if len(in.mem.bySrc) != 0 {
		t.Errorf("per source charges after Finish = %v, want none", in.mem.bySrc)
	}
}

// TestMemoryAccountingBalances: sessions with retransmissions, reordering,
// lost segments, pipelining, STARTTLS, BDAT and resets, ended in every way
// (FIN, RST, idle sweep, Finish), leave nothing charged: the accounting
// does not leak.
func TestMemoryAccountingBalances(t *testing.T) {
	r := budgetRig(t, 64)
	in := r.in
	rnd := rand.New(rand.NewPCG(3, 4))
	var frames []frame
	for i := range 40 {
		f := newTCPFlow(t, fmt.Sprintf("10.20.1.%d:%d", i%7+1, 43000+i), mx+":25")
		switch i % 5 {
		case 0:
			f.smtpSession("a", "a@x.example", longRcpts("b", 120), 3)
		case 1:
			f = heldFlow(t, fmt.Sprintf("10.20.1.%d:%d", i%7+1, 43000+i), t0).reset()
		case 2:
			f.handshake().server("220 mx\r\n").client("EHLO a\r\n").server("250 mx\r\n").
				client("STARTTLS\r\n").server("220 go\r\n").client("\x16\x03\x01 hello").close()
		case 3:
			f.handshake().server("220 mx\r\n").client("EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 10 LAST\r\n0123456789").
				client(strings.Repeat("x", 5000)) // a line longer than maxLine, left open: swept
		case 4:
			f.smtpSession("a", "a@x.example", []string{"c@d.example"}, 2)
		}
		fs := f.frames
		// Damage: swap neighbours, drop a few, duplicate a few.
		for j := 3; j+1 < len(fs); j++ {
			switch rnd.IntN(12) {
			case 0:
				fs[j], fs[j+1] = fs[j+1], fs[j]
			case 1:
				fs = slices.Delete(fs, j, j+1)
			case 2:
				fs = slices.Insert(fs, j, fs[j])
				j++
			}
		}
		frames = append(frames, fs...)
	}
	// Interleave the flows' frames.
	rnd.Shuffle(len(frames)/4, func(i, j int) {
		// Swap blocks of four to keep some order within flows.
		for k := range 4 {
			frames[4*i+k], frames[4*j+k] = frames[4*j+k], frames[4*i+k]
		}
	})
	feed(t, in, frames)
	checkAccounting(t, in)
	if in.Stats().MemoryBytes == 0 {
		t.Fatal("nothing charged with flows open")
	}
	in.Sweep(t0.Add(time.Hour))
	if s := in.Stats(); s.MemoryBytes != 0 || s.FlowsActive != 0 || s.MemoryShed != 0 {
		t.Errorf("after the sweep: MemoryBytes = %d, FlowsActive = %d, MemoryShed = %d, want all 0", s.MemoryBytes, s.FlowsActive, s.MemoryShed)
	}
}

// TestMemoryBudgetBoundsHeap measures the heap, not only the accounting: a
// flood of half-finished sessions that would hold ~100 MiB grows the heap
// by little more than the budget (8 MiB).
func TestMemoryBudgetBoundsHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a thousand flows")
	}
	// Events go to a counter and no evidence is kept: the store and the
	// evidence buffers (maxEvidenceMem) have bounds of their own.
	c := testConfig(config.Monitor)
	c.Inspect.MemoryMB = 8
	var rec countingRecorder
	in, err := New(c, Options{Recorder: &rec, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	const floods = 1000
	for i := range floods {
		// Each flood flow from its own host: none can be singled out.
		cli := fmt.Sprintf("10.21.%d.%d:%d", i/250, i%250+1, 44000+i)
		for _, fr := range heldFlow(t, cli, t0.Add(time.Duration(i)*time.Second)).frames {
			in.Process(fr.data, fr.ci)
		}
	}
	after := heap()
	s := in.Stats()
	grew := int64(after) - int64(before)
	t.Logf("HeapInuse before %d MiB, after %d MiB (grew %d MiB); accounted %d MiB of %d MiB, %d flows active, %d shed, %d events",
		before>>20, after>>20, grew>>20, s.MemoryBytes>>20, s.MemoryBudget>>20, s.FlowsActive, s.MemoryShed, rec.n.Load())
	if limit := 2 * s.MemoryBudget; grew > limit {
		t.Errorf("HeapInuse grew by %d bytes with flows open, want at most %d (twice the budget)", grew, limit)
	}
	runtime.KeepAlive(in)
}

// countingRecorder counts events and keeps none.
type countingRecorder struct{ n atomic.Int64 }

func (r *countingRecorder) Record(event.Event) { r.n.Add(1) }
