//go:build !linux

package smtpproxy

import "net"

// kernelActivity is Linux only; elsewhere splice counts in user space.
func kernelActivity(net.Conn) func() uint64 { return nil }
