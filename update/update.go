package update

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ErrBusy is returned while another update is being applied.
var ErrBusy = errors.New("an update is already in progress")

// ErrNotNewer is returned for a bundle whose build_epoch is not above the
// running image's (anti-rollback); only Options.ForceDowngrade overrides it.
var ErrNotNewer = errors.New("downgrade refused")

// Updater writes bundles to the inactive slot. The zero value is not usable;
// use New (real paths) and override fields in tests.
type Updater struct {
	// Cmdline is the kernel command line file (/proc/cmdline).
	Cmdline string
	// PartitionDir holds the root slots by partition label (/dev/disk/by-partlabel).
	PartitionDir string
	// ESP is where the EFI system partition is mounted (/efi).
	ESP string
	// Arch must match the bundle's arch.
	Arch string
	// KeyFile holds the public keys (signify format) whose signatures make
	// a bundle acceptable; the image carries it, built in at build time
	// (/usr/share/relaygate/update.pub).
	KeyFile string
	// OSRelease is the running image's os-release, whose
	// RELAYGATE_BUILD_EPOCH a bundle's build_epoch must exceed.
	OSRelease string
	// Tries is systemd-boot's boot counter for a new entry: the trial boots
	// before it is marked bad. The image uses 1: a trial that fails (or is
	// cut short) marks the entry bad, so the next boot is the previous
	// version's whatever the firmware's default entry says.
	Tries int
	// SetOneShot makes the next boot (only) use the entry with this
	// identifier (the new entry's file name, counter included, as
	// systemd-boot 252 names entries); default: bootctl set-oneshot.
	SetOneShot func(ctx context.Context, id string) error
	Log        *slog.Logger

	mu sync.Mutex
}

// New returns an Updater for the appliance image's layout.
func New(log *slog.Logger) *Updater {
	return &Updater{
		Cmdline:      "/proc/cmdline",
		PartitionDir: "/dev/disk/by-partlabel",
		ESP:          "/efi",
		Arch:         "amd64",
		KeyFile:      "/usr/share/relaygate/update.pub",
		OSRelease:    "/usr/lib/os-release",
		Tries:        1,
		SetOneShot:   bootctlOneShot,
		Log:          log,
	}
}

func bootctlOneShot(ctx context.Context, id string) error {
	out, err := exec.CommandContext(ctx, "bootctl", "set-oneshot", id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bootctl set-oneshot %s: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Result says what Apply installed.
type Result struct {
	Version string `json:"version"`
	Slot    Slot   `json:"slot"`
	// Entry is the new boot entry's file in EFI/Linux on the ESP.
	Entry string `json:"entry"`
	// Previous is the running slot, which stays the default until the new
	// one has booted and passed the health check.
	Previous Slot `json:"previous"`
}

// Status describes the slots.
type Status struct {
	Current Slot    `json:"current"`
	Entries []Entry `json:"entries"`
}

// Status reports the running slot and the boot entries on the ESP.
func (u *Updater) Status() (*Status, error) {
	cur, err := u.currentSlot()
	if err != nil {
		return nil, err
	}
	entries, err := u.entries()
	if err != nil {
		return nil, err
	}
	return &Status{Current: cur, Entries: entries}, nil
}

func (u *Updater) currentSlot() (Slot, error) {
	b, err := os.ReadFile(u.Cmdline)
	if err != nil {
		return "", fmt.Errorf("read kernel command line: %w", err)
	}
	return CurrentSlot(string(b))
}

func (u *Updater) entryDir() string { return filepath.Join(u.ESP, "EFI", "Linux") }

func (u *Updater) entries() ([]Entry, error) {
	des, err := os.ReadDir(u.entryDir())
	if err != nil {
		return nil, fmt.Errorf("read ESP entries: %w", err)
	}
	var es []Entry
	for _, de := range des {
		if e, ok := ParseEntry(de.Name()); ok {
			es = append(es, e)
		}
	}
	return es, nil
}

// Options are the checks Install makes beyond the signature.
type Options struct {
	// SHA256 is the bundle file's published digest (optional; an extra
	// check for scripts that pass it, the signature is what counts).
	SHA256 string
	// ForceDowngrade accepts a bundle that is not newer than the running
	// image (build_epoch). Only the console's command line sets it, never
	// the web UI or the API.
	ForceDowngrade bool
}

// Apply installs a bundle as Install does, with the bundle's published
// SHA-256 as an additional check ("" for none), never as a downgrade.
func (u *Updater) Apply(ctx context.Context, r io.Reader, wantSHA256 string) (*Result, error) {
	return u.Install(ctx, r, Options{SHA256: wantSHA256})
}

// Install reads a bundle from r and installs it on the inactive slot: the
// root file system onto its partition, its kernel image as a new boot entry
// with a boot counter (older entries of that slot are removed), and makes
// the next boot, once, use it. Before anything is written, the manifest's
// signature must verify with a trusted key (KeyFile), the bundle must be for
// this architecture and newer than the running image (unless
// opts.ForceDowngrade). Nothing becomes bootable unless every file matches
// the signed manifest (and the whole bundle opts.SHA256, when given). The
// running slot and the data partition are never written. The caller
// reboots when it wants the trial boot to happen.
func (u *Updater) Install(ctx context.Context, r io.Reader, opts Options) (*Result, error) {
	if !u.mu.TryLock() {
		return nil, ErrBusy
	}
	defer u.mu.Unlock()

	want := strings.ToLower(strings.TrimSpace(opts.SHA256))
	if want != "" {
		if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("bundle sha256: want a 64-digit hex SHA-256 digest")
		}
	}
	keys, err := ReadPublicKeys(u.KeyFile)
	if err != nil {
		return nil, err
	}
	running, err := u.runningEpoch()
	if err != nil && !opts.ForceDowngrade {
		return nil, err
	}
	cur, err := u.currentSlot()
	if err != nil {
		return nil, err
	}
	target := cur.Other()

	// The digest of the whole bundle is computed as it streams through; the
	// partition is written on the way (it is not bootable yet), the boot
	// entry only after everything checked out.
	whole := sha256.New()
	zr, err := gzip.NewReader(io.TeeReader(&ctxReader{ctx: ctx, r: r}, whole))
	if err != nil {
		return nil, fmt.Errorf("bundle: not gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	m, err := readSignedManifest(tr, keys)
	if err != nil {
		return nil, err
	}
	if m.Arch != u.Arch {
		return nil, fmt.Errorf("bundle is for %s, this appliance is %s", m.Arch, u.Arch)
	}
	if m.BuildEpoch <= running {
		if !opts.ForceDowngrade {
			return nil, fmt.Errorf("%w: bundle %s (build_epoch %d) is not newer than the running image (build_epoch %d)",
				ErrNotNewer, m.Version, m.BuildEpoch, running)
		}
		u.logger().Warn("installing a bundle that is not newer than the running image (forced)",
			"version", m.Version, "build_epoch", m.BuildEpoch, "running_build_epoch", running)
	}
	log := u.logger().With("version", m.Version, "slot", target)
	log.Info("applying update bundle")

	if err := os.MkdirAll(u.entryDir(), 0o755); err != nil {
		return nil, fmt.Errorf("ESP: %w", err)
	}
	tmpUKI := filepath.Join(u.entryDir(), ".relaygate-update.tmp")
	defer os.Remove(tmpUKI)

	got := map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if _, seen := got[hdr.Name]; seen {
			return nil, fmt.Errorf("bundle: %s twice", hdr.Name)
		}
		var sum string
		switch hdr.Name {
		case RootName:
			sum, err = u.writeRoot(target, tr, hdr.Size)
		case UKIName(target):
			sum, err = writeFile(tmpUKI, tr)
		case UKIName(cur):
			sum, err = hashOnly(tr)
		default:
			err = fmt.Errorf("unexpected file %q", hdr.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", hdr.Name, err)
		}
		if sum != m.SHA256[hdr.Name] {
			return nil, fmt.Errorf("bundle: %s: sha256 %s does not match the manifest", hdr.Name, sum)
		}
		got[hdr.Name] = sum
	}
	// Read to the end so the whole digest covers every byte.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if _, err := io.Copy(io.Discard, io.TeeReader(&ctxReader{ctx: ctx, r: r}, whole)); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if sum := hex.EncodeToString(whole.Sum(nil)); want != "" && sum != want {
		return nil, fmt.Errorf("bundle sha256 %s does not match %s: corrupt or wrong file", sum, want)
	}
	for _, f := range []string{RootName, UKIName(target)} {
		if _, ok := got[f]; !ok {
			return nil, fmt.Errorf("bundle: %s missing", f)
		}
	}

	// Replace the target slot's entries by the new one, with a counter.
	old, err := u.entries()
	if err != nil {
		return nil, err
	}
	for _, e := range old {
		if e.Slot == target {
			if err := os.Remove(filepath.Join(u.entryDir(), e.File)); err != nil {
				return nil, fmt.Errorf("remove old entry: %w", err)
			}
		}
	}
	name := EntryFile(m.Version, target, u.Tries)
	if err := os.Rename(tmpUKI, filepath.Join(u.entryDir(), name)); err != nil {
		return nil, fmt.Errorf("install boot entry: %w", err)
	}
	syncDir(u.entryDir())
	if u.SetOneShot != nil {
		if err := u.SetOneShot(ctx, name); err != nil {
			return nil, err
		}
	}
	log.Info("update installed; the next boot tries it once", "entry", name)
	return &Result{Version: m.Version, Slot: target, Entry: name, Previous: cur}, nil
}

// readSignedManifest reads the bundle's first two entries, the manifest
// and its signature, and returns the manifest once the signature verifies.
func readSignedManifest(tr *tar.Reader, keys []PublicKey) (*Manifest, error) {
	hdr, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if hdr.Name != ManifestName {
		return nil, fmt.Errorf("bundle: first entry %q, want %q", hdr.Name, ManifestName)
	}
	raw, err := readSmall(tr, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("bundle: %s: %w", ManifestName, err)
	}
	hdr, err = tr.Next()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if err != nil || hdr.Name != SigName {
		return nil, ErrUnsigned
	}
	rawSig, err := readSmall(tr, maxSigFile)
	if err != nil {
		return nil, fmt.Errorf("bundle: %s: %w", SigName, err)
	}
	sig, err := ParseSignature(rawSig)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if err := Verify(keys, raw, sig); err != nil {
		return nil, err
	}
	return ParseManifest(bytes.NewReader(raw))
}

// maxManifest bounds the manifest, which is held in memory to be verified.
const maxManifest = 64 << 10

func readSmall(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// runningEpoch is the running image's build epoch (RELAYGATE_BUILD_EPOCH
// in its os-release).
func (u *Updater) runningEpoch() (int64, error) {
	b, err := os.ReadFile(u.OSRelease)
	if err != nil {
		return 0, fmt.Errorf("running image's build epoch: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "RELAYGATE_BUILD_EPOCH="); ok {
			e, err := strconv.ParseInt(strings.Trim(v, `"'`), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: RELAYGATE_BUILD_EPOCH %q: %w", u.OSRelease, v, err)
			}
			return e, nil
		}
	}
	return 0, fmt.Errorf("%s: no RELAYGATE_BUILD_EPOCH: cannot tell whether a bundle is newer", u.OSRelease)
}

func (u *Updater) logger() *slog.Logger {
	if u.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return u.Log.With("component", "update")
}

// writeRoot copies the root file system onto the slot's partition (a block
// device; a file in tests), refusing one that does not fit.
func (u *Updater) writeRoot(s Slot, r io.Reader, size int64) (string, error) {
	dev := filepath.Join(u.PartitionDir, s.PartLabel())
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	capacity, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", err
	}
	if size > capacity {
		return "", fmt.Errorf("%d bytes do not fit the %d-byte partition %s", size, capacity, dev)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return sum(h), f.Close()
}

func writeFile(path string, r io.Reader) (string, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return sum(h), f.Close()
}

func hashOnly(r io.Reader) (string, error) {
	h := sha256.New()
	_, err := io.Copy(h, r)
	return sum(h), err
}

func sum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: FAT may not support it
		d.Close()
	}
}

// ctxReader stops a long copy when the request goes away.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
