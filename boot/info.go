package boot

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/mgmtnet"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/update"
	"github.com/relaygate/relaygate/webui"
)

// setupTokenChars are those of the token PrepareSetup writes (base32 in
// groups of four); a file with anything else is not shown.
const setupTokenChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567-"

// info is what `appliance info` prints, in this order; see usageInfo. It
// never fails: what cannot be read is empty, and a configuration that
// cannot be loaded is reported in CONFIG_ERROR while the values fall back
// to what the file says (unvalidated) or to the defaults.
func (m *machine) info(cfgPath, binVersion string) []keyValue {
	kv := []keyValue{
		{"VERSION", binVersion},
		{"IMAGE_VERSION", m.osRelease("IMAGE_VERSION")},
		{"SLOT", m.slot()},
	}

	entry := m.efiString("LoaderEntrySelected")
	entryID := entry
	if e, ok := update.ParseEntry(entry); ok {
		entryID = e.ID()
	}
	trial := "no"
	if m.efiString("LoaderBootCountPath") != "" {
		trial = "yes"
	}
	kv = append(kv, keyValue{"BOOT_ENTRY", entry}, keyValue{"BOOT_ENTRY_ID", entryID}, keyValue{"TRIAL_BOOT", trial})

	cfg, err := loadConfigLenient(cfgPath)
	if cfg == nil {
		cfg = config.Default()
	}
	kv = append(kv, keyValue{"CONFIG_ERROR", errorLine(err)})
	ifs := cfg.Interfaces
	kv = append(kv,
		keyValue{"MODE", string(cfg.Mode)},
		keyValue{"BRIDGE", ifs.Bridge},
		keyValue{"MANAGEMENT", ifs.Management},
		keyValue{"INSIDE", ifs.Inside},
		keyValue{"OUTSIDE", ifs.Outside},
		keyValue{"DATA_DIR", cfg.DataDir},
		keyValue{"WEB_LISTEN", cfg.Web.Listen},
		keyValue{"WEB_PORT", webPort(cfg.Web.Listen)},
		keyValue{"PORTS", strings.Join(m.physicalPorts(), " ")},
		keyValue{"MANAGEMENT_NIC", m.portDescription(ifs.Management)},
		keyValue{"INSIDE_NIC", m.portDescription(ifs.Inside)},
		keyValue{"OUTSIDE_NIC", m.portDescription(ifs.Outside)},
	)

	// management.conf: what the admin chose; MANAGEMENT_ADDRESSES: what the
	// port has now.
	var mgmtMode, mgmtAddr, mgmtGW, mgmtDNS string
	if cfg.DataDir != "" {
		if s, err := mgmtnet.NewFile(cfg.DataDir).Load(); err == nil {
			mgmtMode, mgmtAddr, mgmtGW, mgmtDNS = string(s.Mode), s.Address, s.Gateway, s.DNS
		}
	}
	addrs := m.managementAddrs(ifs.Management)
	addrStrs := make([]string, len(addrs))
	for i, a := range addrs {
		addrStrs[i] = a.String()
	}
	kv = append(kv,
		keyValue{"MANAGEMENT_MODE", mgmtMode},
		keyValue{"MANAGEMENT_STATIC_ADDRESS", mgmtAddr},
		keyValue{"MANAGEMENT_STATIC_GATEWAY", mgmtGW},
		keyValue{"MANAGEMENT_STATIC_DNS", mgmtDNS},
		keyValue{"MANAGEMENT_ADDRESSES", strings.Join(addrStrs, " ")},
		keyValue{"WEB_URLS", strings.Join(webURLs(cfg.Web.Listen, addrs), " ")},
	)

	certFile := webui.CertPath(cfg.Web, cfg.DataDir)
	fp, err := webui.CertFingerprint(certFile)
	if err != nil {
		fp = ""
	}
	kv = append(kv, keyValue{"CERT_FILE", certFile}, keyValue{"CERT_SHA256", fp})

	pending, token := m.setupState(cfg.DataDir)
	kv = append(kv, keyValue{"SETUP_PENDING", pending}, keyValue{"SETUP_TOKEN", token})
	return kv
}

// managementAddrs are the global addresses of the management port now
// (none when it is down, unplugged or waiting for DHCP).
func (m *machine) managementAddrs(dev string) []netip.Prefix {
	if dev == "" {
		return nil
	}
	l, ok, err := m.kernel.Link(dev)
	if err != nil || !ok {
		return nil
	}
	var out []netip.Prefix
	for _, p := range l.Addrs {
		if a := p.Addr(); a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() {
			continue
		}
		out = append(out, p)
	}
	return out
}

// webURLs are the URLs of the web UI: its listen address when that is a
// specific one, else one per management address.
func webURLs(listen string, addrs []netip.Prefix) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	url := func(a netip.Addr) string { return "https://" + net.JoinHostPort(a.String(), port) + "/" }
	if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
		return []string{url(a)}
	}
	var out []string
	for _, p := range addrs {
		out = append(out, url(p.Addr()))
	}
	return out
}

// setupState says whether the first administrator is still to be created
// ("yes" while webui's setup token file exists, or before the daemon first
// made its store, which then holds no administrator) and the token, when
// the daemon wrote one. The token is what the daemon also logs and the
// console shows; the file is root's (0600).
func (m *machine) setupState(dataDir string) (pending, token string) {
	if dataDir == "" {
		return "", ""
	}
	b, err := os.ReadFile(filepath.Join(dataDir, webui.SetupTokenFile))
	if err == nil {
		tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		if strings.Trim(tok, setupTokenChars) != "" {
			tok = ""
		}
		return "yes", tok
	}
	if !fileExists(filepath.Join(dataDir, store.FileName)) {
		return "yes", ""
	}
	return "no", ""
}
