// Command smtpflood is the SMTP load generator of relaygate's lab: the
// benchmarks (scripts/bench-proxy.sh, scripts/bench-smtp.sh) and the
// integration tests. It is never part of the product. Modes:
//
//	flood: open SMTP connections as fast as -concurrency workers can, read
//	       the greeting, send QUIT, close; report connections per second.
//	hold:  open -n connections, read each greeting, send EHLO, and hold them
//	       idle for -hold; report when all are established.
//	send:  send -n messages over -concurrency sessions, one message per
//	       session; report messages per second and per-message latency.
//	       -from and -to set the envelope (default: a sender per message,
//	       bench<i>@relay.example, to sink@remote.example); -rate paces the
//	       messages at that many per minute overall (0: as fast as possible).
//	       Exits 0 even when messages failed (the line says how many).
//	load:  send, as a relay delivers, with the defaults of the latency
//	       benchmark (formerly smtpload): 10 KB messages, one sender
//	       (load@relay.lab.example), EHLO relay.lab.example, -timeout 60s;
//	       exits 1 when a message failed.
//
// In send and load, a message's latency is the time from the start of the
// TCP connect to the server's reply to the end of DATA: the time a relay
// waits before it may delete the message from its queue. Both print one
// line, e.g.
//
//	send messages=500 failed=0 secs=0.412 per_second=1213.6 p50_ms=2.911 p90_ms=4.002 p99_ms=7.310 max_ms=9.871
//
// scripts/bench-smtp.sh runs load next to Postfix's smtp-source, which
// reports no latencies:
//
//	smtpflood -mode load -target 203.0.113.25:25 -n 500 -concurrency 20 -size 10240
//
// Every mode runs for a bounded time and stops by itself.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// modeDefaults are the defaults of -size, -timeout, -from and -helo that
// differ by mode; a flag given on the command line wins.
var modeDefaults = map[string]struct {
	size    int
	timeout time.Duration
	from    string // "": a sender per message
	helo    string
}{
	"flood": {timeout: 30 * time.Second, helo: "smtpflood.example"},
	"hold":  {timeout: 30 * time.Second, helo: "smtpflood.example"},
	"send":  {size: 1024, timeout: 30 * time.Second, helo: "smtpflood.example"},
	"load":  {size: 10240, timeout: 60 * time.Second, from: "load@relay.lab.example", helo: "relay.lab.example"},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the command with its arguments; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("smtpflood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "send", "flood, hold, send or load")
	target := fs.String("target", "", "host:port of the SMTP server, e.g. 203.0.113.25:25")
	srcs := fs.String("src", "", "comma-separated source addresses to use in turn (default: any)")
	n := fs.Int("n", 100, "connections (hold) or messages (send, load)")
	conc := fs.Int("concurrency", 1, "parallel workers (flood) or sessions (send, load)")
	dur := fs.Duration("duration", 10*time.Second, "how long to flood")
	hold := fs.Duration("hold", 30*time.Second, "how long to hold connections (hold)")
	size := fs.Int("size", 0, "message size in octets, approximate (send: default 1024; load: 10240)")
	timeout := fs.Duration("timeout", 0, "bound on one connection (flood, hold) or one message (send, load); default 30s, load 60s")
	from := fs.String("from", "", "envelope sender of every message (send: default bench<i>@relay.example; load: load@relay.lab.example)")
	to := fs.String("to", "sink@remote.example", "recipient of every message (send, load)")
	rcpts := fs.Int("rcpts", 1, "RCPT TO per message (send): the first is -to, the others <k>.<-to>; a refused recipient does not end the session, the message fails when none was accepted")
	helo := fs.String("helo", "", "EHLO name (default smtpflood.example; load: relay.lab.example)")
	rate := fs.Int("rate", 0, "messages per minute overall (send, load; 0 = as fast as possible)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	def, ok := modeDefaults[*mode]
	if !ok {
		fmt.Fprintln(stderr, "smtpflood: unknown -mode", *mode)
		return 2
	}
	if *target == "" {
		fmt.Fprintln(stderr, "smtpflood: -target is required")
		return 2
	}
	if *rate < 0 || *n < 1 || *conc < 1 || *size < 0 || *timeout < 0 {
		fmt.Fprintln(stderr, "smtpflood: -n and -concurrency must be at least 1, -rate, -size and -timeout not negative")
		return 2
	}
	if *size == 0 {
		*size = def.size
	}
	if *timeout == 0 {
		*timeout = def.timeout
	}
	if *from == "" {
		*from = def.from
	}
	if *helo == "" {
		*helo = def.helo
	}
	var sources []net.IP
	for _, s := range strings.Split(*srcs, ",") {
		if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil {
			sources = append(sources, ip)
		}
	}
	var next atomic.Uint64
	dial := func() (net.Conn, error) {
		d := net.Dialer{Timeout: *timeout}
		if len(sources) > 0 {
			d.LocalAddr = &net.TCPAddr{IP: sources[next.Add(1)%uint64(len(sources))]}
		}
		return d.Dial("tcp", *target)
	}
	switch *mode {
	case "flood":
		flood(stdout, dial, *conc, *dur, *timeout)
	case "hold":
		holdConns(stdout, dial, *helo, *n, *hold, *timeout)
	case "send", "load":
		env := envelope{helo: *helo, from: *from, to: *to, rcpts: max(*rcpts, 1)}
		failed := send(stdout, stderr, *mode, dial, env, *n, *conc, *rate, *size, *timeout)
		if *mode == "load" && failed > 0 {
			return 1
		}
	}
	return 0
}

type session struct {
	c net.Conn
	r *bufio.Reader
}

func (s *session) reply() (string, error) {
	var last string
	for range 100 {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return last, err
		}
		last = strings.TrimRight(line, "\r\n")
		if len(last) < 4 || last[3] != '-' {
			return last, nil
		}
	}
	return last, fmt.Errorf("reply too long")
}

// cmd writes line and reads the reply, which must start with want; name
// is what an error calls the step (the command's verb when empty).
func (s *session) cmd(name, line string, want byte) error {
	if name == "" {
		name = strings.Fields(line)[0]
	}
	if _, err := s.c.Write([]byte(line + "\r\n")); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	r, err := s.reply()
	if err != nil {
		return fmt.Errorf("after %s: %w", name, err)
	}
	if r == "" || r[0] != want {
		return fmt.Errorf("%s: %s", name, r)
	}
	return nil
}

func flood(out io.Writer, dial func() (net.Conn, error), conc int, dur, timeout time.Duration) {
	var ok, refused, failed atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				c, err := dial()
				if err != nil {
					failed.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(timeout))
				s := &session{c: c, r: bufio.NewReader(c)}
				r, err := s.reply()
				switch {
				case err != nil:
					failed.Add(1)
				case strings.HasPrefix(r, "220"):
					ok.Add(1)
					c.Write([]byte("QUIT\r\n"))
				default:
					refused.Add(1)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	total := ok.Load() + refused.Load() + failed.Load()
	fmt.Fprintf(out, "flood connections=%d per_second=%.0f greeted=%d refused=%d failed=%d\n",
		total, float64(total)/dur.Seconds(), ok.Load(), refused.Load(), failed.Load())
}

func holdConns(out io.Writer, dial func() (net.Conn, error), helo string, n int, hold, timeout time.Duration) {
	conns := make([]net.Conn, 0, n)
	start := time.Now()
	var mu sync.Mutex
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dial()
			if err != nil {
				failed.Add(1)
				return
			}
			c.SetDeadline(time.Now().Add(timeout))
			s := &session{c: c, r: bufio.NewReader(c)}
			if r, err := s.reply(); err != nil || !strings.HasPrefix(r, "220") {
				failed.Add(1)
				c.Close()
				return
			}
			if err := s.cmd("", "EHLO "+helo, '2'); err != nil {
				failed.Add(1)
				c.Close()
				return
			}
			c.SetDeadline(time.Time{})
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Fprintf(out, "held established=%d failed=%d in=%.1fs\n", len(conns), failed.Load(), time.Since(start).Seconds())
	if f, ok := out.(*os.File); ok {
		f.Sync()
	}
	time.Sleep(hold)
	for _, c := range conns {
		c.Close()
	}
}

// envelope is what send says in EHLO, MAIL FROM and RCPT TO; an empty
// from means a sender of its own per message.
type envelope struct {
	helo, from, to string
	rcpts          int // RCPT TO per message, at least 1
}

// rcptStep sends the envelope's recipients; it fails with the last reply
// when none was accepted.
func (e envelope) rcptStep(s *session) error {
	var last error
	ok := false
	for k := range max(e.rcpts, 1) {
		to := e.to
		if k > 0 {
			to = fmt.Sprintf("%d.%s", k, e.to)
		}
		if err := s.cmd("", "RCPT TO:<"+to+">", '2'); err != nil {
			last = err
			continue
		}
		ok = true
	}
	if !ok {
		return last
	}
	return nil
}

func (e envelope) sender(i int64) string {
	if e.from != "" {
		return e.from
	}
	return fmt.Sprintf("bench%d@relay.example", i)
}

// maxErrorLines bounds the failures printed one by one; the rest are
// counted, and the last one printed at the end.
const maxErrorLines = 20

// send sends n messages, one per connection, over conc workers and prints
// one line headed by mode; it returns the number of failed messages. With
// rate > 0 message i (from 1) starts no earlier than (i-1) minutes/rate
// after the start, so the messages are spread evenly at rate per minute as
// long as the workers keep up.
func send(out, errOut io.Writer, mode string, dial func() (net.Conn, error), env envelope, n, conc, rate, size int, timeout time.Duration) int {
	var interval time.Duration
	if rate > 0 {
		interval = time.Minute / time.Duration(rate)
	}
	var (
		mu     sync.Mutex
		lat    []time.Duration
		failed int
		last   error
		idx    atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := idx.Add(1)
				if i > int64(n) {
					return
				}
				if interval > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(i-1) * interval)))
				}
				d, err := sendOne(dial, env, i, message(env, i, size), timeout)
				mu.Lock()
				if err != nil {
					failed++
					last = err
					if failed <= maxErrorLines {
						fmt.Fprintf(errOut, "smtpflood: message %d: %v\n", i, err)
					}
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	slices.Sort(lat)
	// pct is the nearest-rank percentile in milliseconds.
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := max(0, min(int(p*float64(len(lat))+0.5)-1, len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	fmt.Fprintf(out, "%s messages=%d failed=%d secs=%.3f per_second=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
		mode, len(lat), failed, secs, float64(len(lat))/secs, pct(0.5), pct(0.9), pct(0.99), pct(1))
	if failed > maxErrorLines {
		fmt.Fprintf(errOut, "smtpflood: %d messages failed, last: %v\n", failed, last)
	}
	return failed
}

// message returns message i of about size octets with its headers, CRLF
// lines, without the end-of-data line.
func message(env envelope, i int64, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: load %d\r\nMessage-ID: <load%d.%d@relay.example>\r\n\r\n",
		env.sender(i), env.to, i, i, time.Now().UnixNano())
	const line = "relaygate load: a line of text with no dots in it, 78 octets with a line end\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.String()
}

// sendOne delivers message i on a new connection and returns the time from
// the start of the connect to the reply to the end of DATA; QUIT follows.
func sendOne(dial func() (net.Conn, error), env envelope, i int64, msg string, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	c, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(t0.Add(timeout))
	s := &session{c: c, r: bufio.NewReaderSize(c, 4096)}
	if r, err := s.reply(); err != nil || !strings.HasPrefix(r, "220") {
		return 0, fmt.Errorf("greeting %q: %v", r, err)
	}
	for _, step := range []struct {
		name, line string
		want       byte
	}{
		{"", "EHLO " + env.helo, '2'},
		{"", "MAIL FROM:<" + env.sender(i) + ">", '2'},
		{"rcpt", "", '2'},
		{"", "DATA", '3'},
		{"end of DATA", msg + ".", '2'},
	} {
		if step.name == "rcpt" {
			if err := env.rcptStep(s); err != nil {
				s.cmd("", "QUIT", '2')
				return 0, err
			}
			continue
		}
		if err := s.cmd(step.name, step.line, step.want); err != nil {
			return 0, err
		}
	}
	d := time.Since(t0)
	s.cmd("", "QUIT", '2')
	return d, nil
}
