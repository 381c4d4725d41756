package smtpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawMX is a scripted remote side speaking raw lines, for what go-smtp
// cannot be made to do (extensions it does not know, silence, bad TLS).
// It counts DATA octets without keeping them.
type rawMX struct {
	addr      netip.AddrPort
	greeting  string            // default "220 rawmx.test ESMTP"
	ehlo      []string          // extension lines after the first
	replies   map[string]string // by verb, the whole reply without the last CRLF
	dataReply string            // default "250 2.0.0 Ok: queued as RAW"
	hangData  bool              // never answer the end of DATA
	tlsJunk   bool              // after a 220 to STARTTLS, send junk and close

	mu        sync.Mutex
	dataBytes int64
	cmds      []string
}

func startRawMX(t *testing.T, m *rawMX) *rawMX {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				m.serve(c)
			}()
		}
	}()
	return m
}

func (m *rawMX) serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := func(s string) { io.WriteString(c, s+"\r\n") }
	g := m.greeting
	if g == "" {
		g = "220 rawmx.test ESMTP"
	}
	w(g)
	if !strings.HasPrefix(g, "220") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		m.mu.Lock()
		m.cmds = append(m.cmds, line)
		m.mu.Unlock()
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		if rp, ok := m.replies[verb]; ok {
			w(rp)
			if verb == "STARTTLS" && strings.HasPrefix(rp, "220") && m.tlsJunk {
				w("this is not TLS")
				return
			}
			continue
		}
		switch verb {
		case "EHLO":
			lines := append([]string{"rawmx.test"}, m.ehlo...)
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				w("250" + sep + l)
			}
		case "DATA":
			w("354 Go ahead")
			var n int64
			bol, prevCRLF := true, true
			for {
				line, err := r.ReadSlice('\n')
				if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
					return
				}
				n += int64(len(line))
				if bol && prevCRLF && string(line) == ".\r\n" {
					break
				}
				bol = err == nil
				prevCRLF = bytes.HasSuffix(line, []byte("\r\n"))
			}
			m.mu.Lock()
			m.dataBytes += n
			m.mu.Unlock()
			if m.hangData {
				io.Copy(io.Discard, r) // until the proxy gives up
				return
			}
			if m.dataReply != "" {
				w(m.dataReply)
			} else {
				w("250 2.0.0 Ok: queued as RAW")
			}
		case "QUIT":
			w("221 2.0.0 Bye")
			return
		default:
			w("250 2.0.0 Ok")
		}
	}
}

func (m *rawMX) commands() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.cmds...)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// relayProxy starts a proxy whose only relay, mail-relay, is 127.0.0.1,
// dialing target.
func relayProxy(t testing.TB, target netip.AddrPort, opts Options) *testProxy {
	t.Helper()
	opts.Dialer = &fakeDialer{target: target}
	if opts.Policy == nil {
		opts.Policy = testPolicy(t, "mail-relay", "127.0.0.1/32")
	}
	return startProxy(t, opts)
}

// steps runs send/want pairs; an empty send reads a reply only.
func (c *smtpClient) steps(steps ...[2]string) {
	c.t.Helper()
	for i, s := range steps {
		var got string
		if s[0] == "" {
			got = c.reply()
		} else {
			got = c.cmd(s[0])
		}
		if got != s[1] {
			c.t.Fatalf("step %d %q: reply = %q, want %q", i, s[0], got, s[1])
		}
	}
}

// sendMail runs one transaction after EHLO and returns the replies to
// MAIL, each RCPT, DATA and the end of DATA (DATA only if a RCPT passed).
func (c *smtpClient) sendMail(from string, rcpts []string, body string) []string {
	c.t.Helper()
	var got []string
	got = append(got, c.cmd("MAIL FROM:<"+from+">"))
	if !strings.HasPrefix(got[0], "250") {
		return got
	}
	ok := false
	for _, r := range rcpts {
		rp := c.cmd("RCPT TO:<" + r + ">")
		ok = ok || strings.HasPrefix(rp, "250")
		got = append(got, rp)
	}
	if !ok {
		c.cmd("RSET")
		return got
	}
	rp := c.cmd("DATA")
	got = append(got, rp)
	if strings.HasPrefix(rp, "354") {
		got = append(got, c.cmd(body+"."))
	}
	return got
}
