package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	old := Default()
	old.Locate.Switches = []Switch{{Name: "core", Address: "10.0.0.1", Version: "2c", Community: "old-community"}}
	nu := Default()
	nu.Mode = Enforce
	nu.Ports = []int{25, 587}
	nu.Relays = []Relay{{Name: "mail-relay", Address: MustParsePrefix("10.10.0.25/32"), TLS: TLSPassthrough}}
	nu.Locate.Switches = []Switch{{Name: "core", Address: "10.0.0.1", Version: "2c", Community: "new-community"}}
	got, err := Diff(old, nu)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Key: "locate.switches[0].community", Old: SecretMask, New: SecretMask},
		{Key: "mode", Old: string(old.Mode), New: "enforce"},
		{Key: "ports", Old: "[25]", New: "[25, 587]"},
		{Key: "relays", Old: "[]"},
		{Key: "relays[0].address", New: "10.10.0.25/32"},
		{Key: "relays[0].name", New: "mail-relay"},
		{Key: "relays[0].tls", New: "passthrough"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
	s := DiffSummary(got, 1000)
	for _, secret := range []string{"old-community", "new-community"} {
		if strings.Contains(s, secret) {
			t.Errorf("DiffSummary = %q, shows the secret %q", s, secret)
		}
	}
	if !strings.Contains(s, "mode: monitor -> enforce") {
		t.Errorf("DiffSummary = %q, want the mode change", s)
	}
	if s := DiffSummary(got, 60); !strings.HasSuffix(s, "and 6 more") {
		t.Errorf("DiffSummary(60 bytes) = %q, want it cut with the count left out", s)
	}
	if got, err := Diff(nu, nu); err != nil || len(got) != 0 {
		t.Errorf("Diff(c, c) = %v, %v; want no change", got, err)
	}
}
