package boot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// hostKernel is kernel on the running system.
type hostKernel struct{}

var _ kernel = hostKernel{}

func (hostKernel) Link(name string) (link, bool, error) {
	// net.Interfaces, not InterfaceByName: the latter reports a missing
	// link and a failing netlink dump alike.
	ifs, err := net.Interfaces()
	if err != nil {
		return link{}, false, fmt.Errorf("list interfaces: %w", err)
	}
	var ifi *net.Interface
	for i := range ifs {
		if ifs[i].Name == name {
			ifi = &ifs[i]
		}
	}
	if ifi == nil {
		return link{}, false, nil
	}
	l := link{Up: ifi.Flags&net.FlagUp != 0}
	addrs, err := ifi.Addrs()
	if err != nil {
		return l, true, fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		bits, _ := ipn.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && bits > 32 {
			bits -= 96
		}
		l.Addrs = append(l.Addrs, netip.PrefixFrom(ip, bits))
	}
	return l, true, nil
}

// DialTCP binds the socket to device first: the web UI's socket is bound
// to the management port (SO_BINDTODEVICE), and the kernel delivers a
// connection from the box itself to that socket only when the client's
// socket names the same device (the route's input interface is the
// client's bound device, else lo).
func (hostKernel) DialTCP(ctx context.Context, device, addr string) (net.Conn, error) {
	d := net.Dialer{}
	if device != "" {
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, device)
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("SO_BINDTODEVICE(%s): %w", device, serr)
			}
			return nil
		}
	}
	return d.DialContext(ctx, "tcp", addr)
}
