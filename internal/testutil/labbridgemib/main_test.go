package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeSys writes a sysfs network directory with bridge acc0 (ports p1,
// ifIndex 2, bridge port 1, alias "3F room 12"; p2, ifIndex 3, bridge
// port 2) whose forwarding table has a learnt MAC on port 1 and p2's own
// MAC on port 2.
func fakeSys(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("acc0/address", "02:00:00:00:00:aa\n")
	write("acc0/ifindex", "4\n")
	write("acc0/ifalias", "\n")
	write("acc0/brif/p1/port_no", "0x1\n")
	write("acc0/brif/p2/port_no", "0x2\n")
	write("p1/ifindex", "2\n")
	write("p1/ifalias", "3F room 12\n")
	write("p2/ifindex", "3\n")
	write("p2/ifalias", "\n")
	fdb := []byte{
		0x00, 0x14, 0x22, 0x20, 0x00, 0x50, 1, 0, 10, 0, 0, 0, 0, 0, 0, 0, // learnt on port 1
		0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, // p2's own
	}
	write("acc0/brforward", string(fdb))
	return dir
}

// TestServe walks the fake bridge through the pass_persist protocol as
// snmpd does.
func TestServe(t *testing.T) {
	sys := fakeSys(t)
	for _, tc := range []struct {
		name string
		load func() ([]varbind, error)
		in   string
		want string
	}{
		{
			name: "bridge",
			load: func() ([]varbind, error) { return bridgeMIB(sys, "acc0") },
			in: "PING\n" +
				"get\n.1.3.6.1.2.1.17.1.1.0\n" +
				"getnext\n.1.3.6.1.2.1.17.1.4.1.2\n" +
				"getnext\n.1.3.6.1.2.1.17.1.4.1.2.1\n" +
				"get\n.1.3.6.1.2.1.17.4.3.1.2.0.20.34.32.0.80\n" +
				"get\n.1.3.6.1.2.1.17.4.3.1.3.2.0.0.0.0.2\n" +
				"get\n.1.3.6.1.2.1.17.7.1.2.2.1.2.1.0.20.34.32.0.80\n" +
				"getnext\n.1.3.6.1.2.1.17.7.1.4.2.1.3.0.1\n" +
				"set\n.1.3.6.1.2.1.17.1.3.0\ninteger 1\n",
			want: "PONG\n" +
				".1.3.6.1.2.1.17.1.1.0\noctet\n02 00 00 00 00 AA\n" +
				".1.3.6.1.2.1.17.1.4.1.2.1\ninteger\n2\n" +
				".1.3.6.1.2.1.17.1.4.1.2.2\ninteger\n3\n" +
				".1.3.6.1.2.1.17.4.3.1.2.0.20.34.32.0.80\ninteger\n1\n" +
				".1.3.6.1.2.1.17.4.3.1.3.2.0.0.0.0.2\ninteger\n4\n" +
				".1.3.6.1.2.1.17.7.1.2.2.1.2.1.0.20.34.32.0.80\ninteger\n1\n" +
				"NONE\n" +
				"not-writable\n",
		},
		{
			name: "ifalias",
			load: func() ([]varbind, error) { return ifAliases(sys) },
			in:   "getnext\n.1.3.6.1.2.1.31.1.1.1.18\ngetnext\n.1.3.6.1.2.1.31.1.1.1.18.2\nget\n.1.3.6.1.2.1.31.1.1.1.18.9\n",
			want: ".1.3.6.1.2.1.31.1.1.1.18.2\nstring\n3F room 12\n" +
				".1.3.6.1.2.1.31.1.1.1.18.3\nstring\n\n" +
				"NONE\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			if err := serve(strings.NewReader(tc.in), &out, tc.load); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("serve (-want +got):\n%s", diff)
			}
		})
	}
}
