package smtpproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// sockopts reads the options that setTransparent sets.
func sockopts(t *testing.T, c syscall.Conn, v6 bool) map[string]int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	opts := []struct {
		name       string
		level, opt int
	}{
		{"IP_TRANSPARENT", unix.SOL_IP, unix.IP_TRANSPARENT},
		{"SO_MARK", unix.SOL_SOCKET, unix.SO_MARK},
	}
	if v6 {
		opts = append(opts, struct {
			name       string
			level, opt int
		}{"IPV6_TRANSPARENT", unix.SOL_IPV6, unix.IPV6_TRANSPARENT})
	}
	raw.Control(func(fd uintptr) {
		for _, o := range opts {
			v, err := unix.GetsockoptInt(int(fd), o.level, o.opt)
			if err != nil {
				t.Errorf("getsockopt(%s): %v", o.name, err)
			}
			got[o.name] = v
		}
	})
	return got
}

func TestTransparentSockets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) for IP_TRANSPARENT and SO_MARK; run the test binary as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const mark = 0x2a
	ln, err := ListenTransparent(ctx, 0, mark)
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("root without CAP_NET_ADMIN: %v", err)
	}
	if err != nil {
		t.Fatalf("ListenTransparent: %v", err)
	}
	defer ln.Close()
	want := map[string]int{"IP_TRANSPARENT": 1, "IPV6_TRANSPARENT": 1, "SO_MARK": mark}
	if diff := cmp.Diff(want, sockopts(t, ln.(*net.TCPListener), true)); diff != "" {
		t.Errorf("listener options (-want +got):\n%s", diff)
	}
	port := ln.Addr().(*net.TCPAddr).Port

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	// The dual-stack listener takes IPv4; the dialer binds the given source.
	d := TransparentDialer{Mark: mark, Timeout: 5 * time.Second}
	src := netip.MustParseAddr("127.0.0.1")
	c, err := d.Dial(ctx, src, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	if err != nil {
		t.Fatalf("TransparentDialer.Dial: %v", err)
	}
	defer c.Close()
	want = map[string]int{"IP_TRANSPARENT": 1, "SO_MARK": mark}
	if diff := cmp.Diff(want, sockopts(t, c.(*net.TCPConn), false)); diff != "" {
		t.Errorf("onward connection options (-want +got):\n%s", diff)
	}
	s, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer s.Close()
	if got := addrOf(s.RemoteAddr()).Addr().Unmap(); got != src {
		t.Errorf("accepted from %s, want %s", got, src)
	}

	// IPv6, where the loopback has ::1.
	src6 := netip.IPv6Loopback()
	c6, err := d.Dial(ctx, src6, netip.AddrPortFrom(src6, uint16(port)))
	if err != nil {
		t.Logf("IPv6 part skipped: %v", err)
	} else {
		defer c6.Close()
		want = map[string]int{"IP_TRANSPARENT": 1, "IPV6_TRANSPARENT": 1, "SO_MARK": mark}
		if diff := cmp.Diff(want, sockopts(t, c6.(*net.TCPConn), true)); diff != "" {
			t.Errorf("IPv6 onward connection options (-want +got):\n%s", diff)
		}
	}

	if _, err := d.Dial(ctx, src, netip.MustParseAddrPort("[::1]:25")); err == nil {
		t.Errorf("Dial from IPv4 to IPv6: nil error, want one")
	}
}
