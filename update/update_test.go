package update

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func hexsum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

type file struct {
	name string
	data []byte
}

// bundle builds a gzip tar of files in order; manifest files are as given.
func bundle(t *testing.T, files ...file) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), hexsum(buf.Bytes())
}

var (
	rootFS = bytes.Repeat([]byte("erofs!"), 10000)
	ukiA   = []byte("MZ uki root=PARTLABEL=root-a")
	ukiB   = []byte("MZ uki root=PARTLABEL=root-b")
)

// The fixture's running image has build epoch runningEpoch; bundles made
// by manifest are newer.
const (
	runningEpoch = 1000
	newerEpoch   = 2000
)

func manifest(version, arch string) file { return manifestEpoch(version, arch, newerEpoch) }

func manifestEpoch(version, arch string, epoch int64) file {
	m := &Manifest{Format: Format, Version: version, BuildEpoch: epoch, Arch: arch, SHA256: map[string]string{
		RootName: hexsum(rootFS), UKIName(SlotA): hexsum(ukiA), UKIName(SlotB): hexsum(ukiB),
	}}
	return file{ManifestName, []byte(m.String())}
}

// Keys: the appliance trusts trustedKey; otherKey is somebody else's.
var trustedKey, otherKey = mustKeyGen(), mustKeyGen()

func mustKeyGen() *SecretKey {
	k, err := KeyGen(nil)
	if err != nil {
		panic(err)
	}
	return k
}

// sig is manifest m's signature by k.
func sig(k *SecretKey, m file) file {
	return file{SigName, k.Sign(m.data, "verify with update.pub")}
}

// signedBundle is a complete bundle around manifest m, signed by k.
func signedBundle(t *testing.T, m file, k *SecretKey) ([]byte, string) {
	return bundle(t, m, sig(k, m), file{RootName, rootFS}, file{UKIName(SlotA), ukiA}, file{UKIName(SlotB), ukiB})
}

func goodBundle(t *testing.T, version string) ([]byte, string) {
	return signedBundle(t, manifest(version, "amd64"), trustedKey)
}

// fixture: running slot a (version 1.0), slot b holds an old 0.9 entry.
func fixture(t *testing.T, cmdline string) (*Updater, *[]string) {
	t.Helper()
	dir := t.TempDir()
	u := &Updater{
		Cmdline:      filepath.Join(dir, "cmdline"),
		PartitionDir: filepath.Join(dir, "by-partlabel"),
		ESP:          filepath.Join(dir, "efi"),
		Arch:         "amd64",
		KeyFile:      filepath.Join(dir, "update.pub"),
		OSRelease:    filepath.Join(dir, "os-release"),
		Tries:        3,
	}
	must(t, os.WriteFile(u.KeyFile, trustedKey.Public().Marshal("relaygate test key"), 0o644))
	must(t, os.WriteFile(u.OSRelease, []byte("ID=relaygate\nIMAGE_VERSION=\"1.0\"\nRELAYGATE_BUILD_EPOCH=\"1000\"\n"), 0o644))
	var oneshots []string
	u.SetOneShot = func(_ context.Context, id string) error { oneshots = append(oneshots, id); return nil }
	must(t, os.WriteFile(u.Cmdline, []byte(cmdline+"\n"), 0o644))
	must(t, os.MkdirAll(u.PartitionDir, 0o755))
	for _, p := range []string{"root-a", "root-b"} {
		must(t, os.WriteFile(filepath.Join(u.PartitionDir, p), make([]byte, 1<<20), 0o644))
	}
	must(t, os.MkdirAll(u.entryDir(), 0o755))
	must(t, os.WriteFile(filepath.Join(u.entryDir(), "relaygate-1.0-a.efi"), []byte("current"), 0o644))
	must(t, os.WriteFile(filepath.Join(u.entryDir(), "relaygate-0.9-b+0-3.efi"), []byte("old"), 0o644))
	return u, &oneshots
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func entryFiles(t *testing.T, u *Updater) []string {
	t.Helper()
	es, err := u.entries()
	must(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.File)
	}
	slices.Sort(names)
	return names
}

func TestApplyWritesInactiveSlot(t *testing.T) {
	u, oneshots := fixture(t, "root=PARTLABEL=root-a ro relaygate.slot=a quiet")
	b, sum := goodBundle(t, "1.1")
	res, err := u.Apply(context.Background(), bytes.NewReader(b), sum)
	must(t, err)
	if res.Slot != SlotB || res.Previous != SlotA || res.Version != "1.1" || res.Entry != "relaygate-1.1-b+3.efi" {
		t.Fatalf("result %+v", res)
	}
	part, err := os.ReadFile(filepath.Join(u.PartitionDir, "root-b"))
	must(t, err)
	if !bytes.HasPrefix(part, rootFS) || len(part) != 1<<20 {
		t.Fatalf("root-b does not start with the root file system (len %d)", len(part))
	}
	if a, _ := os.ReadFile(filepath.Join(u.PartitionDir, "root-a")); !bytes.Equal(a, make([]byte, 1<<20)) {
		t.Fatal("running slot root-a was written")
	}
	uki, err := os.ReadFile(filepath.Join(u.entryDir(), res.Entry))
	must(t, err)
	if !bytes.Equal(uki, ukiB) {
		t.Fatalf("entry holds %q, want slot b's kernel image", uki)
	}
	// The old slot-b entry is gone, the running one stays, no temp file left.
	if got, want := entryFiles(t, u), []string{"relaygate-1.0-a.efi", "relaygate-1.1-b+3.efi"}; !slices.Equal(got, want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(u.entryDir(), ".relaygate-update.tmp")); !os.IsNotExist(err) {
		t.Fatal("temporary file left on the ESP")
	}
	if !slices.Equal(*oneshots, []string{"relaygate-1.1-b+3.efi"}) {
		t.Fatalf("oneshot %v", *oneshots)
	}
}

func TestApplyFromSlotB(t *testing.T) {
	u, _ := fixture(t, "root=PARTLABEL=root-b ro")
	b, sum := goodBundle(t, "2.0")
	res, err := u.Apply(context.Background(), bytes.NewReader(b), sum)
	must(t, err)
	if res.Slot != SlotA || res.Entry != "relaygate-2.0-a+3.efi" {
		t.Fatalf("result %+v", res)
	}
	uki, _ := os.ReadFile(filepath.Join(u.entryDir(), res.Entry))
	if !bytes.Equal(uki, ukiA) {
		t.Fatal("entry does not hold slot a's kernel image")
	}
}

func TestApplyRefuses(t *testing.T) {
	good, goodSum := goodBundle(t, "1.1")
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)/2] ^= 0xff
	m := manifest("1.1", "amd64")
	badFile, badFileSum := bundle(t, m, sig(trustedKey, m), file{RootName, []byte("not the root")},
		file{UKIName(SlotA), ukiA}, file{UKIName(SlotB), ukiB})
	armM := manifest("1.1", "arm64")
	arm, armSum := bundle(t, armM, sig(trustedKey, armM), file{RootName, rootFS})
	noMan, noManSum := bundle(t, file{RootName, rootFS}, m, sig(trustedKey, m))
	noUKI, noUKISum := bundle(t, m, sig(trustedKey, m), file{RootName, rootFS}, file{UKIName(SlotA), ukiA})
	big := bytes.Repeat([]byte{1}, 2<<20)
	bigM := manifest("1.1", "amd64")
	bigM.data = bytes.Replace(bigM.data, []byte(hexsum(rootFS)), []byte(hexsum(big)), 1)
	tooBig, tooBigSum := bundle(t, bigM, sig(trustedKey, bigM), file{RootName, big})
	evilM := manifest("../x", "amd64")
	evil, evilSum := bundle(t, evilM, sig(trustedKey, evilM))
	extra, extraSum := bundle(t, m, sig(trustedKey, m), file{"etc/passwd", []byte("x")})

	for _, tc := range []struct {
		name, want string
		b          []byte
		sum        string
	}{
		{"wrong digest", "does not match", good, strings.Repeat("0", 64)},
		{"malformed digest", "64-digit", good, "abc"},
		{"corrupt", "", corrupt, goodSum},
		{"file vs manifest", "does not match the manifest", badFile, badFileSum},
		{"arch", "arm64", arm, armSum},
		{"manifest not first", "first entry", noMan, noManSum},
		{"kernel image missing", "uki-b.efi missing", noUKI, noUKISum},
		{"too big", "do not fit", tooBig, tooBigSum},
		{"bad version", "invalid version", evil, evilSum},
		{"unexpected file", "unexpected file", extra, extraSum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, oneshots := fixture(t, "relaygate.slot=a")
			_, err := u.Apply(context.Background(), bytes.NewReader(tc.b), tc.sum)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			// Nothing became bootable.
			if got, want := entryFiles(t, u), []string{"relaygate-0.9-b+0-3.efi", "relaygate-1.0-a.efi"}; !slices.Equal(got, want) {
				t.Fatalf("entries %v, want %v", got, want)
			}
			if len(*oneshots) != 0 {
				t.Fatal("oneshot set for a refused bundle")
			}
		})
	}
}

func TestCurrentSlot(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    Slot
		err     bool
	}{
		{"root=PARTLABEL=root-a rootfstype=erofs ro relaygate.slot=a", SlotA, false},
		{"root=PARTLABEL=root-b ro quiet", SlotB, false},
		{"relaygate.slot=b root=/dev/sda2", SlotB, false},
		{"relaygate.slot=c", "", true},
		{"root=/dev/sda2 ro", "", true},
	} {
		got, err := CurrentSlot(tc.cmdline)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("CurrentSlot(%q) = %q, %v", tc.cmdline, got, err)
		}
	}
	if SlotA.Other() != SlotB || SlotB.Other() != SlotA || SlotB.PartLabel() != "root-b" {
		t.Error("Other/PartLabel")
	}
}

func TestEntryNames(t *testing.T) {
	for _, tc := range []struct {
		file string
		ok   bool
		want Entry
	}{
		{"relaygate-1.2.0-a.efi", true, Entry{Version: "1.2.0", Slot: SlotA}},
		{"relaygate-1.2.0-rc1-b+3.efi", true, Entry{Version: "1.2.0-rc1", Slot: SlotB, Counted: true, Left: 3}},
		{"relaygate-7043a22-dirty-b+1-2.efi", true, Entry{Version: "7043a22-dirty", Slot: SlotB, Counted: true, Left: 1, Done: 2}},
		{"relaygate-1.0-b+0-3.efi", true, Entry{Version: "1.0", Slot: SlotB, Counted: true, Done: 3}},
		{"relaygate-1.0-c.efi", false, Entry{}},
		{"relaygate-a.efi", false, Entry{}},
		{"other-1.0-a.efi", false, Entry{}},
		{"relaygate-1.0-a+x.efi", false, Entry{}},
		{"relaygate-1.0-a.conf", false, Entry{}},
	} {
		e, ok := ParseEntry(tc.file)
		tc.want.File = e.File
		if ok != tc.ok || e != tc.want || (ok && e.File != tc.file) {
			t.Errorf("ParseEntry(%q) = %+v, %v; want %+v, %v", tc.file, e, ok, tc.want, tc.ok)
		}
	}
	if f := EntryFile("1.1", SlotB, 3); f != "relaygate-1.1-b+3.efi" {
		t.Error(f)
	}
	if f := EntryFile("1.1", SlotA, 0); f != "relaygate-1.1-a.efi" {
		t.Error(f)
	}
	e, _ := ParseEntry("relaygate-1.1-b+2-1.efi")
	if e.ID() != "relaygate-1.1-b.efi" {
		t.Error(e.ID())
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := manifest("1.1", "amd64")
	got, err := ParseManifest(bytes.NewReader(append([]byte("# comment\nfuture=1\n"), m.data...)))
	must(t, err)
	if got.String() != string(m.data) {
		t.Fatalf("round trip:\n%s\nwant\n%s", got, m.data)
	}
	for _, bad := range []string{
		"format=other\nversion=1\narch=amd64\n",
		"format=relaygate-update-1\nversion=1\narch=amd64\nsha256:root.erofs=zz\n",
		"format=relaygate-update-1\nversion=1\narch=amd64\n",
		"no equals sign\n",
	} {
		if _, err := ParseManifest(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseManifest(%q) accepted", bad)
		}
	}
}

func TestHandler(t *testing.T) {
	u, _ := fixture(t, "relaygate.slot=a")
	rebooted := false
	h := u.Handler(func() error { rebooted = true; return nil })
	b, sum := goodBundle(t, "1.1")

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/?sha256="+strings.Repeat("1", 64), bytes.NewReader(b)))
	if rec.Code != http.StatusBadRequest || rebooted {
		t.Fatalf("bad digest: %d %s", rec.Code, rec.Body)
	}

	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
	req.Header.Set("X-Bundle-SHA256", sum+"  relaygate-1.1-amd64.update.tar.gz")
	h.ServeHTTP(rec, req)
	var res struct {
		Result
		Reboot bool `json:"reboot"`
	}
	must(t, json.Unmarshal(rec.Body.Bytes(), &res))
	if rec.Code != http.StatusOK || !res.Reboot || !rebooted || res.Slot != SlotB {
		t.Fatalf("good bundle: %d %s (rebooted %v)", rec.Code, rec.Body, rebooted)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	var st Status
	must(t, json.Unmarshal(rec.Body.Bytes(), &st))
	if rec.Code != http.StatusOK || st.Current != SlotA || len(st.Entries) != 2 {
		t.Fatalf("status: %d %s", rec.Code, rec.Body)
	}
}

func TestApplyBusy(t *testing.T) {
	u, _ := fixture(t, "relaygate.slot=a")
	u.mu.Lock()
	defer u.mu.Unlock()
	b, sum := goodBundle(t, "1.1")
	if _, err := u.Apply(context.Background(), bytes.NewReader(b), sum); err != ErrBusy {
		t.Fatalf("err %v, want ErrBusy", err)
	}
}
