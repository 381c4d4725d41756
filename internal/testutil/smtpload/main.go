// Command smtpload sends messages over SMTP, one message per connection, from
// a number of concurrent sessions, and reports the messages per second and
// the per-message latency: from the start of the TCP connect to the server's
// reply to the end of DATA (the time a relay waits before it may delete the
// message from its queue). scripts/bench-smtp.sh runs it in the lab next to
// smtp-source, which reports no latencies.
//
//	smtpload -addr 203.0.113.25:25 -n 500 -c 20 -size 10240
//
// prints one line of key=value pairs: msgs, errors, secs, rate, p50_ms,
// p90_ms, p99_ms, max_ms.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "", "server host:port, e.g. 203.0.113.25:25")
	n := flag.Int("n", 100, "messages in all")
	c := flag.Int("c", 1, "concurrent sessions")
	size := flag.Int("size", 10240, "message size in octets (approximate)")
	from := flag.String("from", "load@relay.lab.example", "envelope sender")
	to := flag.String("to", "sink@remote.example", "envelope recipient")
	helo := flag.String("helo", "relay.lab.example", "EHLO name")
	timeout := flag.Duration("timeout", 60*time.Second, "bound on one message")
	flag.Parse()
	if *addr == "" || *n < 1 || *c < 1 {
		flag.Usage()
		os.Exit(2)
	}
	msg := message(*size)
	jobs := make(chan int)
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
		last error
	)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				d, err := send(*addr, *helo, *from, *to, msg, *timeout)
				mu.Lock()
				if err != nil {
					errs++
					last = err
				} else {
					lats = append(lats, d)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	secs := time.Since(start).Seconds()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		i := int(p*float64(len(lats))+0.5) - 1
		i = max(0, min(i, len(lats)-1))
		return float64(lats[i].Microseconds()) / 1000
	}
	fmt.Printf("msgs=%d errors=%d secs=%.3f rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
		len(lats), errs, secs, float64(len(lats))/secs, pct(0.5), pct(0.9), pct(0.99), pct(1))
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "smtpload: %d errors, last: %v\n", errs, last)
		os.Exit(1)
	}
}

// message returns a message body of about size octets, CRLF lines, ending
// with the end-of-data line.
func message(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: <load@relay.lab.example>\r\nTo: <sink@remote.example>\r\nSubject: load\r\n\r\n")
	line := strings.Repeat("X", 76) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// send delivers one message on a new connection and returns the time from
// the connect to the reply to the end of DATA.
func send(addr, helo, from, to string, msg []byte, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(t0.Add(timeout))
	r := bufio.NewReader(conn)
	w := bufio.NewWriterSize(conn, 64<<10)
	step := func(cmd string, want byte) error {
		if cmd != "" {
			w.WriteString(cmd + "\r\n")
			if err := w.Flush(); err != nil {
				return err
			}
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("after %q: %w", cmd, err)
			}
			if len(line) < 4 || line[0] != want {
				return fmt.Errorf("after %q: %s", cmd, strings.TrimSpace(line))
			}
			if line[3] != '-' {
				return nil
			}
		}
	}
	for _, s := range []struct {
		cmd  string
		want byte
	}{{"", '2'}, {"EHLO " + helo, '2'}, {"MAIL FROM:<" + from + ">", '2'}, {"RCPT TO:<" + to + ">", '2'}, {"DATA", '3'}} {
		if err := step(s.cmd, s.want); err != nil {
			return 0, err
		}
	}
	if _, err := w.Write(msg); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if err := step("", '2'); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	step("QUIT", '2')
	return d, nil
}
