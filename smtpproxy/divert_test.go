package smtpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// localAddrListener makes its connections report local as their local
// address, as TPROXY makes a diverted connection report its original
// destination; nil: the real one.
type localAddrListener struct {
	net.Listener
	local net.Addr
}

func (l localAddrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.local == nil {
		return c, err
	}
	return localAddrConn{c, l.local}, nil
}

type localAddrConn struct {
	net.Conn
	local net.Addr
}

func (c localAddrConn) LocalAddr() net.Addr { return c.local }

// ownNonLoopback returns an address of one of this machine's interfaces
// that is not a loopback address, if there is one.
func ownNonLoopback(t *testing.T) (netip.Addr, bool) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && !x.Unmap().IsLoopback() && !x.IsLinkLocalUnicast() {
				return x.Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}

// TestDivertedOnly: with Options.DivertedOnly, a connection that did not
// come through the divert (to the listener's own port, or to an address of
// the box) is closed before any reply and counted in
// relaygate_proxy_undiverted_refused_total; a diverted one (local address:
// an SMTP port of another host) gets the refusal dialogue's 220. Without
// the option, as in tests with plain listeners, every connection is served.
func TestDivertedOnly(t *testing.T) {
	tcp := func(a netip.Addr, port uint16) net.Addr { return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, port)) }
	cases := []struct {
		name         string
		divertedOnly bool
		local        net.Addr // nil: the listener's own address
		want220      bool
	}{
		{"to the listener's port", true, nil, false},
		{"to the listener's port, option off", false, nil, true},
		{"diverted to a remote MX", true, tcp(netip.MustParseAddr("192.0.2.25"), 25), true},
		{"diverted to a remote MX, IPv6", true, tcp(netip.MustParseAddr("2001:db8::25"), 25), true},
		{"to a loopback address, port 25", true, tcp(netip.MustParseAddr("127.0.0.1"), 25), false},
		{"to a v4-mapped loopback address, port 25", true, tcp(netip.MustParseAddr("::ffff:127.0.0.1"), 25), false},
	}
	if own, ok := ownNonLoopback(t); ok {
		cases = append(cases, struct {
			name         string
			divertedOnly bool
			local        net.Addr
			want220      bool
		}{"to an interface address of the box, port 25", true, tcp(own, 25), false})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Options{
				Recorder: newFakeRecorder(), Dialer: &fakeDialer{err: errors.New("no dialer in this test")},
				Policy: testPolicy(t), Logger: testLogger(t), Limits: testLimits(),
				ShutdownGrace: 100 * time.Millisecond, DivertedOnly: tc.divertedOnly,
			})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Serve(ctx, localAddrListener{ln, tc.local}) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve = %v", err)
				}
			})

			c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			got220 := strings.HasPrefix(line, "220 ")
			if got220 != tc.want220 {
				t.Errorf("first line = %q (err %v), want a 220 greeting: %v", line, err, tc.want220)
			}
			if !tc.want220 && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(errString(err), "reset") {
				t.Errorf("read = %v, want the connection closed", err)
			}
			wantCount := 0.0
			if !tc.want220 {
				wantCount = 1
			}
			if got := metricValue(t, p.metrics.undiverted); got != wantCount {
				t.Errorf("relaygate_proxy_undiverted_refused_total = %v, want %v", got, wantCount)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
