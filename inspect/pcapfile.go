package inspect

import (
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapSource replays a classic pcap file through the same decode path as
// live capture.
type PcapSource struct {
	r *pcapgo.Reader
	c io.Closer
}

// OpenPcap opens a classic pcap file (Ethernet link type).
func OpenPcap(path string) (*PcapSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open pcap: %w", err)
	}
	r, err := pcapgo.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read pcap %s: %w", path, err)
	}
	return &PcapSource{r: r, c: f}, nil
}

// NewPcapSource reads a classic pcap stream.
func NewPcapSource(r io.Reader) (*PcapSource, error) {
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read pcap: %w", err)
	}
	return &PcapSource{r: pr}, nil
}

// ReadPacketData returns the next frame or io.EOF.
func (s *PcapSource) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return s.r.ReadPacketData()
}

// Close closes the file.
func (s *PcapSource) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}
