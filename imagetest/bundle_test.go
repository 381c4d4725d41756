//go:build imagetest

package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/update"
)

// TestBundleApplies feeds the bundle built by image/build.sh
// (RELAYGATE_BUNDLE=dist/relaygate-V-amd64.update.tar.gz, with its .sha256
// and the image's public key, relaygate-V-amd64.update.pub, beside it) to
// the appliance's updater, with files standing in for the partitions and
// the ESP: the shell-built format and the Go reader agree, the signature
// and the published digest verify, and slot b receives the root file
// system and slot b's kernel image. The same bundle without its signature
// is refused before anything is written.
func TestBundleApplies(t *testing.T) {
	path := os.Getenv("RELAYGATE_BUNDLE")
	if path == "" {
		t.Skip("RELAYGATE_BUNDLE not set (make image-test sets it)")
	}
	sumLine, err := os.ReadFile(path + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(sumLine))[0]

	dir := t.TempDir()
	u := &update.Updater{
		Cmdline:      filepath.Join(dir, "cmdline"),
		PartitionDir: filepath.Join(dir, "by-partlabel"),
		ESP:          filepath.Join(dir, "efi"),
		Arch:         "amd64",
		KeyFile:      strings.TrimSuffix(path, ".tar.gz") + ".pub",
		OSRelease:    filepath.Join(dir, "os-release"),
		Tries:        3,
	}
	// An image older than any bundle.
	if err := os.WriteFile(u.OSRelease, []byte("IMAGE_ID=relaygate\nRELAYGATE_BUILD_EPOCH=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var oneshot string
	u.SetOneShot = func(_ context.Context, id string) error { oneshot = id; return nil }
	if err := os.WriteFile(u.Cmdline, []byte("root=PARTLABEL=root-a rootfstype=erofs ro relaygate.slot=a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(u.ESP, "EFI", "Linux"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(u.PartitionDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Sparse 512 MiB slots, as in the image's partition table.
	for _, p := range []string{"root-a", "root-b"} {
		if err := os.WriteFile(filepath.Join(u.PartitionDir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(u.PartitionDir, p), 512<<20); err != nil {
			t.Fatal(err)
		}
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Without its signature, the real bundle is refused and nothing written.
	unsigned := withoutSignature(t, f)
	if _, err := u.Apply(context.Background(), bytes.NewReader(unsigned), ""); !errors.Is(err, update.ErrUnsigned) {
		t.Fatalf("Apply(unsigned copy of %s): %v, want ErrUnsigned", path, err)
	}
	if b, err := os.ReadFile(filepath.Join(u.PartitionDir, "root-b")); err != nil || !bytes.Equal(b[:1<<20], make([]byte, 1<<20)) {
		t.Fatalf("the refused unsigned bundle wrote slot b (%v)", err)
	}
	if des, _ := os.ReadDir(filepath.Join(u.ESP, "EFI", "Linux")); len(des) != 0 {
		t.Fatalf("the refused unsigned bundle left %d files on the ESP", len(des))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}

	res, err := u.Apply(context.Background(), f, want)
	if err != nil {
		t.Fatalf("Apply(%s): %v", path, err)
	}
	t.Logf("applied %s: %+v", filepath.Base(path), res)
	if res.Slot != update.SlotB || oneshot != res.Entry {
		t.Fatalf("result %+v, oneshot %q", res, oneshot)
	}
	// The erofs superblock magic (0xE0F5E1E2, little endian) at offset 1024.
	part, err := os.Open(filepath.Join(u.PartitionDir, "root-b"))
	if err != nil {
		t.Fatal(err)
	}
	defer part.Close()
	magic := make([]byte, 4)
	if _, err := part.ReadAt(magic, 1024); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(magic, []byte{0xe2, 0xe1, 0xf5, 0xe0}) {
		t.Fatalf("root-b has no erofs superblock: % x", magic)
	}
	uki, err := os.ReadFile(filepath.Join(u.ESP, "EFI", "Linux", res.Entry))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(uki, []byte("MZ")) || !bytes.Contains(uki, []byte("root=PARTLABEL=root-b")) {
		t.Fatal("the new entry is not slot b's kernel image")
	}

	// A bundle whose bytes are damaged is refused and leaves no entry.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	u2 := &update.Updater{Cmdline: u.Cmdline, PartitionDir: u.PartitionDir, ESP: filepath.Join(dir, "efi2"),
		Arch: "amd64", KeyFile: u.KeyFile, OSRelease: u.OSRelease, Tries: 3, SetOneShot: u.SetOneShot}
	if err := os.MkdirAll(filepath.Join(u2.ESP, "EFI", "Linux"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := u2.Apply(context.Background(), io.MultiReader(io.LimitReader(f, 1<<20), bytes.NewReader([]byte("garbage"))), want); err == nil {
		t.Fatal("a truncated, damaged bundle was accepted")
	}
	if des, _ := os.ReadDir(filepath.Join(u2.ESP, "EFI", "Linux")); len(des) != 0 {
		t.Fatalf("refused bundle left %d files on the ESP", len(des))
	}
}

// withoutSignature copies the bundle in r without its manifest.sig.
func withoutSignature(t *testing.T, r io.Reader) []byte {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	sawSig := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == update.SigName {
			sawSig = true
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if !sawSig {
		t.Fatal("the bundle built by image/build.sh has no " + update.SigName)
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
