package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/update"
)

// TestUpdateCommands: keys made by `update keygen` sign a manifest with
// `update sign`; `update apply` installs the signed bundle on the stand-in
// appliance, and refuses an older one unless --force-downgrade is given.
func TestUpdateCommands(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	run := func(args ...string) (string, error) {
		var out, errOut strings.Builder
		err := updateCommand(context.Background(), args, &out, &errOut, standIn(t, dir))
		return out.String(), err
	}
	if _, err := run("keygen", "--secret", p("k.sec"), "--public", p("k.pub")); err != nil {
		t.Fatal(err)
	}
	if _, err := run("keygen", "--secret", p("k.sec"), "--public", p("k2.pub")); err == nil {
		t.Fatal("keygen overwrote an existing secret key")
	}
	pub, err := run("pubkey", "--key", p("k.sec"))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile(p("k.pub")); strings.Split(pub, "\n")[1] != strings.Split(string(want), "\n")[1] {
		t.Fatalf("pubkey printed %q, want the key of %s", pub, want)
	}
	noErr(t, os.Rename(p("k.pub"), p("update.pub"))) // the stand-in image's key

	older := writeBundle(t, dir, "0.9", 500, func(manifest string) {
		if _, err := run("sign", "--key", p("k.sec"), manifest); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := run("apply", older); !errors.Is(err, update.ErrNotNewer) || !strings.Contains(err.Error(), "--force-downgrade") {
		t.Fatalf("apply of an older bundle: %v, want a refusal naming --force-downgrade", err)
	}
	out, err := run("apply", "--force-downgrade", older)
	if err != nil || !strings.Contains(out, "installed 0.9 on slot b") {
		t.Fatalf("apply --force-downgrade: %v, %q", err, out)
	}

	unsigned := writeBundle(t, dir, "2.0", 2000, func(string) {})
	if _, err := run("apply", "--force-downgrade", unsigned); !errors.Is(err, update.ErrUnsigned) {
		t.Fatalf("apply of an unsigned bundle: %v, want ErrUnsigned", err)
	}
	for _, args := range [][]string{{}, {"apply"}, {"sign", "m"}, {"keygen", "--secret", "x"}, {"frob"}} {
		if _, err := run(args...); !errors.Is(err, errUsage) {
			t.Errorf("update %q: %v, want a usage error", args, err)
		}
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// standIn returns an updater for an appliance laid out in dir: running
// slot a at build epoch 1000, files for partitions, trusting dir/update.pub.
func standIn(t *testing.T, dir string) func(*slog.Logger) *update.Updater {
	p := func(n string) string { return filepath.Join(dir, n) }
	noErr(t, os.WriteFile(p("cmdline"), []byte("relaygate.slot=a\n"), 0o644))
	noErr(t, os.WriteFile(p("os-release"), []byte("RELAYGATE_BUILD_EPOCH=1000\n"), 0o644))
	noErr(t, os.MkdirAll(p("parts"), 0o755))
	for _, s := range []string{"root-a", "root-b"} {
		noErr(t, os.WriteFile(filepath.Join(p("parts"), s), make([]byte, 1<<16), 0o644))
	}
	return func(log *slog.Logger) *update.Updater {
		return &update.Updater{Cmdline: p("cmdline"), PartitionDir: p("parts"), ESP: p("efi"), Arch: "amd64",
			KeyFile: p("update.pub"), OSRelease: p("os-release"), Tries: 1, Log: log}
	}
}

// writeBundle writes a bundle of version and epoch into dir; sign gets the
// manifest's path and may write MANIFEST.sig beside it.
func writeBundle(t *testing.T, dir, version string, epoch int64, sign func(manifest string)) string {
	t.Helper()
	files := map[string][]byte{update.RootName: []byte("erofs"), "uki-a.efi": []byte("MZ a"), "uki-b.efi": []byte("MZ b")}
	m := &update.Manifest{Format: update.Format, Version: version, BuildEpoch: epoch, Arch: "amd64", SHA256: map[string]string{}}
	for n, b := range files {
		s := sha256.Sum256(b)
		m.SHA256[n] = hex.EncodeToString(s[:])
	}
	mpath := filepath.Join(dir, version+".manifest")
	noErr(t, os.WriteFile(mpath, []byte(m.String()), 0o644))
	sign(mpath)
	path := filepath.Join(dir, version+".update.tar.gz")
	f, err := os.Create(path)
	noErr(t, err)
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	add := func(name string, b []byte) {
		noErr(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b))}))
		_, err := tw.Write(b)
		noErr(t, err)
	}
	add(update.ManifestName, []byte(m.String()))
	if sig, err := os.ReadFile(mpath + ".sig"); err == nil {
		add(update.SigName, sig)
	}
	for _, n := range []string{update.RootName, "uki-a.efi", "uki-b.efi"} {
		add(n, files[n])
	}
	noErr(t, tw.Close())
	noErr(t, zw.Close())
	return path
}
