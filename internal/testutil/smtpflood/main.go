// Command smtpflood is the load tool of relaygate's benchmarks (never part
// of the product). Modes:
//
//	flood: open SMTP connections as fast as -concurrency workers can, read
//	       the greeting, send QUIT, close; report connections per second.
//	hold:  open -n connections, read each greeting, send EHLO, and hold them
//	       idle for -hold; report when all are established.
//	send:  send -n small messages over -concurrency sessions (one message per
//	       session); report messages per second and per-message latency.
//	       -from and -to set the envelope (default: a sender per message,
//	       bench<i>@relay.example, to sink@remote.example); -rate paces the
//	       messages at that many per minute overall (0: as fast as possible).
//
// Every mode runs for a bounded time and stops by itself.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	mode := flag.String("mode", "send", "flood, hold or send")
	target := flag.String("target", "", "host:port of the SMTP server")
	srcs := flag.String("src", "", "comma-separated source addresses to use in turn (default: any)")
	n := flag.Int("n", 100, "connections (hold) or messages (send)")
	conc := flag.Int("concurrency", 1, "parallel workers (flood, send)")
	dur := flag.Duration("duration", 10*time.Second, "how long to flood")
	hold := flag.Duration("hold", 30*time.Second, "how long to hold connections (hold)")
	size := flag.Int("size", 1024, "message body size in octets (send)")
	timeout := flag.Duration("timeout", 30*time.Second, "per-operation timeout")
	from := flag.String("from", "", "envelope sender of every message (send; default bench<i>@relay.example)")
	to := flag.String("to", "sink@remote.example", "recipient of every message (send)")
	rate := flag.Int("rate", 0, "messages per minute overall (send; 0 = as fast as possible)")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "smtpflood: -target is required")
		os.Exit(2)
	}
	if *rate < 0 {
		fmt.Fprintln(os.Stderr, "smtpflood: -rate must be 0 or more")
		os.Exit(2)
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
		flood(dial, *conc, *dur, *timeout)
	case "hold":
		holdConns(dial, *n, *hold, *timeout)
	case "send":
		send(dial, envelope{from: *from, to: *to}, *n, *conc, *rate, *size, *timeout)
	default:
		fmt.Fprintln(os.Stderr, "smtpflood: unknown -mode", *mode)
		os.Exit(2)
	}
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

func (s *session) cmd(line string, want byte) error {
	if _, err := s.c.Write([]byte(line + "\r\n")); err != nil {
		return err
	}
	r, err := s.reply()
	if err != nil {
		return err
	}
	if r == "" || r[0] != want {
		return fmt.Errorf("%s: %s", strings.Fields(line)[0], r)
	}
	return nil
}

func flood(dial func() (net.Conn, error), conc int, dur, timeout time.Duration) {
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
	fmt.Printf("flood connections=%d per_second=%.0f greeted=%d refused=%d failed=%d\n",
		total, float64(total)/dur.Seconds(), ok.Load(), refused.Load(), failed.Load())
}

func holdConns(dial func() (net.Conn, error), n int, hold, timeout time.Duration) {
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
			if err := s.cmd("EHLO smtpflood.example", '2'); err != nil {
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
	fmt.Printf("held established=%d failed=%d in=%.1fs\n", len(conns), failed.Load(), time.Since(start).Seconds())
	os.Stdout.Sync()
	time.Sleep(hold)
	for _, c := range conns {
		c.Close()
	}
}

// envelope is what send puts in MAIL FROM and RCPT TO; an empty from
// means a sender of its own per message.
type envelope struct {
	from, to string
}

func (e envelope) sender(i int64) string {
	if e.from != "" {
		return e.from
	}
	return fmt.Sprintf("bench%d@relay.example", i)
}

// send sends n messages over conc workers. With rate > 0 message i (from 1)
// starts no earlier than (i-1) minutes/rate after the start, so the
// messages are spread evenly at rate per minute as long as the workers
// keep up.
func send(dial func() (net.Conn, error), env envelope, n, conc, rate, size int, timeout time.Duration) {
	var interval time.Duration
	if rate > 0 {
		interval = time.Minute / time.Duration(rate)
	}
	body := strings.Repeat("relaygate benchmark line of text, 64 octets long, no dots........\r\n", max(1, size/66))
	var lat []time.Duration
	var mu sync.Mutex
	var failed atomic.Int64
	var idx atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
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
				t0 := time.Now()
				if err := sendOne(dial, env, i, body, timeout); err != nil {
					failed.Add(1)
					fmt.Fprintln(os.Stderr, "smtpflood:", err)
					continue
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	fmt.Printf("send messages=%d failed=%d per_second=%.1f p50_ms=%.3f p99_ms=%.3f\n",
		len(lat), failed.Load(), float64(len(lat))/el.Seconds(), pct(0.5), pct(0.99))
}

func sendOne(dial func() (net.Conn, error), env envelope, i int64, body string, timeout time.Duration) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	s := &session{c: c, r: bufio.NewReader(c)}
	if r, err := s.reply(); err != nil || !strings.HasPrefix(r, "220") {
		return fmt.Errorf("greeting %q: %v", r, err)
	}
	for _, step := range []struct {
		line string
		want byte
	}{
		{"EHLO smtpflood.example", '2'},
		{"MAIL FROM:<" + env.sender(i) + ">", '2'},
		{"RCPT TO:<" + env.to + ">", '2'},
		{"DATA", '3'},
	} {
		if err := s.cmd(step.line, step.want); err != nil {
			return err
		}
	}
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: bench %d\r\nMessage-ID: <bench%d.%d@relay.example>\r\n\r\n%s.", env.sender(i), env.to, i, i, time.Now().UnixNano(), body)
	if err := s.cmd(msg, '2'); err != nil {
		return err
	}
	s.cmd("QUIT", '2')
	return nil
}
