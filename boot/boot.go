// Package boot is the appliance image's boot logic: what `appliance info`,
// `appliance health` and `appliance init-config` answer the image's systemd
// units, so that no shell script on the box reads the configuration file:
// the binary is its only parser. It reads the running system through
// machine: files below a root directory ("/" on the box, a temporary tree
// in tests) and the network links through the kernel interface.
package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf16"

	"gopkg.in/yaml.v3"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/update"
)

// WriteInfo writes what the image's scripts need as KEY='VALUE' lines,
// quoted for sh, for the configuration at cfgPath; version is the binary's.
// Unknown values are empty: it fails only when w does.
func WriteInfo(w io.Writer, cfgPath, version string) error {
	return writeShellVars(w, newMachine().info(cfgPath, version))
}

// Health checks, for up to timeout (0: once), that the daemon of the
// configuration at cfgPath serves, and returns a one-line summary; its
// error is one line too.
func Health(ctx context.Context, cfgPath string, timeout time.Duration) (string, error) {
	ok, err := newMachine().health(ctx, cfgPath, timeout)
	if err != nil {
		return "", errors.New(errorLine(err))
	}
	return ok, nil
}

// InitConfig writes the first configuration for the interfaces ports
// ("management,inside,outside") to path, with dataDir, and reports on
// stdout; it refuses to replace an existing file unless force.
func InitConfig(path, ports, dataDir string, force bool, stdout io.Writer) error {
	return initConfig(path, ports, dataDir, force, stdout)
}

// Paths on the box, relative to machine.root.
const (
	osReleaseFile = "usr/lib/os-release"
	cmdlineFile   = "proc/cmdline"
	sysNetDir     = "sys/class/net"
	efivarsDir    = "sys/firmware/efi/efivars"
	// loaderGUID is the vendor GUID of systemd-boot's variables
	// (LoaderEntrySelected, LoaderBootCountPath, ...).
	loaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
)

// link is what the boot commands need to know about a network interface.
type link struct {
	Up bool
	// Addrs are its addresses with their prefix lengths.
	Addrs []netip.Prefix
}

// kernel is the network side of the running system, behind an interface
// so that the commands' tests need neither root nor particular links.
type kernel interface {
	// Link returns the state of the interface name; ok is false when it
	// does not exist.
	Link(name string) (l link, ok bool, err error)
	// DialTCP connects to addr from a socket bound to device
	// (SO_BINDTODEVICE; no binding when device is empty).
	DialTCP(ctx context.Context, device, addr string) (net.Conn, error)
}

// machine is the running system as the boot commands see it.
type machine struct {
	root   string // "/" on the box
	kernel kernel
}

func newMachine() *machine { return &machine{root: "/", kernel: hostKernel{}} }

func (m *machine) path(p string) string { return filepath.Join(m.root, p) }

// osRelease returns the value of key in os-release ("" when absent; the
// file's values may be quoted).
func (m *machine) osRelease(key string) string {
	b, err := os.ReadFile(m.path(osReleaseFile))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			v = strings.TrimSpace(v)
			if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// slot is the running root slot from the kernel command line ("" off the
// image).
func (m *machine) slot() string {
	b, err := os.ReadFile(m.path(cmdlineFile))
	if err != nil {
		return ""
	}
	s, err := update.CurrentSlot(string(b))
	if err != nil {
		return ""
	}
	return string(s)
}

// efiString reads one of systemd-boot's string variables: 4 bytes of
// attributes, then UTF-16LE text ending in NUL. "" when absent.
func (m *machine) efiString(name string) string {
	b, err := os.ReadFile(m.path(filepath.Join(efivarsDir, name+"-"+loaderGUID)))
	if err != nil || len(b) < 4 {
		return ""
	}
	b = b[4:]
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := uint16(b[i]) | uint16(b[i+1])<<8
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// physicalPorts returns the physical Ethernet ports in PCI bus order: the
// sysfs device path embeds the PCI topology, so sorting by it sorts by
// bus, then device, then function. Virtual links have no device; wireless
// and other link types are left out.
func (m *machine) physicalPorts() []string {
	dir := m.path(sysNetDir)
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type port struct{ dev, name string }
	var ports []port
	for _, de := range des {
		d := filepath.Join(dir, de.Name())
		dev, err := filepath.EvalSymlinks(filepath.Join(d, "device"))
		if err != nil {
			continue
		}
		if t, _ := os.ReadFile(filepath.Join(d, "type")); strings.TrimSpace(string(t)) != "1" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "wireless")); err == nil {
			continue
		}
		ports = append(ports, port{dev, de.Name()})
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].dev < ports[j].dev })
	names := make([]string, len(ports))
	for i, p := range ports {
		names[i] = p.name
	}
	return names
}

// pciAddrRE matches a PCI address (domain:bus:device.function) in a sysfs path.
var pciAddrRE = regexp.MustCompile(`[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]`)

// portDescription is "MAC, pci ADDRESS" of a port, for the console ("" when
// the port does not exist). virtio devices hang below their PCI function:
// the last PCI address in the device path is the port's.
func (m *machine) portDescription(name string) string {
	if name == "" {
		return ""
	}
	d := m.path(filepath.Join(sysNetDir, name))
	mac, err := os.ReadFile(filepath.Join(d, "address"))
	if err != nil {
		return ""
	}
	pci := "?"
	if dev, err := filepath.EvalSymlinks(filepath.Join(d, "device")); err == nil {
		if all := pciAddrRE.FindAllString(dev, -1); len(all) > 0 {
			pci = all[len(all)-1]
		}
	}
	return strings.TrimSpace(string(mac)) + ", pci " + pci
}

// loadConfigLenient reads the configuration for info: the validated one
// when the file is valid; otherwise what the file says on top of the
// defaults (decoded without validation), so that the console can still
// show ports and the URL, and the error. cfg is nil only when the file
// cannot be read or decoded at all.
func loadConfigLenient(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err == nil {
		return cfg, nil
	}
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		return nil, err
	}
	c := config.Default()
	// Not strict: unknown keys are what made Load fail, perhaps.
	if yaml.Unmarshal(data, c) != nil {
		return nil, err
	}
	return c, err
}

// shellQuote quotes v for sh: single quotes, a single quote inside written
// as '\” . Control characters (newlines) become spaces, so that every
// value stays on its line.
func shellQuote(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, v)
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// keyValue is one line of `appliance info`.
type keyValue struct{ Key, Value string }

// writeShellVars prints KEY='VALUE' lines.
func writeShellVars(w io.Writer, kvs []keyValue) error {
	var sb strings.Builder
	for _, kv := range kvs {
		sb.WriteString(kv.Key)
		sb.WriteByte('=')
		sb.WriteString(shellQuote(kv.Value))
		sb.WriteByte('\n')
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// webPort is the port of a listen address ("" when there is none).
func webPort(listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	return port
}

// errorLine is err on one line, for KEY=VALUE output and exit messages.
func errorLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(fmt.Sprint(err)), " ")
}
