package bridge

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// MarkedDialer returns a dialer whose sockets carry mark as SO_MARK, so
// that policy routing picks their route (e.g. ReplyMark: through the
// inside gateway, toward the LAN). The caller sets its timeouts. Needs
// CAP_NET_ADMIN.
func MarkedDialer(mark int) *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark)
		}); err != nil {
			return fmt.Errorf("socket control: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("setsockopt(SO_MARK, %#x): %w", mark, serr)
		}
		return nil
	}}
}
