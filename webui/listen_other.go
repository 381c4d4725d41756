//go:build !linux

package webui

import (
	"fmt"
	"syscall"
)

// bindToDevice fails for any device: SO_BINDTODEVICE is Linux-only, and
// serving on all interfaces instead would be a silent security downgrade.
func bindToDevice(dev string) func(network, address string, c syscall.RawConn) error {
	if dev == "" {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		return fmt.Errorf("bind to device %s: only supported on Linux", dev)
	}
}
