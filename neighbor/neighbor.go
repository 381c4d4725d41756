// Package neighbor listens, passively, for the LLDP (IEEE 802.1AB) and CDP
// frames that the devices cabled to the bridge ports send: the switch on
// the inside port, the router on the outside port. It keeps, per port, the
// latest neighbour (system name, port, management addresses, VLAN) until
// its time to live runs out, so that the System page can show what the box
// is plugged into and propose that switch as the first one to ask over SNMP
// (package locate).
package neighbor

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Protocols of a Neighbor.
const (
	LLDP = "lldp"
	CDP  = "cdp"
)

// Bounds on what one frame may make the box keep.
const (
	// MaxFrame is the largest frame decoded; LLDP and CDP fit in one
	// Ethernet frame of 1500 octets of payload.
	MaxFrame = 1600
	// MaxString bounds every text field, in bytes (LLDP's own limit is
	// 255 octets per TLV).
	MaxString = 255
	// MaxAddresses bounds the management addresses kept per neighbour.
	MaxAddresses = 4
)

// Neighbor is the device at the other end of one of the box's ports, as
// its latest LLDP or CDP frame describes it.
type Neighbor struct {
	// Interface is the box's port the frame arrived on, e.g. eth1.
	Interface string `json:"interface"`
	// Side is inside (towards the L3 switch) or outside (the router).
	Side string `json:"side"`
	// Protocol is lldp or cdp.
	Protocol string `json:"protocol"`
	// ChassisID identifies the device: a MAC (aa:bb:cc:dd:ee:ff), an
	// address, or its own text (LLDP); the device ID (CDP).
	ChassisID string `json:"chassis_id"`
	// PortID is the device's port the box is cabled to, e.g. Gi1/0/48.
	PortID string `json:"port_id"`
	// PortDescription is that port's description, e.g. "uplink relaygate".
	PortDescription string `json:"port_description,omitempty"`
	// SystemName is the device's name, e.g. core-1.
	SystemName string `json:"system_name,omitempty"`
	// SystemDescription is its model and software (CDP: the version string).
	SystemDescription string `json:"system_description,omitempty"`
	// ManagementAddresses are where the device is managed (and SNMP
	// asked), e.g. ["10.0.0.2"]; at most MaxAddresses.
	ManagementAddresses []string `json:"management_addresses"`
	// VLAN is the port's VLAN: LLDP's 802.1 port VLAN ID, CDP's native
	// VLAN; 0 when not sent.
	VLAN int `json:"vlan,omitempty"`
	// Capabilities are the enabled ones, e.g. ["bridge", "router"].
	Capabilities []string `json:"capabilities"`
	// TTL is how long the device said its description holds, in seconds.
	TTL int `json:"ttl_seconds"`
	// SeenAt is when the latest frame arrived.
	SeenAt time.Time `json:"seen_at"`
	// ExpiresAt is SeenAt + TTL: the neighbour is dropped then.
	ExpiresAt time.Time `json:"expires_at"`
}

// ErrNotDiscovery is returned for a frame that is neither LLDP nor CDP.
var ErrNotDiscovery = errors.New("not an LLDP or CDP frame")

// Decode decodes one Ethernet frame holding LLDP or CDP. Interface, Side,
// SeenAt and ExpiresAt are left for the caller. It never panics: a panic in
// the decoder becomes an error.
func Decode(frame []byte) (n Neighbor, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = Neighbor{}, fmt.Errorf("decode panic: %v", r)
		}
	}()
	if len(frame) > MaxFrame {
		return Neighbor{}, fmt.Errorf("frame of %d octets (max %d)", len(frame), MaxFrame)
	}
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	if l, ok := p.Layer(layers.LayerTypeLinkLayerDiscovery).(*layers.LinkLayerDiscovery); ok {
		info, _ := p.Layer(layers.LayerTypeLinkLayerDiscoveryInfo).(*layers.LinkLayerDiscoveryInfo)
		return decodeLLDP(l, info)
	}
	if l, ok := p.Layer(layers.LayerTypeCiscoDiscovery).(*layers.CiscoDiscovery); ok {
		info, _ := p.Layer(layers.LayerTypeCiscoDiscoveryInfo).(*layers.CiscoDiscoveryInfo)
		return decodeCDP(l, info)
	}
	if e := p.ErrorLayer(); e != nil {
		return Neighbor{}, fmt.Errorf("%w: %v", ErrNotDiscovery, e.Error())
	}
	return Neighbor{}, ErrNotDiscovery
}

func decodeLLDP(l *layers.LinkLayerDiscovery, info *layers.LinkLayerDiscoveryInfo) (Neighbor, error) {
	if len(l.ChassisID.ID) == 0 || len(l.PortID.ID) == 0 {
		return Neighbor{}, errors.New("lldp: no chassis or port ID")
	}
	n := Neighbor{
		Protocol:            LLDP,
		ChassisID:           lldpID(l.ChassisID.ID, l.ChassisID.Subtype == layers.LLDPChassisIDSubTypeMACAddr, l.ChassisID.Subtype == layers.LLDPChassisIDSubTypeNetworkAddr),
		PortID:              lldpID(l.PortID.ID, l.PortID.Subtype == layers.LLDPPortIDSubtypeMACAddr, l.PortID.Subtype == layers.LLDPPortIDSubtypeNetworkAddr),
		TTL:                 int(l.TTL),
		ManagementAddresses: []string{},
		Capabilities:        []string{},
	}
	for _, v := range l.Values {
		if v.Type != layers.LLDPTLVMgmtAddress || len(v.Value) < 2 {
			continue
		}
		// RFC: string length (subtype + address), subtype (IANA family), address.
		alen := int(v.Value[0])
		if alen < 2 || 1+alen > len(v.Value) {
			continue
		}
		n.addAddr(ianaAddr(v.Value[1], v.Value[2:1+alen]))
	}
	if info == nil {
		return n, nil
	}
	n.PortDescription = Clean(info.PortDescription)
	n.SystemName = Clean(info.SysName)
	n.SystemDescription = Clean(info.SysDescription)
	c := info.SysCapabilities.EnabledCap
	for _, f := range []struct {
		on   bool
		name string
	}{
		{c.Bridge, "bridge"}, {c.Router, "router"}, {c.WLANAP, "wlan_ap"}, {c.Phone, "phone"},
		{c.Repeater, "repeater"}, {c.DocSis, "docsis"}, {c.StationOnly, "station"},
		{c.CVLAN, "cvlan"}, {c.SVLAN, "svlan"}, {c.TMPR, "tpmr"}, {c.Other, "other"},
	} {
		if f.on {
			n.Capabilities = append(n.Capabilities, f.name)
		}
	}
	if d, err := info.Decode8021(); err == nil && d.PVID > 0 && d.PVID < 4095 {
		n.VLAN = int(d.PVID)
	}
	return n, nil
}

func decodeCDP(l *layers.CiscoDiscovery, info *layers.CiscoDiscoveryInfo) (Neighbor, error) {
	if info == nil || info.DeviceID == "" || info.PortID == "" {
		return Neighbor{}, errors.New("cdp: no device or port ID")
	}
	n := Neighbor{
		Protocol:            CDP,
		ChassisID:           Clean(info.DeviceID),
		PortID:              Clean(info.PortID),
		SystemName:          Clean(info.SysName),
		SystemDescription:   Clean(info.Version),
		TTL:                 int(l.TTL),
		ManagementAddresses: []string{},
		Capabilities:        []string{},
	}
	if n.SystemName == "" {
		// Most devices send only the device ID, which is their host name
		// (Cisco appends the domain).
		n.SystemName = n.ChassisID
	}
	for _, ips := range [][]net.IP{info.MgmtAddresses, info.Addresses} {
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip); ok {
				n.addAddr(a.Unmap())
			}
		}
	}
	c := info.Capabilities
	for _, f := range []struct {
		on   bool
		name string
	}{
		{c.L3Router, "router"}, {c.TBBridge || c.SPBridge, "bridge"}, {c.L2Switch, "switch"},
		{c.IsHost, "host"}, {c.IGMPFilter, "igmp"}, {c.L1Repeater, "repeater"},
		{c.IsPhone, "phone"}, {c.RemotelyManaged, "remote"},
	} {
		if f.on {
			n.Capabilities = append(n.Capabilities, f.name)
		}
	}
	if info.NativeVLAN > 0 && info.NativeVLAN < 4095 {
		n.VLAN = int(info.NativeVLAN)
	}
	return n, nil
}

// addAddr keeps a valid, new management address, up to MaxAddresses.
func (n *Neighbor) addAddr(a netip.Addr) {
	if !a.IsValid() || a.IsUnspecified() || len(n.ManagementAddresses) >= MaxAddresses {
		return
	}
	s := a.String()
	for _, have := range n.ManagementAddresses {
		if have == s {
			return
		}
	}
	n.ManagementAddresses = append(n.ManagementAddresses, s)
}

// ianaAddr is an address of IANA address family fam (1 IPv4, 2 IPv6).
func ianaAddr(fam byte, b []byte) netip.Addr {
	switch {
	case fam == byte(layers.IANAAddressFamilyIPV4) && len(b) == 4,
		fam == byte(layers.IANAAddressFamilyIPV6) && len(b) == 16:
		a, _ := netip.AddrFromSlice(b)
		return a.Unmap()
	}
	return netip.Addr{}
}

// lldpID renders a chassis or port ID: a MAC or an address for those
// subtypes, text when it is printable, hex otherwise.
func lldpID(b []byte, isMAC, isAddr bool) string {
	switch {
	case isMAC && len(b) == 6:
		return net.HardwareAddr(b).String()
	case isAddr && len(b) > 1:
		if a := ianaAddr(b[0], b[1:]); a.IsValid() {
			return a.String()
		}
	}
	if utf8.Valid(b) && printable(string(b)) {
		return Clean(string(b))
	}
	if len(b) > MaxString/3 {
		b = b[:MaxString/3]
	}
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return s != ""
}

// Clean makes a device-sent string safe to keep and show: invalid UTF-8
// and control characters become spaces, runs of white space one space,
// and it is clipped to MaxString bytes on a character boundary.
func Clean(s string) string {
	if len(s) > 4*MaxString {
		s = s[:4*MaxString]
	}
	s = strings.ToValidUTF8(s, " ")
	s = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)), " ")
	for len(s) > MaxString {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
