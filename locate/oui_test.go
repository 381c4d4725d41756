package locate

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

func TestVendor(t *testing.T) {
	tests := []struct {
		mac, want string
	}{
		{"00:00:0c:12:34:56", "Cisco Systems, Inc"},
		{"00:14:22:01:02:03", "Dell Inc."},
		{"3c:fd:fe:aa:bb:cc", "Intel Corporate"},
		{"3C:FD:FE:AA:BB:CC", "Intel Corporate"},
		{"3c-fd-fe-aa-bb-cc", "Intel Corporate"},
		{"3cfd.feaa.bbcc", "Intel Corporate"},
		{"3cfdfeaabbcc", "Intel Corporate"},
		{" 00:14:22:01:02:03 ", "Dell Inc."},
		{"00:0c:29:01:02:03", "VMware, Inc."},
		// MA-M (28-bit) and MA-S (36-bit) assignments inside a
		// registry-owned MA-L block win over the block's owner.
		{"74:1a:e0:90:00:01", "Private"},
		{"70:b3:d5:f2:f0:01", "TELEPLATFORMS"},
		// Locally administered (52:54:00 is QEMU's default) and multicast.
		{"52:54:00:12:34:56", "locally administered"},
		{"02:00:00:00:00:01", "locally administered"},
		{"01:80:c2:00:00:0e", ""},
		{"ff:ff:ff:ff:ff:ff", ""},
		{"01:00:0c:cc:cc:cc", ""},
		// Unknown (unassigned) and garbage.
		{"fc:ff:ff:00:00:01", ""},
		{"", ""},
		{"not a mac", ""},
		{"00:14:22", ""},
		{"00:14:22:01:02:03:04:05", ""},
		{"0014220102zz", ""},
		{"00:14:22:01:02:03" + strings.Repeat("0", 100), ""},
		{"00:00:5e:00:53:01:", ""},
	}
	for _, tt := range tests {
		if got := Vendor(tt.mac); got != tt.want {
			t.Errorf("Vendor(%q) = %q, want %q", tt.mac, got, tt.want)
		}
	}
}

// TestOUIListShape pins the embedded list's form: sorted, unique, valid
// prefixes, small enough to embed.
func TestOUIListShape(t *testing.T) {
	if len(ouiGz) > 1<<20 {
		t.Errorf("oui.txt.gz is %d bytes, want < 1 MiB", len(ouiGz))
	}
	tab := ouiList()
	if len(tab.lines) < 30000 {
		t.Fatalf("%d prefixes in the embedded list, want the IEEE registry (> 30000)", len(tab.lines))
	}
	prev := ""
	for i := range tab.lines {
		p, org := tab.line(i)
		if n := len(p); n != 6 && n != 7 && n != 9 || strings.ToUpper(p) != p || org == "" {
			t.Fatalf("line %d: %q %q: want PREFIX\\tOrganization", i, p, org)
		}
		if p <= prev {
			t.Fatalf("line %d: %q after %q: not sorted and unique", i, p, prev)
		}
		prev = p
	}
}

func TestParseOUIBroken(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("AABBCC\tSome Vendor\nAABBCD\tOther"))
	zw.Close()
	tab := parseOUI(buf.Bytes())
	if got := tab.lookup("AABBCD"); got != "Other" {
		t.Errorf("lookup(AABBCD) without a final newline = %q, want Other", got)
	}
	if got := parseOUI([]byte("garbage")); len(got.lines) != 0 || got.lookup("AABBCC") != "" {
		t.Errorf("parseOUI(garbage) = %d lines, want none", len(got.lines))
	}
}
