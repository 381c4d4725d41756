//go:build linux

package neighbor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// groupAddrs are the multicast addresses the port is asked to accept, for
// NICs that filter multicast (a bridge port is promiscuous anyway): LLDP's
// nearest-bridge group and CDP's.
var groupAddrs = [][6]byte{
	{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e},
	{0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc},
}

// Listen receives LLDP and CDP frames arriving on iface (the port on side
// inside or outside) into t until ctx ends. A Linux bridge does not forward
// LLDP's group address; the frames reach the port's own packet sockets,
// which is where this socket listens: an AF_PACKET socket on iface with the
// Filter program, read through the Go runtime's poller (no thread held
// while idle). Frames the box sends itself (CDP bridged from the other port
// leaves by this one) are skipped. It returns nil when ctx ends, or the
// error that stopped it from opening.
func Listen(ctx context.Context, t *Table, iface, side string, log *slog.Logger) error {
	f, err := open(iface)
	if err != nil {
		return err
	}
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.Close() }) // wakes the read below
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("neighbor socket on %s: %w", iface, err)
	}
	buf := make([]byte, MaxFrame+1)
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) {
				continue
			}
			return fmt.Errorf("neighbor receive on %s: %w", iface, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n > len(buf) {
			// Counted as oversize without holding more than MaxFrame+1.
			t.Handle(iface, side, make([]byte, n))
			continue
		}
		if t.Handle(iface, side, buf[:n]) {
			log.Debug("neighbour frame", "component", "neighbor", "iface", iface)
		}
	}
}

// open returns a non-blocking AF_PACKET socket on iface with the filter
// attached before it is bound, so no unfiltered frame is ever queued.
func open(iface string) (*os.File, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("neighbor socket: interface %s: %w", iface, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("neighbor socket on %s: %w", iface, err)
	}
	fail := func(op string, err error) (*os.File, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("neighbor socket on %s: %s: %w", iface, op, err)
	}
	raw, err := Filter()
	if err != nil {
		return fail("filter", err)
	}
	prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fail("SO_ATTACH_FILTER", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	for _, a := range groupAddrs {
		mr := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
		copy(mr.Address[:], a[:])
		// Best effort: veth and bridge ports accept every address anyway.
		_ = unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr)
	}
	return os.NewFile(uintptr(fd), "packet:"+iface), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
