package boot

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/webui"
)

// fakeBox is a root directory laid out as on the appliance: os-release,
// the kernel command line, systemd-boot's EFI variables and three virtio
// ports whose names are not in PCI order.
func fakeBox(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, root, osReleaseFile, "NAME=\"relaygate\"\nIMAGE_ID=relaygate\nIMAGE_VERSION=\"1.4.0\"\n")
	writeFile(t, root, cmdlineFile, "root=PARTLABEL=root-b rootfstype=erofs ro quiet relaygate.slot=b\n")
	efi := func(name, s string) {
		b := []byte{7, 0, 0, 0}
		for _, u := range utf16.Encode([]rune(s + "\x00")) {
			b = append(b, byte(u), byte(u>>8))
		}
		writeFile(t, root, filepath.Join(efivarsDir, name+"-"+loaderGUID), string(b))
	}
	efi("LoaderEntrySelected", "relaygate-1.4.0-b+1.efi")
	efi("LoaderBootCountPath", `\EFI\Linux\relaygate-1.4.0-b+1.efi`)
	// name -> PCI function of its virtio device, MAC
	for _, p := range []struct{ name, pci, mac string }{
		{"ens5", "0000:00:05.0", "52:54:00:77:00:03"},
		{"ens3", "0000:00:03.0", "52:54:00:77:00:01"},
		{"ens4", "0000:00:04.0", "52:54:00:77:00:02"},
	} {
		dev := filepath.Join(root, "sys/devices/pci0000:00", p.pci, "virtio"+p.pci[len(p.pci)-3:len(p.pci)-2])
		if err := os.MkdirAll(dev, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, root, filepath.Join(sysNetDir, p.name, "type"), "1\n")
		writeFile(t, root, filepath.Join(sysNetDir, p.name, "address"), p.mac+"\n")
		if err := os.Symlink(dev, filepath.Join(root, sysNetDir, p.name, "device")); err != nil {
			t.Fatal(err)
		}
	}
	// Not ports: a virtual link (no device), a wireless one, a non-Ethernet one.
	writeFile(t, root, filepath.Join(sysNetDir, "br0", "type"), "1\n")
	for _, n := range []string{"wlan0", "can0"} {
		dev := filepath.Join(root, "sys/devices/pci0000:00/0000:00:09.0", n)
		os.MkdirAll(dev, 0o755)
		os.Symlink(dev, filepath.Join(root, sysNetDir, n, "device"))
	}
	writeFile(t, root, filepath.Join(sysNetDir, "wlan0", "type"), "1\n")
	writeFile(t, root, filepath.Join(sysNetDir, "wlan0", "wireless", "x"), "")
	writeFile(t, root, filepath.Join(sysNetDir, "can0", "type"), "280\n")
	return root
}

func infoMap(kvs []keyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestInfo(t *testing.T) {
	root := fakeBox(t)
	data := t.TempDir()
	certPEM, _ := selfSigned(t)
	certFile := writeFile(t, data, webui.GeneratedCertFile, string(certPEM))
	fp, err := webui.CertFingerprint(certFile)
	if err != nil {
		t.Fatal(err)
	}
	good := "mode: enforce\ninterfaces:\n  management: ens3\n  inside: ens4   # the L3 switch\n  outside: \"ens5\"\n" +
		"relays:\n  - {name: relay, address: 10.0.0.25/32}\n" +
		"web:\n  listen: \"[::]:9443\"\ndata_dir: " + data + "\n"
	kern := &fakeKernel{links: map[string]link{
		"ens3": {Up: true, Addrs: []netip.Prefix{pfx("192.168.77.50/24"), pfx("127.0.0.2/8"), pfx("fe80::1/64"), pfx("2001:db8::50/64")}},
	}}

	// The values every case shares unless it says otherwise.
	base := map[string]string{
		"VERSION": "v9", "IMAGE_VERSION": "1.4.0", "SLOT": "b",
		"BOOT_ENTRY": "relaygate-1.4.0-b+1.efi", "BOOT_ENTRY_ID": "relaygate-1.4.0-b.efi", "TRIAL_BOOT": "yes",
		"CONFIG_ERROR": "", "MODE": "enforce", "BRIDGE": "br0",
		"MANAGEMENT": "ens3", "INSIDE": "ens4", "OUTSIDE": "ens5", "DATA_DIR": data,
		"WEB_LISTEN": "[::]:9443", "WEB_PORT": "9443", "PORTS": "ens3 ens4 ens5",
		"MANAGEMENT_NIC":  "52:54:00:77:00:01, pci 0000:00:03.0",
		"INSIDE_NIC":      "52:54:00:77:00:02, pci 0000:00:04.0",
		"OUTSIDE_NIC":     "52:54:00:77:00:03, pci 0000:00:05.0",
		"MANAGEMENT_MODE": "static", "MANAGEMENT_STATIC_ADDRESS": "192.168.77.50/24",
		"MANAGEMENT_STATIC_GATEWAY": "192.168.77.1", "MANAGEMENT_STATIC_DNS": "",
		"MANAGEMENT_ADDRESSES": "192.168.77.50/24 2001:db8::50/64",
		"WEB_URLS":             "https://192.168.77.50:9443/ https://[2001:db8::50]:9443/",
		"CERT_FILE":            certFile, "CERT_SHA256": fp,
		"SETUP_PENDING": "yes", "SETUP_TOKEN": "ABCD-EFGH-2345-WXYZ-ABCD-EFGH",
	}
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			m[k] = v
		}
		return m
	}
	writeFile(t, data, "management.conf", "mode=static\naddress=192.168.77.50/24\ngateway=192.168.77.1\n")
	writeFile(t, data, webui.SetupTokenFile, "ABCD-EFGH-2345-WXYZ-ABCD-EFGH\n")

	for _, tc := range []struct {
		name   string
		config string // "" : no file
		prep   func(t *testing.T, root string)
		want   map[string]string
	}{
		{name: "appliance", config: good, want: base},
		{name: "specific listen address", config: strings.Replace(good, "[::]:9443", "192.168.77.50:8443", 1),
			want: with(map[string]string{"WEB_LISTEN": "192.168.77.50:8443", "WEB_PORT": "8443", "WEB_URLS": "https://192.168.77.50:8443/"})},
		{name: "no configuration yet", want: with(map[string]string{
			"CONFIG_ERROR": "read config: open CONFIG: no such file or directory", "MODE": "monitor",
			"MANAGEMENT": "", "INSIDE": "", "OUTSIDE": "", "MANAGEMENT_NIC": "", "INSIDE_NIC": "", "OUTSIDE_NIC": "",
			"DATA_DIR": "/var/lib/relaygate", "WEB_LISTEN": "0.0.0.0:8443", "WEB_PORT": "8443",
			"MANAGEMENT_ADDRESSES": "", "WEB_URLS": "", "CERT_FILE": "/var/lib/relaygate/web-cert.pem", "CERT_SHA256": "",
			"MANAGEMENT_MODE": "dhcp", "MANAGEMENT_STATIC_ADDRESS": "", "MANAGEMENT_STATIC_GATEWAY": "", "SETUP_TOKEN": "",
			"SETUP_PENDING": pendingOf("/var/lib/relaygate"),
		})},
		{
			// A file the daemon would refuse still shows its ports and URL.
			name: "invalid configuration", config: good + "bogus_key: 1\n",
			want: with(map[string]string{"CONFIG_ERROR": "CONFIG: line 11: bogus_key: unknown key"}),
		},
		{name: "off the image", config: good, prep: func(t *testing.T, root string) {
			for _, p := range []string{osReleaseFile, cmdlineFile, efivarsDir} {
				os.RemoveAll(filepath.Join(root, p))
			}
		}, want: with(map[string]string{"IMAGE_VERSION": "", "SLOT": "", "BOOT_ENTRY": "", "BOOT_ENTRY_ID": "", "TRIAL_BOOT": "no"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := root
			if tc.prep != nil {
				root = fakeBox(t)
				tc.prep(t, root)
			}
			cfgPath := filepath.Join(t.TempDir(), "relaygate.yaml")
			if tc.config != "" {
				writeFile(t, filepath.Dir(cfgPath), "relaygate.yaml", tc.config)
			}
			m := &machine{root: root, kernel: kern}
			got := infoMap(m.info(cfgPath, "v9"))
			if e := got["CONFIG_ERROR"]; e != "" {
				got["CONFIG_ERROR"] = strings.ReplaceAll(e, cfgPath, "CONFIG")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("info (-want +got):\n%s", diff)
			}
		})
	}
}

// pendingOf is what SETUP_PENDING says for a data directory this test
// does not control (the machine's default one).
func pendingOf(dataDir string) string {
	if fileExists(filepath.Join(dataDir, webui.SetupTokenFile)) || !fileExists(filepath.Join(dataDir, "relaygate.db")) {
		return "yes"
	}
	return "no"
}

func TestSetupState(t *testing.T) {
	for _, tc := range []struct {
		name        string
		files       map[string]string
		wantPending string
		wantToken   string
	}{
		{"fresh box: no store yet", nil, "yes", ""},
		{"token written", map[string]string{"relaygate.db": "", webui.SetupTokenFile: "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF\n"}, "yes", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"},
		{"administrator exists", map[string]string{"relaygate.db": ""}, "no", ""},
		{"strange token file", map[string]string{webui.SetupTokenFile: "$(reboot)\n"}, "yes", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for f, c := range tc.files {
				writeFile(t, dir, f, c)
			}
			pending, token := (&machine{root: "/"}).setupState(dir)
			if pending != tc.wantPending || token != tc.wantToken {
				t.Errorf("setupState = %q, %q; want %q, %q", pending, token, tc.wantPending, tc.wantToken)
			}
		})
	}
}
