// Package mgmtnet is the management port's addressing: DHCP (the default)
// or a static address, kept in data_dir/management.conf. The appliance
// image's console menu writes the same file, and its netconf hook
// (/usr/lib/relaygate/netconf) turns it into systemd-networkd configuration,
// reading it through `appliance info` (which uses Parse).
//
// The file is KEY=VALUE lines (the last line of a key wins, '#' starts a
// comment line):
//
//	mode=static          # dhcp | static
//	address=192.0.2.10/24
//	gateway=192.0.2.1    # optional
//	dns=192.0.2.53       # optional
package mgmtnet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/relaygate/relaygate/internal/atomicfile"
)

// FileName is the file's name in the data directory.
const FileName = "management.conf"

// DefaultHook is the appliance image's script that applies the file.
const DefaultHook = "/usr/lib/relaygate/netconf"

// Mode is how the management port gets its address.
type Mode string

// The modes.
const (
	DHCP   Mode = "dhcp"
	Static Mode = "static"
)

// Settings is the management port's addressing.
type Settings struct {
	Mode Mode `json:"mode"`
	// Address is the static address with its prefix length, e.g. 192.0.2.10/24.
	Address string `json:"address,omitempty"`
	// Gateway is the static default gateway (optional), e.g. 192.0.2.1.
	Gateway string `json:"gateway,omitempty"`
	// DNS is the static DNS server (optional), e.g. 192.0.2.53.
	DNS string `json:"dns,omitempty"`
}

// FieldErrors says what is wrong, per field (mode, address, gateway, dns).
type FieldErrors map[string]string

func (e FieldErrors) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e[k]
	}
	return strings.Join(parts, "; ")
}

// Normalize trims white space and lower-cases the mode.
func (s Settings) Normalize() Settings {
	return Settings{
		Mode:    Mode(strings.ToLower(strings.TrimSpace(string(s.Mode)))),
		Address: strings.TrimSpace(s.Address),
		Gateway: strings.TrimSpace(s.Gateway),
		DNS:     strings.TrimSpace(s.DNS),
	}
}

// Validate checks every field; the error is FieldErrors naming each bad
// one. DHCP takes no address, gateway or DNS server (the DHCP server
// provides them).
func (s Settings) Validate() error {
	fe := FieldErrors{}
	switch s.Mode {
	case DHCP:
		for k, v := range map[string]string{"address": s.Address, "gateway": s.Gateway, "dns": s.DNS} {
			if v != "" {
				fe[k] = "only with mode static (DHCP provides it)"
			}
		}
	case Static:
		validateStatic(s, fe)
	default:
		fe["mode"] = fmt.Sprintf("unknown mode %q (want dhcp or static)", s.Mode)
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}

func validateStatic(s Settings, fe FieldErrors) {
	var pfx netip.Prefix
	if s.Address == "" {
		fe["address"] = "required for mode static (address/prefix length, e.g. 192.0.2.10/24)"
	} else if p, err := netip.ParsePrefix(s.Address); err != nil {
		fe["address"] = fmt.Sprintf("%q is not an address/prefix length (e.g. 192.0.2.10/24)", s.Address)
	} else if a := p.Addr(); a.Zone() != "" || a.Is4In6() {
		fe["address"] = fmt.Sprintf("%q: write the plain address, without zone or ::ffff: form", s.Address)
	} else if !a.IsGlobalUnicast() && !a.IsPrivate() {
		fe["address"] = fmt.Sprintf("%s is not a unicast host address", a)
	} else if p.Bits() == 0 {
		fe["address"] = "prefix length /0 is not a subnet"
	} else if a.Is4() && p.Bits() <= 30 && (a == p.Masked().Addr() || a == lastAddr(p)) {
		fe["address"] = fmt.Sprintf("%s is the network or broadcast address of %s", a, p.Masked())
	} else {
		pfx = p
	}
	if s.Gateway != "" {
		g, err := netip.ParseAddr(s.Gateway)
		switch {
		case err != nil || g.Is4In6():
			fe["gateway"] = fmt.Sprintf("%q is not an IP address (e.g. 192.0.2.1)", s.Gateway)
		case !pfx.IsValid():
			// The address is wrong already; nothing to compare with.
		case g.Is4() != pfx.Addr().Is4():
			fe["gateway"] = fmt.Sprintf("%s is not of the address's family", g)
		case g == pfx.Addr():
			fe["gateway"] = "the gateway is the appliance's own address"
		case !pfx.Contains(g) && !g.IsLinkLocalUnicast():
			fe["gateway"] = fmt.Sprintf("%s is outside the management subnet %s", g, pfx.Masked())
		}
	}
	if s.DNS != "" {
		d, err := netip.ParseAddr(s.DNS)
		if err != nil || d.Is4In6() || d.IsUnspecified() || d.IsMulticast() {
			fe["dns"] = fmt.Sprintf("%q is not a DNS server's IP address (e.g. 192.0.2.53)", s.DNS)
		}
	}
}

// lastAddr is the highest address of an IPv4 prefix (its broadcast).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// String is the settings in one line, for logs and the audit log.
func (s Settings) String() string {
	if s.Mode != Static {
		return string(s.Mode)
	}
	out := "static " + s.Address
	if s.Gateway != "" {
		out += " gateway " + s.Gateway
	}
	if s.DNS != "" {
		out += " dns " + s.DNS
	}
	return out
}

// Parse reads the file's format. Unknown keys are ignored (the image's
// scripts may add their own); a missing mode means DHCP.
func Parse(b []byte) Settings {
	var s Settings
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "mode":
			s.Mode = Mode(v)
		case "address":
			s.Address = v
		case "gateway":
			s.Gateway = v
		case "dns":
			s.DNS = v
		}
	}
	if s.Mode == "" {
		s.Mode = DHCP
	}
	if s.Mode != Static {
		// What a dhcp file may still carry is not in force.
		s = Settings{Mode: s.Mode}
	}
	return s
}

// Marshal writes the file's format.
func (s Settings) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# Management address (written by relaygate; also set from the console menu).\n")
	b.WriteString("# mode=dhcp, or mode=static with address=CIDR, gateway=IP and dns=IP (optional).\n")
	fmt.Fprintf(&b, "mode=%s\n", s.Mode)
	if s.Mode == Static {
		fmt.Fprintf(&b, "address=%s\ngateway=%s\ndns=%s\n", s.Address, s.Gateway, s.DNS)
	}
	return b.Bytes()
}

// Result says what Save did.
type Result struct {
	Settings
	// Applied is true when the appliance image's hook applied the settings
	// (or will in a moment); false when they were only saved.
	Applied bool `json:"applied"`
	// Message says so, in a sentence for the admin.
	Message string `json:"message"`
}

// File is management.conf and the hook that applies it.
type File struct {
	// Path is data_dir/management.conf.
	Path string
	// Hook is run as "Hook apply" after a change when it exists
	// (DefaultHook on the appliance image); empty: never.
	Hook string
	// ApplyDelay lets the HTTP answer reach the admin before the address
	// under their feet changes.
	ApplyDelay time.Duration
	// Run runs the hook; default exec. A test seam.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Logf reports a failure of the delayed apply (nobody waits for it).
	Logf func(format string, args ...any)
}

// NewFile returns the File of a data directory with the image's hook.
func NewFile(dataDir string) *File {
	return &File{Path: filepath.Join(dataDir, FileName), Hook: DefaultHook, ApplyDelay: time.Second}
}

// Load reads the file; a missing file is DHCP (the default).
func (f *File) Load() (Settings, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{Mode: DHCP}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read %s: %w", f.Path, err)
	}
	return Parse(b), nil
}

// Save validates s (FieldErrors; nothing is written then), writes the file
// atomically and, on the appliance image, applies it: the hook regenerates
// the network configuration at once (its errors are returned), and
// networkd takes it up after ApplyDelay. Unchanged settings are not
// applied again.
func (f *File) Save(ctx context.Context, s Settings) (*Result, error) {
	s = s.Normalize()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	cur, err := f.Load()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(f.Path, s.Marshal(), 0o600); err != nil {
		return nil, err
	}
	res := &Result{Settings: s}
	hook := f.Hook
	if hook != "" {
		if _, err := os.Stat(hook); err != nil {
			hook = ""
		}
	}
	switch {
	case hook == "":
		res.Message = "saved; the management address is applied by the appliance image (not this installation)"
	case cur == s:
		res.Applied, res.Message = true, "unchanged; nothing to apply"
	default:
		// Without "apply" the hook only writes networkd's files: a broken
		// setting shows here, before the address changes.
		if out, err := f.run(ctx, hook); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", hook, err, strings.TrimSpace(string(out)))
		}
		time.AfterFunc(f.ApplyDelay, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if out, err := f.run(ctx, hook, "apply"); err != nil && f.Logf != nil {
				f.Logf("%s apply: %v: %s", hook, err, strings.TrimSpace(string(out)))
			}
		})
		res.Applied, res.Message = true, "saved; the management port changes to it in a moment"
	}
	return res, nil
}

func (f *File) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if f.Run != nil {
		return f.Run(ctx, name, args...)
	}
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}
