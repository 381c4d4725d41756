package smtpproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ListenTransparent opens the proxy's listening socket: dual-stack TCP on
// [::]:port with IP_TRANSPARENT and IPV6_TRANSPARENT, so that it accepts
// connections that nftables' tproxy diverted to it whatever their
// destination address; an accepted connection's LocalAddr is the original
// destination. mark, if not 0, is set as SO_MARK. Needs CAP_NET_ADMIN.
func ListenTransparent(ctx context.Context, port int, mark int) (net.Listener, error) {
	lc := net.ListenConfig{
		// Sessions have their own timeouts; TCP keep-alives would only
		// cost system calls on every accepted connection.
		KeepAlive: -1,
		Control: func(network, _ string, rc syscall.RawConn) error {
			return setTransparent(rc, network, mark, true)
		},
	}
	addr := net.JoinHostPort("::", strconv.Itoa(port))
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen transparent on %s: %w", addr, err)
	}
	return ln, nil
}

// TransparentDialer opens onward connections from the client's own
// address, so that the remote MX, SPF and the router's NAT see exactly
// what they saw without the box. Needs CAP_NET_ADMIN, and policy routing
// that brings the replies back to the box (see bridge).
type TransparentDialer struct {
	// Mark is set as SO_MARK on onward sockets (0: none), e.g. 1.
	Mark int
	// Timeout bounds a dial besides its context; 0: the context only.
	Timeout time.Duration
}

var _ Dialer = TransparentDialer{}

// Dial connects to dst from src (port chosen by the kernel).
// IP_TRANSPARENT must be set before bind, otherwise binding a foreign
// address fails with EADDRNOTAVAIL; net.Dialer.Control runs before bind.
func (d TransparentDialer) Dial(ctx context.Context, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	src = src.Unmap()
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if src.Is4() != dst.Addr().Is4() {
		return nil, fmt.Errorf("dial %s from %s: address families differ", dst, src)
	}
	network := "tcp6"
	if src.Is4() {
		network = "tcp4"
	}
	nd := net.Dialer{
		Timeout:   d.Timeout,
		KeepAlive: -1, // the session's timeouts cover a dead peer
		Control: func(network, _ string, rc syscall.RawConn) error {
			return setTransparent(rc, network, d.Mark, false)
		},
	}
	// DialTCP takes the addresses as they are: no string to format and
	// parse again, no resolver, on every session.
	c, err := nd.DialTCP(ctx, network, netip.AddrPortFrom(src, 0), dst)
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", dst, src, err)
	}
	return c, nil
}

// setTransparent sets the socket options of a transparent socket.
// IP_TRANSPARENT is set on IPv6 sockets too: a dual-stack socket carries
// IPv4 in mapped form, and the kernel checks the IPv4 option for it.
func setTransparent(rc syscall.RawConn, network string, mark int, reuseAddr bool) error {
	type opt struct {
		name       string
		level, opt int
		val        int
	}
	opts := []opt{{"IP_TRANSPARENT", unix.SOL_IP, unix.IP_TRANSPARENT, 1}}
	if network == "tcp6" {
		opts = append(opts, opt{"IPV6_TRANSPARENT", unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1})
	}
	if mark != 0 {
		opts = append(opts, opt{"SO_MARK", unix.SOL_SOCKET, unix.SO_MARK, mark})
	}
	if reuseAddr {
		opts = append(opts, opt{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1})
	} else {
		// An onward socket binds the client's address with port 0. Without
		// this option bind(2) picks a port that no other socket on that
		// address holds, searching the bind table under its lock: with
		// thousands of short sessions it serialises every dial. With it
		// the port is chosen at connect(2) by the full four-tuple, like
		// any client socket's.
		opts = append(opts, opt{"IP_BIND_ADDRESS_NO_PORT", unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1})
	}
	var errs []error
	err := rc.Control(func(fd uintptr) {
		for _, o := range opts {
			if err := unix.SetsockoptInt(int(fd), o.level, o.opt, o.val); err != nil {
				errs = append(errs, fmt.Errorf("setsockopt(%s, %d): %w", o.name, o.val, err))
			}
		}
	})
	if err != nil {
		return fmt.Errorf("socket control: %w", err)
	}
	return errors.Join(errs...)
}
