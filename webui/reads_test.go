package webui

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
)

// Reading back must be bounded like writing: the tests below store many
// large events in a real store and check what a read costs the daemon's
// heap, and that paged and streamed answers still hold every event once.

const (
	bigEvents = 10000
	bigRcpts  = 50 // of about 100 bytes each: some 6 KB per event
	// bigClient sent most of the events; bigOthers shared the rest.
	bigClient = "10.66.0.1"
	bigOthers = 20
)

// recordBig stores bigEvents events of about 6 KB each (60 MB), one per
// second back from now, with a detail "ev-N" (N = 0 for the oldest).
func recordBig(t *testing.T, h *harness) {
	t.Helper()
	now := time.Now().Add(-time.Minute)
	rcpt := make([]string, bigRcpts)
	for i := range rcpt {
		rcpt[i] = fmt.Sprintf("recipient-%02d-%s@example.net", i, strings.Repeat("r", 70))
	}
	kinds := []event.Kind{event.WouldBlock, event.Blocked, event.Refused}
	for start := 0; start < bigEvents; start += 2000 {
		for i := start; i < min(start+2000, bigEvents); i++ {
			client := netip.MustParseAddr(bigClient)
			if i%10 == 0 {
				client = netip.AddrFrom4([4]byte{10, 66, 1, byte(i / 10 % bigOthers)})
			}
			h.store.Record(event.Event{
				Time: now.Add(time.Duration(i-bigEvents) * time.Second), Kind: kinds[i%len(kinds)],
				Client: client, Server: netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 7)}), ServerPort: 25,
				Helo: "pc.example", MailFrom: fmt.Sprintf("sender%d@example.com", i%5), Rcpt: rcpt, Code: 554,
				Detail: "ev-" + strconv.Itoa(i) + " " + strings.Repeat("d", 900),
			})
		}
		h.store.flush(t)
	}
}

// heapProbe is a ResponseWriter that measures the daemon while it answers:
// at the first write and then every probeEvery bytes it collects garbage
// and records the live heap, so a handler that holds its whole answer (or
// every event of it) while writing shows it. Written bytes go to sink.
type heapProbe struct {
	hdr    http.Header
	status int
	sink   io.Writer

	n, next int64
	peak    uint64
}

const probeEvery = 1 << 20

func (p *heapProbe) Header() http.Header { return p.hdr }
func (p *heapProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *heapProbe) Flush() {}

func (p *heapProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	if p.n >= p.next {
		p.peak = max(p.peak, liveHeap())
		p.next = p.n + probeEvery
	}
	p.n += int64(len(b))
	return p.sink.Write(b)
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// serveMeasured serves one request and reads its answer with read (in
// another goroutine, through a pipe, so that the answer is never held
// whole by the test either). It returns the status, the growth of the
// live heap at its peak during the writes, and the bytes allocated in all.
func serveMeasured(t *testing.T, h http.Handler, req *http.Request, read func(io.Reader) error) (status int, peak, alloc uint64) {
	t.Helper()
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr = read(pr)
		io.Copy(io.Discard, pr)
	}()
	var before runtime.MemStats
	base := liveHeap()
	runtime.ReadMemStats(&before)
	p := &heapProbe{hdr: http.Header{}, sink: pw}
	h.ServeHTTP(p, req)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	pw.Close()
	wg.Wait()
	if readErr != nil {
		t.Errorf("%s %s: reading the answer: %v", req.Method, req.URL, readErr)
	}
	if p.peak > base {
		peak = p.peak - base
	}
	return p.status, peak, after.TotalAlloc - before.TotalAlloc
}

func apiRequest(target string) *http.Request {
	req := httptest.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", bearer)
	return req
}

// decodeEventStream reads {"events": [...], ...} one event at a time and
// calls fn with each; other keys go to rest.
func decodeEventStream(r io.Reader, fn func(event.Event) error, rest map[string]json.RawMessage) error {
	dec := json.NewDecoder(r)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("want an object, got %v %v", tok, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok != "events" {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return err
			}
			rest[fmt.Sprint(tok)] = v
			continue
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return fmt.Errorf("events: want a list, got %v %v", tok, err)
		}
		for dec.More() {
			var e event.Event
			if err := dec.Decode(&e); err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

// eventNumber is N of an event's detail "ev-N ...".
func eventNumber(detail string) (int, error) {
	s, _, _ := strings.Cut(strings.TrimPrefix(detail, "ev-"), " ")
	return strconv.Atoi(s)
}

// seenOnce checks that numbers come newest first (descending), each once.
type seenOnce struct {
	seen []bool
	last int
	n    int
}

func newSeenOnce() *seenOnce { return &seenOnce{seen: make([]bool, bigEvents), last: bigEvents} }

func (s *seenOnce) add(detail string) error {
	i, err := eventNumber(detail)
	if err != nil || i < 0 || i >= bigEvents {
		return fmt.Errorf("detail %.20q: not an event of the test", detail)
	}
	if s.seen[i] || i >= s.last {
		return fmt.Errorf("event ev-%d after ev-%d: repeated or out of order", i, s.last)
	}
	s.seen[i], s.last = true, i
	s.n++
	return nil
}

// TestReadsBounded: with 10,000 events of 6 KB each stored (60 MB), the
// events API, the CSV export, the events page, the host card and the mode
// preview answer within a small bound of heap, and the streamed answers
// still hold every event once, newest first.
func TestReadsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 60 MB of events")
	}
	d, h := testDeps(t)
	b := h.adminBrowser(t, d)
	recordBig(t, h)

	// Peak is the live heap while the answer is written, over what was
	// live before; alloc is everything allocated (streamed answers
	// allocate as much as they send, a chunk at a time, so only their peak
	// is bounded). The stored events are 60 MB; before reads were bounded
	// the peaks were 121 MiB (events API), 70 MiB (CSV), 64 MiB (events
	// page), and the allocations 397 MiB (events page), 29 MiB (host card),
	// 21 MiB (host page), 195 MiB (mode preview).
	const peakBound = 8 << 20
	for _, tc := range []struct {
		name       string
		req        *http.Request
		allocBound uint64 // 0: the answer streams, its allocation is not bounded
		read       func(io.Reader) error
	}{
		{"events API", apiRequest("/api/v1/events?limit=10000"), 0, func(r io.Reader) error {
			s := newSeenOnce()
			rest := map[string]json.RawMessage{}
			if err := decodeEventStream(r, func(e event.Event) error { return s.add(e.Detail) }, rest); err != nil {
				return err
			}
			if s.n != bigEvents {
				return fmt.Errorf("%d events, want %d", s.n, bigEvents)
			}
			if _, ok := rest["next"]; ok {
				return fmt.Errorf("next = %s with every event in the answer, want none", rest["next"])
			}
			return nil
		}},
		{"CSV export", apiRequest("/api/v1/events.csv?limit=10000"), 0, func(r io.Reader) error {
			cr := csv.NewReader(r)
			cr.ReuseRecord = true
			head, err := cr.Read()
			if err != nil || head[10] != "detail" {
				return fmt.Errorf("header %v, %v", head, err)
			}
			s := newSeenOnce()
			for {
				rec, err := cr.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if err := s.add(rec[10]); err != nil {
					return err
				}
			}
			if s.n != bigEvents {
				return fmt.Errorf("%d rows, want %d", s.n, bigEvents)
			}
			return nil
		}},
		{"events page", b.request("GET", "/events?limit=10000"), 64 << 20, func(r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		}},
		{"host card API", apiRequest("/api/v1/hosts/" + bigClient), 8 << 20, func(r io.Reader) error {
			var d struct {
				Host   struct{ Attempts int64 }
				Events []event.Event
			}
			if err := json.NewDecoder(r).Decode(&d); err != nil {
				return err
			}
			if want := int64(bigEvents - bigEvents/10); d.Host.Attempts != want || len(d.Events) == 0 {
				return fmt.Errorf("host attempts %d with %d events, want %d and some events", d.Host.Attempts, len(d.Events), want)
			}
			return nil
		}},
		{"host page", b.request("GET", "/hosts/"+bigClient), 8 << 20, func(r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		}},
		{"mode preview", apiRequest("/api/v1/mode-preview?mode=enforce"), 4 << 20, func(r io.Reader) error {
			var p modePreviewResponse
			if err := json.NewDecoder(r).Decode(&p); err != nil {
				return err
			}
			if len(p.Hosts) != bigOthers+1 || p.Hosts[0].Addr.String() != bigClient || p.Hosts[0].Attempts != bigEvents-bigEvents/10 {
				return fmt.Errorf("preview hosts %d, first %+v; want %d, %s with %d attempts", len(p.Hosts), p.Hosts[0], bigOthers+1, bigClient, bigEvents-bigEvents/10)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, peak, alloc := serveMeasured(t, h.router, tc.req, tc.read)
			t.Logf("%s: status %d, peak live heap +%.1f MiB, allocated %.1f MiB", tc.req.URL, status, float64(peak)/(1<<20), float64(alloc)/(1<<20))
			if status != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", tc.req.URL, status)
			}
			if peak > peakBound {
				t.Errorf("GET %s: live heap grew by %d bytes while answering, want at most %d", tc.req.URL, peak, peakBound)
			}
			if tc.allocBound > 0 && alloc > tc.allocBound {
				t.Errorf("GET %s: allocated %d bytes, want at most %d", tc.req.URL, alloc, tc.allocBound)
			}
		})
	}
}

// request is a GET with the browser's session, for serving by hand.
func (b *browser) request(method, target string) *http.Request {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = b.remote
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: b.cookie})
	return req
}

// TestEventsAPIPaging: following next from page to page, with a filter
// and events that share their time, gives every matching event exactly
// once, newest first; the last page has no next.
func TestEventsAPIPaging(t *testing.T) {
	h := newHarness(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i := range 300 {
		kind := event.Blocked
		if i%4 == 3 {
			kind = event.Relayed
		}
		// Three events to a second: pages must split them by ID.
		evs = append(evs, event.Event{Time: t0.Add(time.Duration(i/3) * time.Second), Kind: kind,
			Client: netip.MustParseAddr("10.0.0.7"), Detail: strconv.Itoa(i)})
	}
	h.store.record(t, evs...)
	var want []string
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == event.Blocked {
			want = append(want, evs[i].Detail)
		}
	}

	var got []string
	pages := 0
	for next := "/api/v1/events?kind=blocked&limit=7"; next != ""; pages++ {
		if pages > len(evs) {
			t.Fatalf("more pages than events: next %s", next)
		}
		w := h.do(t, "GET", next, bearer, "")
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", next, w.Code, w.Body)
		}
		r := decode[struct {
			Events []event.Event
			Next   string
		}](t, w)
		if len(r.Events) > 7 {
			t.Fatalf("GET %s: %d events, want at most 7", next, len(r.Events))
		}
		for _, e := range r.Events {
			got = append(got, e.Detail)
		}
		if r.Next != "" && !strings.HasPrefix(r.Next, "/api/v1/events?") {
			t.Fatalf("next = %q, want a path of the events API", r.Next)
		}
		next = r.Next
	}
	if diff := cmpDiff(want, got); diff != "" {
		t.Errorf("events over all pages (-want +got):\n%s", diff)
	}
	if wantPages := (len(want) + 6) / 7; pages != wantPages {
		t.Errorf("%d pages, want %d", pages, wantPages)
	}
}

// TestHostCardOlderEvents: the host card holds the newest hostEvents
// events and links to the rest, which the events API then answers.
func TestHostCardOlderEvents(t *testing.T) {
	h := newHarness(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i := range hostEvents + 5 {
		evs = append(evs, event.Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: event.Blocked,
			Client: netip.MustParseAddr("10.0.0.7"), Detail: strconv.Itoa(i)})
	}
	h.store.record(t, evs...)
	w := h.do(t, "GET", "/api/v1/hosts/10.0.0.7", bearer, "")
	d := decode[struct {
		Events     []event.Event
		EventsNext string `json:"events_next"`
	}](t, w)
	if len(d.Events) != hostEvents || d.Events[0].Detail != strconv.Itoa(hostEvents+4) || d.EventsNext == "" {
		t.Fatalf("host card: %d events, first %q, events_next %q; want %d, the newest, and a link", len(d.Events), d.Events[0].Detail, d.EventsNext, hostEvents)
	}
	r := decode[struct{ Events []event.Event }](t, h.do(t, "GET", d.EventsNext, bearer, ""))
	var got []string
	for _, e := range r.Events {
		got = append(got, e.Detail)
	}
	if diff := cmpDiff([]string{"4", "3", "2", "1", "0"}, got); diff != "" {
		t.Errorf("GET %s (-want +got):\n%s", d.EventsNext, diff)
	}
}

// TestStreamCtx: a streamed read lives as long as it makes progress, and
// ends once it made none for the store timeout.
func TestStreamCtx(t *testing.T) {
	const d = 100 * time.Millisecond
	ctx, progress, cancel := streamCtx(t.Context(), d)
	defer cancel()
	for range 6 {
		time.Sleep(d / 2)
		progress()
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("after %v with progress every %v: %v, want alive", 3*d, d/2, err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * d):
		t.Fatalf("no end %v after the last progress", 10*d)
	}
}
