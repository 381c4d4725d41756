//go:build linux

package webui

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindToDevice returns a net.ListenConfig.Control that binds the socket to
// the interface dev (SO_BINDTODEVICE), or nil when dev is empty. Binding to
// the device, not only to an address, keeps the UI off the bridge even when
// listening on 0.0.0.0 or when the management address moves.
func bindToDevice(dev string) func(network, address string, c syscall.RawConn) error {
	if dev == "" {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev)
		})
		if err != nil {
			return fmt.Errorf("SO_BINDTODEVICE(%s): %w", dev, err)
		}
		if serr != nil {
			return fmt.Errorf("SO_BINDTODEVICE(%s): %w", dev, serr)
		}
		return nil
	}
}
