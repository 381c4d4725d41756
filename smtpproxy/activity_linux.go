package smtpproxy

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// kernelActivity returns a counter that grows whenever the TCP socket
// under c receives data or has sent data acknowledged (TCP_INFO
// tcpi_bytes_received + tcpi_bytes_acked, Linux 4.1+). It reads the
// socket without disturbing a splice(2) in progress. nil when c is not a
// TCP socket. Once the socket is closed, the last value is returned.
func kernelActivity(c net.Conn) func() uint64 {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	read := func() (uint64, bool) {
		var v uint64
		var gerr error
		err := raw.Control(func(fd uintptr) {
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				gerr = err
				return
			}
			v = info.Bytes_received + info.Bytes_acked
		})
		return v, err == nil && gerr == nil
	}
	last, ok := read()
	if !ok {
		return nil
	}
	return func() uint64 {
		if v, ok := read(); ok {
			last = v
		}
		return last
	}
}
