package update

import (
	"fmt"
	"strconv"
	"strings"
)

// Slot is a root slot: "a" or "b" (partition labels root-a, root-b).
type Slot string

// The two slots.
const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// Other is the slot that is not s.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// PartLabel is the GPT partition label of the slot's root partition.
func (s Slot) PartLabel() string { return "root-" + string(s) }

// CurrentSlot finds the running slot in a kernel command line: the
// relaygate.slot= parameter, else root=PARTLABEL=root-X.
func CurrentSlot(cmdline string) (Slot, error) {
	var fromRoot Slot
	for _, f := range strings.Fields(cmdline) {
		switch {
		case strings.HasPrefix(f, "relaygate.slot="):
			if s := Slot(strings.TrimPrefix(f, "relaygate.slot=")); s == SlotA || s == SlotB {
				return s, nil
			}
			return "", fmt.Errorf("kernel command line: bad %q", f)
		case strings.HasPrefix(f, "root=PARTLABEL=root-"):
			if s := Slot(strings.TrimPrefix(f, "root=PARTLABEL=root-")); s == SlotA || s == SlotB {
				fromRoot = s
			}
		}
	}
	if fromRoot != "" {
		return fromRoot, nil
	}
	return "", fmt.Errorf("kernel command line names no root slot (relaygate.slot= or root=PARTLABEL=root-a|b)")
}

// Entry is a unified kernel image on the ESP, EFI/Linux/relaygate-VERSION-SLOT.efi,
// optionally with systemd-boot's boot counter: relaygate-VERSION-SLOT+LEFT[-DONE].efi.
type Entry struct {
	File    string `json:"file"` // file name as found
	Version string `json:"version"`
	Slot    Slot   `json:"slot"`
	// Counted: the entry has a +LEFT[-DONE] counter: not blessed yet (a
	// trial), or bad when Left is 0.
	Counted bool `json:"counted"`
	Left    int  `json:"tries_left"`
	Done    int  `json:"tries_done"`
}

// ID is the entry's file name without the boot counter: its name once
// blessed, what LoaderEntryDefault names for a good entry. (systemd-boot 252,
// the image's, identifies an entry by its file name as it is now, counter
// included: a trial entry's one-shot names its file, see Updater.Apply.)
func (e Entry) ID() string { return "relaygate-" + e.Version + "-" + string(e.Slot) + ".efi" }

// EntryFile names a new entry for version on slot with tries boot attempts
// (0: no counter, the entry is good from the start).
func EntryFile(version string, s Slot, tries int) string {
	if tries > 0 {
		return fmt.Sprintf("relaygate-%s-%s+%d.efi", version, s, tries)
	}
	return fmt.Sprintf("relaygate-%s-%s.efi", version, s)
}

// ParseEntry reads an entry file name; ok is false for anything else.
func ParseEntry(file string) (e Entry, ok bool) {
	base, found := strings.CutSuffix(file, ".efi")
	if !found {
		return Entry{}, false
	}
	base, found = strings.CutPrefix(base, "relaygate-")
	if !found {
		return Entry{}, false
	}
	e.File = file
	if i := strings.LastIndexByte(base, '+'); i >= 0 {
		counter := base[i+1:]
		base = base[:i]
		left, done, hasDone := strings.Cut(counter, "-")
		l, err := strconv.Atoi(left)
		if err != nil || l < 0 {
			return Entry{}, false
		}
		e.Counted, e.Left = true, l
		if hasDone {
			d, err := strconv.Atoi(done)
			if err != nil || d < 0 {
				return Entry{}, false
			}
			e.Done = d
		}
	}
	i := strings.LastIndexByte(base, '-')
	if i <= 0 {
		return Entry{}, false
	}
	e.Version, e.Slot = base[:i], Slot(base[i+1:])
	if (e.Slot != SlotA && e.Slot != SlotB) || !versionRE.MatchString(e.Version) {
		return Entry{}, false
	}
	return e, true
}
