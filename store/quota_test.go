package store

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
)

// TestRecordClipsHugeEnvelope: an event with a 200 KB HELO, MAIL FROM and
// 100 recipients of 2000 octets each (what a refusal dialogue could keep
// before it clipped) is stored within the bounds of one event, and still
// says how many recipients there were.
func TestRecordClipsHugeEnvelope(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "", Options{})
	huge := strings.Repeat("x", 200<<10)
	rcpt := make([]string, 100)
	for i := range rcpt {
		rcpt[i] = fmt.Sprintf("%d@%s", i, strings.Repeat("r", 2000))
	}
	pc := netip.MustParseAddr("10.0.0.5")
	s.Record(event.Event{Kind: event.Blocked, Client: pc, Helo: huge, MailFrom: huge + "@evil.example",
		Rcpt: rcpt, Detail: huge})
	flush(t, s)
	evs, err := s.Events(ctx, Query{Client: pc})
	if err != nil || len(evs) != 1 {
		t.Fatalf("Events() = %d events, %v; want 1", len(evs), err)
	}
	e := evs[0]
	if len(e.Helo) != event.MaxHelo || len(e.MailFrom) != event.MaxPath || len(e.Detail) != event.MaxText {
		t.Errorf("stored helo, mail_from, detail = %d, %d, %d octets; want %d, %d, %d",
			len(e.Helo), len(e.MailFrom), len(e.Detail), event.MaxHelo, event.MaxPath, event.MaxText)
	}
	for _, r := range e.Rcpt {
		if len(r) > event.MaxPath {
			t.Fatalf("stored recipient of %d octets, want at most %d", len(r), event.MaxPath)
		}
	}
	if got := len(e.Rcpt) + e.RcptDropped; got != 100 || e.RcptDropped == 0 {
		t.Errorf("rcpt kept %d + dropped %d = %d, want 100 with some dropped", len(e.Rcpt), e.RcptDropped, got)
	}
	if n := e.StoredBytes(); n > event.MaxBytes+event.FixedBytes {
		t.Errorf("StoredBytes() = %d, want at most %d", n, event.MaxBytes+event.FixedBytes)
	}
	var rowLen int64
	if err := s.db.QueryRow(`SELECT length(helo) + length(mail_from) + length(rcpt) + length(detail) FROM events`).Scan(&rowLen); err != nil {
		t.Fatal(err)
	}
	if rowLen > event.MaxBytes {
		t.Errorf("stored row holds %d octets of text, want at most %d", rowLen, event.MaxBytes)
	}
}

// dbFileBytes is the size of the database file and its write-ahead log.
func dbFileBytes(t *testing.T, s *Store) (db, wal int64) {
	t.Helper()
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if wi, err := os.Stat(s.Path() + "-wal"); err == nil {
		wal = wi.Size()
	}
	return fi.Size(), wal
}

// TestByteQuota: one host records far beyond the byte quota next to a few
// quiet hosts. After each prune the database file is within the quota;
// every host keeps its first and its latest event; the flooding host loses
// its middle events, the quiet hosts lose nothing.
func TestByteQuota(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clk.Now, MaxBytes: MinMaxBytes, EventsPerSourcePerMinute: -1})
	flood := netip.MustParseAddr("10.0.0.66")
	quiet := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8:1::1")}
	big := make([]string, 40)
	for i := range big {
		big[i] = fmt.Sprintf("%d%s@example.com", i, strings.Repeat("r", 300))
	}
	const rounds, perRound = 12, 200 // 2400 events of about 13 KB: 30 MB, the quota is 8 MiB
	seq := 0
	var maxDB, maxWAL int64
	for r := range rounds {
		for i := range perRound {
			seq++
			s.Record(event.Event{Time: base.Add(time.Duration(seq) * time.Second), Kind: event.Blocked,
				Client: flood, Helo: "bot", Rcpt: big, Detail: fmt.Sprintf("flood %d", seq)})
			if i%50 == 0 {
				for _, q := range quiet {
					s.Record(event.Event{Time: base.Add(time.Duration(seq) * time.Second), Kind: event.Blocked,
						Client: q, Detail: fmt.Sprintf("quiet %s %d", q, seq)})
				}
			}
		}
		flush(t, s)
		if _, err := s.Prune(ctx); err != nil {
			t.Fatalf("Prune() round %d = %v", r, err)
		}
		db, wal := dbFileBytes(t, s)
		maxDB, maxWAL = max(maxDB, db), max(maxWAL, wal)
	}
	t.Logf("quota %d, largest database file %d, largest WAL after a prune %d", s.MaxBytes(), maxDB, maxWAL)
	if maxDB > s.MaxBytes() {
		t.Errorf("database file reached %d octets, want at most the quota %d", maxDB, s.MaxBytes())
	}
	if maxWAL > walSizeLimit {
		t.Errorf("WAL file reached %d octets after a prune, want at most %d", maxWAL, walSizeLimit)
	}
	// The flood's first and latest event survive, its middle went.
	evs, err := s.Events(ctx, Query{Client: flood, Limit: maxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 2 || len(evs) >= rounds*perRound/2 {
		t.Fatalf("flooding host kept %d events, want its oldest evicted", len(evs))
	}
	if got, want := evs[0].Detail, fmt.Sprintf("flood %d", seq); got != want {
		t.Errorf("flooding host's latest event = %q, want %q", got, want)
	}
	if got := evs[len(evs)-1].Detail; got != "flood 1" {
		t.Errorf("flooding host's oldest event = %q, want its first, %q", got, "flood 1")
	}
	for _, q := range quiet {
		evs, err := s.Events(ctx, Query{Client: q, Limit: maxLimit})
		if err != nil {
			t.Fatal(err)
		}
		if want := rounds * perRound / 50; len(evs) != want {
			t.Errorf("quiet host %s kept %d events, want all %d", q, len(evs), want)
		}
	}
	// The counts stay true: the series counted every event.
	h, err := s.HostByAddr(ctx, flood)
	if err != nil {
		t.Fatal(err)
	}
	if h.Blocked != rounds*perRound {
		t.Errorf("flooding host's blocked count = %d, want %d", h.Blocked, rounds*perRound)
	}
}

// TestByteQuotaLastResort: when every host is down to its first and latest
// event and the quota is still exceeded, the oldest events go, whoever
// sent them.
func TestByteQuotaLastResort(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clk.Now, MaxBytes: MinMaxBytes, EventsPerSourcePerMinute: -1})
	big := []string{strings.Repeat("r", 300) + "@example.com"}
	for i := range 1500 { // 1500 hosts of two events of about 13 KB: 40 MB
		pc := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		for j := range 2 {
			s.Record(event.Event{Time: at(i*2 + j), Kind: event.Blocked, Client: pc, Rcpt: slicesRepeat(big, 40)})
		}
	}
	flush(t, s)
	if _, err := s.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if db, _ := dbFileBytes(t, s); db > s.MaxBytes() {
		t.Errorf("database file = %d octets, want at most the quota %d", db, s.MaxBytes())
	}
	evs, err := s.Events(ctx, Query{Limit: 1})
	if err != nil || len(evs) != 1 || !evs[0].Time.Equal(at(2999)) {
		t.Errorf("newest event after the last resort = %v, %v; want the one at %v", evs, err, at(2999))
	}
}

func slicesRepeat(s []string, n int) []string {
	out := make([]string, 0, len(s)*n)
	for range n {
		out = append(out, s...)
	}
	return out
}

// TestSourceBudget: a source stores at most its budget of events per
// minute (an IPv6 /64 is one source however many addresses it uses); the
// others are counted in the outcome series and in events_over_budget.
// Relays' events are not budgeted; the budget starts again each minute.
func TestSourceBudget(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clk.Now, EventsPerSourcePerMinute: 10})
	v4 := netip.MustParseAddr("10.0.0.5")
	quiet := netip.MustParseAddr("10.0.0.6")
	relay := netip.MustParseAddr("10.10.0.25")
	for i := range 50 {
		s.Record(event.Event{Kind: event.Blocked, Client: v4})
		s.Record(event.Event{Kind: event.Blocked, Client: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})})
		s.Record(event.Event{Kind: event.Relayed, Client: relay, Relay: "mail-relay", Messages: 1})
	}
	for range 3 {
		s.Record(event.Event{Kind: event.Blocked, Client: quiet})
	}
	flush(t, s)
	stored := func(p netip.Prefix) int {
		evs, err := s.Events(ctx, Query{Limit: maxLimit})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs {
			if p.Contains(e.Client) {
				n++
			}
		}
		return n
	}
	v6 := netip.MustParsePrefix("2001:db8::/64")
	for _, c := range []struct {
		p    netip.Prefix
		want int
	}{{netip.PrefixFrom(v4, 32), 10}, {v6, 10}, {netip.PrefixFrom(quiet, 32), 3}, {netip.PrefixFrom(relay, 32), 50}} {
		if got := stored(c.p); got != c.want {
			t.Errorf("events stored of %s = %d, want %d", c.p, got, c.want)
		}
	}
	if got := s.OverBudget(); got != 80 {
		t.Errorf("OverBudget() = %d, want 80", got)
	}
	h, err := s.HostByAddr(ctx, v4)
	if err != nil || h.Blocked != 50 || h.Attempts != 50 {
		t.Errorf("HostByAddr(%s) = %+v, %v; want 50 blocked attempts, held-back ones included", v4, h, err)
	}
	tot, err := s.TopKeys(ctx, SeriesOverBudget, time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"10.0.0.5/32": 40, "2001:db8::/64": 40}
	if len(tot) != 2 || tot[0].Value != want[tot[0].Key] || tot[1].Value != want[tot[1].Key] {
		t.Errorf("%s series = %+v, want %v", SeriesOverBudget, tot, want)
	}
	// The next minute, the budget starts again.
	clk.Set(base.Add(time.Minute))
	s.Record(event.Event{Kind: event.Blocked, Client: v4})
	flush(t, s)
	if got := stored(netip.PrefixFrom(v4, 32)); got != 11 {
		t.Errorf("events stored of %s after a minute = %d, want 11", v4, got)
	}
}

// TestInventoryBounded: a host rotating through IPv6 addresses grows
// neither the passive inventory nor the per-address series beyond their
// bounds; the addresses seen longest ago go first, and the totals of the
// folded series stay. The inventory also ages with the retention.
func TestInventoryBounded(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: base}
	// No budget: the events_over_budget key of the /64 would take a place.
	s := openTest(t, "", Options{Now: clk.Now, Retention: 24 * time.Hour, EventsPerSourcePerMinute: -1})
	s.maxHostsSeen, s.maxSeriesAddrs = 50, 50
	const n = 400
	addr := func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 12: byte(i >> 8), 13: byte(i), 15: 1})
	}
	stale := netip.MustParseAddr("2001:db8:9::1")
	deltas := []HostDelta{{Addr: stale, FirstSeen: base.Add(-48 * time.Hour), LastSeen: base.Add(-48 * time.Hour), Flows: 1}}
	for i := range n {
		ts := base.Add(time.Duration(i) * time.Minute)
		deltas = append(deltas, HostDelta{Addr: addr(i), FirstSeen: ts, LastSeen: ts, Flows: 1})
		s.Record(event.Event{Time: ts, Kind: event.Blocked, Client: addr(i)})
		s.AddSeries(SeriesInspectFlows, addr(i).String(), ts, 1)
	}
	if err := s.UpsertHosts(ctx, deltas); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	totalBlocked := func() int64 {
		pts, err := s.SeriesTotals(ctx, SeriesBlocked, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, p := range pts {
			sum += p.Value
		}
		return sum
	}
	if got := totalBlocked(); got != n {
		t.Fatalf("blocked total before pruning = %d, want %d", got, n)
	}
	clk.Set(base.Add(n * time.Minute))
	if _, err := s.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM hosts_seen`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 50 {
		t.Errorf("hosts_seen rows = %d, want 50", rows)
	}
	hs, err := s.HostsSeen(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) == 0 || hs[0].Addr != addr(n-1) || hs[len(hs)-1].Addr != addr(n-50) {
		t.Errorf("hosts_seen kept %d rows from %v to %v, want the newest 50, %v to %v", len(hs), hs[0].Addr, hs[len(hs)-1].Addr, addr(n-1), addr(n-50))
	}
	if _, err := s.HostSeenByAddr(ctx, stale); err == nil {
		t.Errorf("hosts_seen still holds %s, last seen beyond the retention", stale)
	}
	var keys int
	if err := s.db.QueryRow(`SELECT COUNT(DISTINCT key) FROM series WHERE key != ''`).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if keys != 50 {
		t.Errorf("per-address series keys = %d, want 50", keys)
	}
	hosts, err := s.Hosts(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 50 {
		t.Errorf("Hosts() = %d hosts, want 50", len(hosts))
	}
	if got := totalBlocked(); got != n {
		t.Errorf("blocked total after pruning = %d, want still %d", got, n)
	}
	top, err := s.TopKeys(ctx, SeriesBlocked, time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range top {
		if k.Key == "" {
			t.Errorf("TopKeys(%s) lists the folded key %q", SeriesBlocked, k.Key)
		}
	}
}
