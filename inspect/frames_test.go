package inspect

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/relaygate/relaygate/event"
)

// frame is one crafted Ethernet frame with its capture time.
type frame struct {
	data []byte
	ci   gopacket.CaptureInfo
}

// tcpFlow crafts the frames of one TCP conversation, keeping sequence
// numbers, for replay through the decoder.
type tcpFlow struct {
	t        testing.TB
	cli, srv netip.AddrPort
	vlan     uint16
	cseq     uint32
	sseq     uint32
	now      time.Time
	mss      int
	frames   []frame
}

var (
	macCli = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macSrv = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	t0     = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
)

func newTCPFlow(t testing.TB, cli, srv string) *tcpFlow {
	return &tcpFlow{t: t, cli: netip.MustParseAddrPort(cli), srv: netip.MustParseAddrPort(srv),
		cseq: 1000, sseq: 50000, now: t0, mss: 1460}
}

func (f *tcpFlow) packet(fromClient bool, flags string, payload []byte) frame {
	f.t.Helper()
	src, dst := f.cli, f.srv
	smac, dmac := macCli, macSrv
	seq, ack := f.cseq, f.sseq
	if !fromClient {
		src, dst, smac, dmac = f.srv, f.cli, macSrv, macCli
		seq, ack = f.sseq, f.cseq
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: seq, Ack: ack, Window: 65535}
	setFlags(tcp, flags)
	eth := &layers.Ethernet{SrcMAC: smac, DstMAC: dmac}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	var ipType layers.EthernetType
	var ip gopacket.NetworkLayer
	if src.Addr().Is4() {
		ipType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		ip = ip4
	} else {
		ipType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	}
	if f.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: f.vlan, Type: ipType})
	} else {
		eth.EthernetType = ipType
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		f.t.Fatal(err)
	}
	ls = append(ls, ip.(gopacket.SerializableLayer), tcp, gopacket.Payload(payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		f.t.Fatal(err)
	}
	f.now = f.now.Add(time.Millisecond)
	data := append([]byte(nil), buf.Bytes()...)
	return frame{data, gopacket.CaptureInfo{Timestamp: f.now, CaptureLength: len(data), Length: len(data)}}
}

// setFlags sets the TCP flags named in flags: S, A, F, R, P.
func setFlags(tcp *layers.TCP, flags string) {
	for _, c := range flags {
		switch c {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		case 'R':
			tcp.RST = true
		case 'P':
			tcp.PSH = true
		}
	}
}

func (f *tcpFlow) add(fr frame) { f.frames = append(f.frames, fr) }

func (f *tcpFlow) handshake() *tcpFlow {
	f.add(f.packet(true, "S", nil))
	f.cseq++
	f.add(f.packet(false, "SA", nil))
	f.sseq++
	f.add(f.packet(true, "A", nil))
	return f
}

// client sends s in MSS-sized segments.
func (f *tcpFlow) client(s string) *tcpFlow { return f.send(true, []byte(s)) }
func (f *tcpFlow) server(s string) *tcpFlow { return f.send(false, []byte(s)) }

func (f *tcpFlow) send(fromClient bool, p []byte) *tcpFlow {
	for len(p) > 0 {
		n := min(len(p), f.mss)
		f.add(f.packet(fromClient, "PA", p[:n]))
		if fromClient {
			f.cseq += uint32(n)
		} else {
			f.sseq += uint32(n)
		}
		p = p[n:]
	}
	return f
}

func (f *tcpFlow) close() *tcpFlow {
	f.add(f.packet(true, "FA", nil))
	f.cseq++
	f.add(f.packet(false, "FA", nil))
	f.sseq++
	f.add(f.packet(true, "A", nil))
	return f
}

func (f *tcpFlow) reset() *tcpFlow {
	f.add(f.packet(true, "RA", nil))
	return f
}

// smtpSession is a plain session: greeting, EHLO, n messages to rcpts, QUIT.
func (f *tcpFlow) smtpSession(helo, from string, rcpts []string, n int) *tcpFlow {
	f.handshake()
	f.server("220 mx.example ESMTP\r\n")
	f.client("EHLO " + helo + "\r\n")
	f.server("250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
	for i := 0; i < n; i++ {
		f.client("MAIL FROM:<" + from + ">\r\n")
		f.server("250 2.1.0 Ok\r\n")
		for _, r := range rcpts {
			f.client("RCPT TO:<" + r + ">\r\n")
			f.server("250 2.1.5 Ok\r\n")
		}
		f.client("DATA\r\n")
		f.server("354 End data with <CR><LF>.<CR><LF>\r\n")
		f.client("Subject: hello\r\n\r\nbody line\r\n..dot-stuffed\r\n.\r\n")
		f.server("250 2.0.0 Ok: queued\r\n")
	}
	f.client("QUIT\r\n")
	f.server("221 2.0.0 Bye\r\n")
	return f.close()
}

// writePcap writes frames to a classic pcap in memory.
func writePcap(t testing.TB, frames []frame) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		if err := w.WritePacket(fr.ci, fr.data); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

type fakeRecorder struct {
	mu     sync.Mutex
	events []event.Event
}

func (r *fakeRecorder) Record(e event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *fakeRecorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

type seriesKey struct{ metric, key string }

type fakeSeries struct {
	mu sync.Mutex
	m  map[seriesKey]int64
	// minutes counts additions per minute, for the per-minute checks.
	minutes map[time.Time]int64
}

func (s *fakeSeries) AddSeries(metric, key string, t time.Time, delta int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m, s.minutes = map[seriesKey]int64{}, map[time.Time]int64{}
	}
	s.m[seriesKey{metric, key}] += delta
	if metric == "inspect_messages" {
		s.minutes[t.Truncate(time.Minute)] += delta
	}
}

func (s *fakeSeries) get(metric, key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[seriesKey{metric, key}]
}
