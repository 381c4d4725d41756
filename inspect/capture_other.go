//go:build !linux

package inspect

import (
	"errors"

	"github.com/gopacket/gopacket"
	"golang.org/x/net/bpf"
)

// LiveSource is only available on Linux.
type LiveSource struct{ Iface string }

// OpenLive is only available on Linux.
func OpenLive(iface string, ringMB int, ports []uint16) (*LiveSource, error) {
	return nil, errors.New("live capture needs Linux AF_PACKET")
}

// ReadPacketData is only available on Linux.
func (s *LiveSource) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, errors.New("live capture needs Linux AF_PACKET")
}

// KernelDrops is only available on Linux.
func (s *LiveSource) KernelDrops() uint64 { return 0 }

// SetFilter is only available on Linux.
func (s *LiveSource) SetFilter(raw []bpf.RawInstruction) error {
	return errors.New("live capture needs Linux AF_PACKET")
}

// Close is only available on Linux.
func (s *LiveSource) Close() error { return nil }
