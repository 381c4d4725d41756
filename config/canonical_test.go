package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/relaygate/relaygate/internal/testutil/lab"
)

var update = flag.Bool("update", false, "rewrite testdata/*.canonical.yaml")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("Marshal() mismatch with %s (-want +got):\n%s", path, diff)
	}
	return want
}

// TestCanonicalLab checks Marshal(Parse(x)) against the canonical form of
// the lab's configuration (scripts/lab-config.sh), which is the file a
// save from the UI or API writes, and that the canonical form is a fixed
// point: it parses to the same configuration and marshals to itself.
func TestCanonicalLab(t *testing.T) {
	for _, mode := range []Mode{Monitor, Enforce} {
		t.Run(string(mode), func(t *testing.T) {
			in := lab.Config(string(mode), "/var/lib/relaygate-lab", "")
			c, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse(lab config) = %v\n%s", err, in)
			}
			b, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			canon := golden(t, "lab-"+string(mode)+".canonical.yaml", b)
			again, err := Parse(canon)
			if err != nil {
				t.Fatalf("Parse(canonical) = %v", err)
			}
			if diff := cmp.Diff(c, again, netipOpts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse(canonical) mismatch with Parse(lab config) (-want +got):\n%s", diff)
			}
			b2, err := again.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(canon), string(b2)); diff != "" {
				t.Errorf("Marshal(Parse(canonical)) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCanonicalDefault checks Marshal(Default()) against its canonical
// form, and that decoding that form (without validation: Default has no
// interfaces) gives Default() back.
func TestCanonicalDefault(t *testing.T) {
	b, err := Default().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	canon := golden(t, "default.canonical.yaml", b)
	got, _, err := decode(canon)
	if err != nil {
		t.Fatalf("decode(canonical) = %v", err)
	}
	if diff := cmp.Diff(Default(), got, netipOpts, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decode(canonical) mismatch (-want +got):\n%s", diff)
	}
}

// TestValueMsgsKeys checks that every key in valueMsgs is a key of the
// schema whose value is typed (decoded through UnmarshalText), so that a
// renamed key cannot silently lose its wording.
func TestValueMsgsKeys(t *testing.T) {
	for key := range valueMsgs {
		typ := reflect.TypeFor[Config]()
		for _, part := range strings.Split(key, ".") {
			for typ.Kind() == reflect.Slice {
				typ = typ.Elem()
			}
			var next reflect.Type
			for i := 0; i < typ.NumField(); i++ {
				if name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ","); name == part {
					next = typ.Field(i).Type
				}
			}
			if next == nil {
				t.Fatalf("valueMsgs key %q: no key %q in %v", key, part, typ)
			}
			typ = next
		}
		for typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if !isText(typ) {
			t.Errorf("valueMsgs key %q is a %v, want a typed value", key, typ)
		}
	}
}
