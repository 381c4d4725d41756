package locate

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/hex"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
)

// ouiGz is the IEEE registry's MAC prefixes (MA-L, MA-M, MA-S, IAB) with
// their organisations, as written by scripts/update-oui: gzip of sorted
// lines "PREFIX\tOrganization", PREFIX 6, 7 or 9 upper-case hex digits.
//
//go:embed oui.txt.gz
var ouiGz []byte

// ouiList is the embedded list, decompressed on the first lookup (about
// 1.5 MB held from then on).
var ouiList = sync.OnceValue(func() *ouiTable { return parseOUI(ouiGz) })

// ouiTable is the decompressed list and where each line starts.
type ouiTable struct {
	text  string
	lines []uint32
}

func parseOUI(gz []byte) *ouiTable {
	t := &ouiTable{}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return t // a broken list (caught by the tests) names no vendor
	}
	b, err := io.ReadAll(io.LimitReader(zr, 8<<20))
	if err != nil {
		return t
	}
	t.text = string(b)
	for off := 0; off < len(t.text); {
		t.lines = append(t.lines, uint32(off))
		nl := strings.IndexByte(t.text[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	return t
}

// line returns the prefix and organisation of line i.
func (t *ouiTable) line(i int) (prefix, org string) {
	s := t.text[t.lines[i]:]
	if nl := strings.IndexByte(s, '\n'); nl >= 0 {
		s = s[:nl]
	}
	prefix, org, _ = strings.Cut(s, "\t")
	return prefix, org
}

func (t *ouiTable) lookup(prefix string) string {
	i := sort.Search(len(t.lines), func(i int) bool {
		p, _ := t.line(i)
		return p >= prefix
	})
	if i < len(t.lines) {
		if p, org := t.line(i); p == prefix {
			return org
		}
	}
	return ""
}

// Vendor returns the organisation the IEEE assigned mac's prefix to, e.g.
// "Dell Inc." for 00:14:22:01:02:03, the most specific assignment first
// (MA-S, then MA-M, then MA-L). mac may be written aa:bb:cc:dd:ee:ff,
// aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff or aabbccddeeff, in either case. It
// returns "locally administered" for a locally administered unicast
// address (random MACs of phones and virtual machines) and "" for a
// multicast address, an unknown prefix or anything that is not a MAC.
func Vendor(mac string) string {
	hw := parseMAC(mac)
	if hw == nil {
		return ""
	}
	switch {
	case hw[0]&0x01 != 0:
		return ""
	case hw[0]&0x02 != 0:
		return "locally administered"
	}
	h := strings.ToUpper(hex.EncodeToString(hw))
	t := ouiList()
	for _, n := range []int{9, 7, 6} {
		if org := t.lookup(h[:n]); org != "" {
			return org
		}
	}
	return ""
}

// parseMAC parses a 48-bit MAC in the usual notations; nil if it is not one.
func parseMAC(s string) net.HardwareAddr {
	s = strings.TrimSpace(s)
	if len(s) > 32 {
		return nil
	}
	if len(s) == 12 {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil
		}
		return b
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil
	}
	return hw
}
