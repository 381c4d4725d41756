package boot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/internal/atomicfile"
	"github.com/relaygate/relaygate/mgmtnet"
)

// errConfigExists is init-config's refusal to replace a configuration.
var errConfigExists = errors.New("exists (--force replaces it)")

// initialConfig is the first configuration of an appliance: monitor mode
// (nothing diverted), the three ports, the web UI on every address of the
// management port. The image's first boot writes it with the physical
// ports in PCI bus order.
func initialConfig(management, inside, outside, dataDir string) []byte {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // a JSON string is a YAML scalar
	return []byte(`# Written by appliance init-config. On the appliance image the first boot
# maps the physical ports in PCI bus order: first = management, second =
# inside (toward the L3 switch), third = outside (toward the router).
# Change the names here or in the UI to use other ports.
mode: monitor
interfaces:
  bridge: br0
  management: ` + q(management) + `
  inside: ` + q(inside) + `
  outside: ` + q(outside) + `
web:
  listen: "0.0.0.0:8443"
data_dir: ` + q(dataDir) + `
`)
}

// validPortName accepts what Linux allows as an interface name (at most
// 15 bytes, no '/', ':' or white space), restricted to the characters
// udev and drivers use, so that the name is safe in YAML, shell and
// networkd files alike.
func validPortName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.@-", r)) {
			return false
		}
	}
	return true
}

// initConfig writes the initial configuration to path (refusing to
// replace one unless force) after parsing it as the daemon will, and
// data_dir/management.conf (DHCP) when that does not exist.
func initConfig(path, ports, dataDir string, force bool, stdout io.Writer) error {
	names := strings.Split(ports, ",")
	if len(names) != 3 {
		return fmt.Errorf("--ports %q: want three interface names, management,inside,outside", ports)
	}
	seen := map[string]bool{}
	for i, n := range names {
		n = strings.TrimSpace(n)
		names[i] = n
		if !validPortName(n) {
			return fmt.Errorf("--ports: %q is not an interface name", n)
		}
		if seen[n] {
			return fmt.Errorf("--ports: %s given twice", n)
		}
		seen[n] = true
	}
	if !filepath.IsAbs(dataDir) {
		return fmt.Errorf("--data-dir %q: want an absolute path", dataDir)
	}
	data := initialConfig(names[0], names[1], names[2], dataDir)
	if _, err := config.Parse(data); err != nil {
		return fmt.Errorf("initial configuration: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create the configuration's directory: %w", err)
	}
	if force {
		if err := atomicfile.WriteKeepPrev(path, data, 0o600); err != nil {
			return err
		}
	} else if err := writeFileNew(path, data); err != nil {
		return err
	}

	mf := mgmtnet.NewFile(dataDir)
	if _, err := os.Stat(mf.Path); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return fmt.Errorf("create data_dir: %w", err)
		}
		if err := atomicfile.Write(mf.Path, mgmtnet.Settings{Mode: mgmtnet.DHCP}.Marshal(), 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s: management=%s inside=%s outside=%s mode=monitor\n", path, names[0], names[1], names[2])
	return nil
}

// writeFileNew creates path with data atomically (temporary file, fsync,
// hard link to the final name, which fails when the name exists, so that
// an existing file is never replaced even by a concurrent writer).
func writeFileNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s %w", path, errConfigExists)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
