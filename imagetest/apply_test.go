//go:build imagetest

package imagetest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/update"
)

// TestApplyToDisk is driven by image/test/image-test.sh: it applies a bundle
// with the appliance's updater to the root slots of a stopped VM's disk
// (loop partitions) and to a staging directory for the ESP, which the script
// then copies into the disk's FAT partition with mtools (the build host has
// no vfat). Environment: RELAYGATE_BUNDLE, RELAYGATE_AB_PARTDIR (root-a and
// root-b), RELAYGATE_AB_ESP, RELAYGATE_AB_SLOT (running slot),
// RELAYGATE_AB_TRIES. The new entry's file name is written to ESP/entry.
func TestApplyToDisk(t *testing.T) {
	bundle, partDir, esp := os.Getenv("RELAYGATE_BUNDLE"), os.Getenv("RELAYGATE_AB_PARTDIR"), os.Getenv("RELAYGATE_AB_ESP")
	if bundle == "" || partDir == "" || esp == "" {
		t.Skip("driven by image/test/image-test.sh (RELAYGATE_AB_* not set)")
	}
	tries, err := strconv.Atoi(os.Getenv("RELAYGATE_AB_TRIES"))
	if err != nil {
		t.Fatal("RELAYGATE_AB_TRIES:", err)
	}
	sumLine, err := os.ReadFile(bundle + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte("relaygate.slot="+os.Getenv("RELAYGATE_AB_SLOT")), 0o644); err != nil {
		t.Fatal(err)
	}
	u := &update.Updater{Cmdline: cmdline, PartitionDir: partDir, ESP: esp, Arch: "amd64", Tries: tries}
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := u.Apply(context.Background(), f, strings.Fields(string(sumLine))[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("applied: %+v", res)
	if err := os.WriteFile(filepath.Join(esp, "entry"), []byte(res.Entry), 0o644); err != nil {
		t.Fatal(err)
	}
}
