// Package update installs firmware update bundles on the appliance's inactive
// root slot (A/B) and arranges a single trial boot of it.
//
// A bundle (relaygate-VERSION-amd64.update.tar.gz, built by image/build.sh)
// is a gzip-compressed tar whose first entry is "manifest", the second
// "manifest.sig" (its signature), followed by "root.erofs" (the read-only
// root file system) and one unified kernel image per slot, "uki-a.efi" and
// "uki-b.efi" (they differ only in the kernel command line:
// root=PARTLABEL=root-X relaygate.slot=X). The manifest is text, one
// KEY=VALUE a line:
//
//	format=relaygate-update-1
//	version=1.2.0
//	build_epoch=1767225600
//	arch=amd64
//	sha256:root.erofs=<hex>
//	sha256:uki-a.efi=<hex>
//	sha256:uki-b.efi=<hex>
//
// manifest.sig is an ed25519 signature of the manifest's bytes in signify's
// format (signify.go), by a key the appliance trusts; the manifest lists the
// SHA-256 of every file, so the signature covers the whole bundle. The
// signature, the build epoch (anti-rollback: a bundle must be newer than the
// running image, whose epoch is RELAYGATE_BUILD_EPOCH in its os-release) and
// the architecture are checked before anything is written.
//
// The SHA-256 of the whole bundle file is published beside it
// (BUNDLE.sha256, sha256sum format); given to Apply, it is checked too.
package update

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Format is the manifest's format line this package reads and writes.
const Format = "relaygate-update-1"

// Names of the files in a bundle.
const (
	ManifestName = "manifest"
	SigName      = "manifest.sig"
	RootName     = "root.erofs"
)

// UKIName is the bundle file holding the kernel image for slot s.
func UKIName(s Slot) string { return "uki-" + string(s) + ".efi" }

// Manifest describes a bundle.
type Manifest struct {
	Format  string
	Version string
	// BuildEpoch orders versions for anti-rollback: the build time in
	// seconds since 1970 (image/build.sh; BUILD_EPOCH overrides it). The
	// version string (git describe) does not sort.
	BuildEpoch int64
	Arch       string
	// SHA256 maps a file name in the bundle to its lower-case hex digest.
	SHA256 map[string]string
}

// versionRE bounds what a version may look like: it becomes part of a file
// name on the ESP, so no '/', no '+' (boot counting) and nothing exotic.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$`)

// ParseManifest reads a manifest and checks that it is complete.
func ParseManifest(r io.Reader) (*Manifest, error) {
	m := &Manifest{SHA256: map[string]string{}}
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("manifest line %d: want KEY=VALUE", n)
		}
		switch {
		case k == "format":
			m.Format = v
		case k == "version":
			m.Version = v
		case k == "build_epoch":
			e, err := strconv.ParseInt(v, 10, 64)
			if err != nil || e <= 0 {
				return nil, fmt.Errorf("manifest line %d: build_epoch %q: want a positive integer", n, v)
			}
			m.BuildEpoch = e
		case k == "arch":
			m.Arch = v
		case strings.HasPrefix(k, "sha256:"):
			name := strings.TrimPrefix(k, "sha256:")
			if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
				return nil, fmt.Errorf("manifest line %d: %s: not a SHA-256 hex digest", n, k)
			}
			m.SHA256[name] = strings.ToLower(v)
		default:
			// Unknown keys are for newer readers; ignore them.
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return m, m.validate()
}

func (m *Manifest) validate() error {
	if m.Format != Format {
		return fmt.Errorf("manifest: format %q, want %q", m.Format, Format)
	}
	if !versionRE.MatchString(m.Version) {
		return fmt.Errorf("manifest: invalid version %q", m.Version)
	}
	if m.BuildEpoch == 0 {
		return fmt.Errorf("manifest: build_epoch missing")
	}
	if m.Arch == "" {
		return fmt.Errorf("manifest: arch missing")
	}
	for _, f := range []string{RootName, UKIName(SlotA), UKIName(SlotB)} {
		if m.SHA256[f] == "" {
			return fmt.Errorf("manifest: sha256:%s missing", f)
		}
	}
	return nil
}

// String renders m in the manifest format (files in a fixed order).
func (m *Manifest) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "format=%s\nversion=%s\nbuild_epoch=%d\narch=%s\n", m.Format, m.Version, m.BuildEpoch, m.Arch)
	for _, f := range []string{RootName, UKIName(SlotA), UKIName(SlotB)} {
		if h, ok := m.SHA256[f]; ok {
			fmt.Fprintf(&sb, "sha256:%s=%s\n", f, h)
		}
	}
	return sb.String()
}
