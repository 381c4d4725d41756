package boot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/mgmtnet"
)

func TestInitConfig(t *testing.T) {
	const old = "# the admin's\n"
	for _, tc := range []struct {
		name     string
		ports    string
		dataDir  string // default: a temp dir
		existing string // the configuration file's content before; "" none
		mgmtConf string // management.conf before; "" none
		force    bool
		wantErr  string // substring
		wantIfs  [3]string
		wantMgmt mgmtnet.Settings
	}{
		{name: "first boot", ports: "ens3,ens4,ens5", wantIfs: [3]string{"ens3", "ens4", "ens5"}, wantMgmt: mgmtnet.Settings{Mode: mgmtnet.DHCP}},
		{name: "spaces around names", ports: "eth0, eth1 ,eth2", wantIfs: [3]string{"eth0", "eth1", "eth2"}, wantMgmt: mgmtnet.Settings{Mode: mgmtnet.DHCP}},
		{name: "management.conf kept", ports: "ens3,ens4,ens5", mgmtConf: "mode=static\naddress=192.0.2.10/24\n",
			wantIfs: [3]string{"ens3", "ens4", "ens5"}, wantMgmt: mgmtnet.Settings{Mode: mgmtnet.Static, Address: "192.0.2.10/24"}},
		{name: "existing configuration", ports: "ens3,ens4,ens5", existing: old, wantErr: "exists (--force replaces it)"},
		{name: "force", ports: "ens3,ens4,ens5", existing: old, force: true,
			wantIfs: [3]string{"ens3", "ens4", "ens5"}, wantMgmt: mgmtnet.Settings{Mode: mgmtnet.DHCP}},
		{name: "two ports", ports: "ens3,ens4", wantErr: "want three interface names"},
		{name: "four ports", ports: "a,b,c,d", wantErr: "want three interface names"},
		{name: "twice", ports: "ens3,ens4,ens3", wantErr: "ens3 given twice"},
		{name: "not a name", ports: "ens3,ens4,x: y", wantErr: `"x: y" is not an interface name`},
		{name: "injection", ports: "ens3,ens4,\"}\nmode: enforce", wantErr: "is not an interface name"},
		{name: "too long", ports: "ens3,ens4,abcdefghijklmnop", wantErr: "is not an interface name"},
		{name: "empty name", ports: "ens3,,ens5", wantErr: `"" is not an interface name`},
		{name: "relative data dir", ports: "ens3,ens4,ens5", dataDir: "data", wantErr: "want an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "etc", "relaygate.yaml")
			dataDir := tc.dataDir
			if dataDir == "" {
				dataDir = filepath.Join(dir, "data")
			}
			if tc.existing != "" {
				writeFile(t, filepath.Dir(path), filepath.Base(path), tc.existing)
			}
			if tc.mgmtConf != "" {
				writeFile(t, dataDir, mgmtnet.FileName, tc.mgmtConf)
			}
			var out strings.Builder
			err := initConfig(path, tc.ports, dataDir, tc.force, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("initConfig(%q) = %v; want error %q", tc.ports, err, tc.wantErr)
				}
				if tc.existing != "" {
					if b, _ := os.ReadFile(path); string(b) != tc.existing || !errors.Is(err, errConfigExists) {
						t.Errorf("after a refusal the file holds %q (error %v); want it untouched", b, err)
					}
				} else if _, err := os.Stat(path); err == nil {
					t.Errorf("a refused init-config wrote %s", path)
				}
				return
			}
			if err != nil {
				t.Fatalf("initConfig(%q): %v", tc.ports, err)
			}
			// The one parser reads it as the daemon will.
			c, err := config.Load(path)
			if err != nil {
				t.Fatalf("the written configuration does not load: %v", err)
			}
			got := [3]string{c.Interfaces.Management, c.Interfaces.Inside, c.Interfaces.Outside}
			if got != tc.wantIfs || c.Mode != config.Monitor || c.Interfaces.Bridge != "br0" ||
				c.Web.Listen != "0.0.0.0:8443" || c.DataDir != dataDir {
				t.Errorf("written config: ports %v mode %s bridge %s listen %s data_dir %s; want ports %v, monitor, br0, 0.0.0.0:8443, %s",
					got, c.Mode, c.Interfaces.Bridge, c.Web.Listen, c.DataDir, tc.wantIfs, dataDir)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("stat %s: %v, %v; want mode 0600", path, fi.Mode(), err)
			}
			if tc.force {
				if b, _ := os.ReadFile(path + ".prev"); string(b) != old {
					t.Errorf("%s.prev = %q; want the replaced file", path, b)
				}
			}
			s, err := mgmtnet.NewFile(dataDir).Load()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantMgmt, s); diff != "" {
				t.Errorf("management.conf (-want +got):\n%s", diff)
			}
			if !fileExists(filepath.Join(dataDir, mgmtnet.FileName)) {
				t.Errorf("no %s written", mgmtnet.FileName)
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != map[bool]int{false: 1, true: 2}[tc.force] {
				t.Errorf("files beside the configuration: %v; want no temporary files left", entries)
			}
		})
	}
}
