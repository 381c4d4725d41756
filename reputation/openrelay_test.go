package reputation

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRelay is an SMTP server for the self-test. accept decides RCPT TO.
type fakeRelay struct {
	addr   string
	mu     sync.Mutex
	cmds   []string
	accept func(from, to string) bool
}

func startFakeRelay(t *testing.T, accept func(from, to string) bool) *fakeRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRelay{addr: ln.Addr().String(), accept: accept}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeRelay) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := func(s string) { c.Write([]byte(s + "\r\n")) }
	w("220 relay.corp.example ESMTP")
	var from string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, line)
		f.mu.Unlock()
		up := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(up, "EHLO"):
			w("250-relay.corp.example")
			w("250 PIPELINING")
		case strings.HasPrefix(up, "MAIL FROM:"):
			from = strings.Trim(line[len("MAIL FROM:"):], "<>")
			w("250 2.1.0 Ok")
		case strings.HasPrefix(up, "RCPT TO:"):
			to := strings.Trim(line[len("RCPT TO:"):], "<>")
			if f.accept(from, to) {
				w("250 2.1.5 Ok")
			} else {
				w("554 5.7.1 <" + to + ">: Relay access denied")
			}
		case up == "RSET":
			w("250 2.0.0 Ok")
		case up == "QUIT":
			w("221 2.0.0 Bye")
			return
		default:
			w("502 5.5.2 Error: command not recognized")
		}
	}
}

func TestTestRelay(t *testing.T) {
	open := startFakeRelay(t, func(string, string) bool { return true })
	// A closed relay accepts only its own domain, in plain form.
	closed := startFakeRelay(t, func(_, to string) bool {
		return strings.HasSuffix(to, "@corp.example") && strings.Count(to, "@") == 1 && !strings.ContainsAny(to, "%!:\"")
	})
	// A relay with the percent hack.
	percent := startFakeRelay(t, func(_, to string) bool { return strings.Contains(to, "%") })
	d := &net.Dialer{Timeout: time.Second}
	for _, tc := range []struct {
		name     string
		relay    *fakeRelay
		open     bool
		accepted int
	}{
		{"open", open, true, len(RelayProbes)},
		{"closed", closed, false, 0},
		{"percent hack", percent, true, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := TestRelay(context.Background(), d, "r", tc.relay.addr, "relay-test.example.net", time.Now())
			if rt.Error != "" {
				t.Fatal(rt.Error)
			}
			if rt.Open != tc.open || countAccepted(rt) != tc.accepted || len(rt.Results) != len(RelayProbes) {
				t.Errorf("open %v, accepted %d of %d; want %v, %d of %d", rt.Open, countAccepted(rt), len(rt.Results), tc.open, tc.accepted, len(RelayProbes))
			}
			tc.relay.mu.Lock()
			defer tc.relay.mu.Unlock()
			for _, c := range tc.relay.cmds {
				if strings.EqualFold(c, "DATA") {
					t.Errorf("the self-test sent DATA")
				}
			}
			if n := len(RelayProbes); n < 20 {
				t.Errorf("only %d probe forms", n)
			}
		})
	}
	// The forms are expanded with the relay's name from its greeting.
	rt := TestRelay(context.Background(), d, "r", open.addr, "relay-test.example.net", time.Now())
	found := false
	for _, r := range rt.Results {
		if r.To == "victim%relay-test.example.net@relay.corp.example" {
			found = true
		}
	}
	if !found {
		t.Errorf("percent hack form not expanded with the relay's name: %+v", rt.Results)
	}
	// A dead relay is an error, not "closed".
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if rt := TestRelay(context.Background(), d, "r", addr, "x.example", time.Now()); rt.Error == "" || rt.Open {
		t.Errorf("dead relay: %+v; want an error", rt)
	}
}
