package mgmtnet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Settings
		bad  []string // fields named in FieldErrors
	}{
		{"dhcp", Settings{Mode: DHCP}, nil},
		{"static", Settings{Mode: Static, Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: "192.0.2.53"}, nil},
		{"static address only", Settings{Mode: Static, Address: "192.0.2.10/24"}, nil},
		{"static /32 no gateway", Settings{Mode: Static, Address: "192.0.2.10/32"}, nil},
		{"static v6", Settings{Mode: Static, Address: "2001:db8::10/64", Gateway: "fe80::1", DNS: "2001:db8::53"}, nil},
		{"empty mode", Settings{}, []string{"mode"}},
		{"unknown mode", Settings{Mode: "auto"}, []string{"mode"}},
		{"dhcp with address", Settings{Mode: DHCP, Address: "192.0.2.10/24", DNS: "192.0.2.53"}, []string{"address", "dns"}},
		{"static without address", Settings{Mode: Static}, []string{"address"}},
		{"no prefix length", Settings{Mode: Static, Address: "192.0.2.10"}, []string{"address"}},
		{"not an address", Settings{Mode: Static, Address: "mgmt.example/24"}, []string{"address"}},
		{"network address", Settings{Mode: Static, Address: "192.0.2.0/24"}, []string{"address"}},
		{"broadcast address", Settings{Mode: Static, Address: "192.0.2.255/24"}, []string{"address"}},
		{"loopback", Settings{Mode: Static, Address: "127.0.0.2/8"}, []string{"address"}},
		{"slash zero", Settings{Mode: Static, Address: "192.0.2.10/0"}, []string{"address"}},
		{"gateway outside", Settings{Mode: Static, Address: "192.0.2.10/24", Gateway: "198.51.100.1"}, []string{"gateway"}},
		{"gateway is self", Settings{Mode: Static, Address: "192.0.2.10/24", Gateway: "192.0.2.10"}, []string{"gateway"}},
		{"gateway family", Settings{Mode: Static, Address: "192.0.2.10/24", Gateway: "2001:db8::1"}, []string{"gateway"}},
		{"gateway garbage", Settings{Mode: Static, Address: "192.0.2.10/24", Gateway: "router"}, []string{"gateway"}},
		{"dns garbage", Settings{Mode: Static, Address: "192.0.2.10/24", DNS: "8.8.8"}, []string{"dns"}},
		{"all bad", Settings{Mode: Static, Address: "x", Gateway: "y", DNS: "z"}, []string{"address", "dns", "gateway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			var got []string
			var fe FieldErrors
			if errors.As(err, &fe) {
				for k := range fe {
					got = append(got, k)
				}
				sort.Strings(got)
			} else if err != nil {
				t.Fatalf("Validate() = %v, not FieldErrors", err)
			}
			if diff := cmp.Diff(tc.bad, got); diff != "" {
				t.Errorf("Validate(%+v) bad fields (-want +got):\n%s\nerror: %v", tc.in, diff, err)
			}
		})
	}
}

func TestParseMarshal(t *testing.T) {
	for _, s := range []Settings{
		{Mode: DHCP},
		{Mode: Static, Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: "192.0.2.53"},
		{Mode: Static, Address: "192.0.2.10/24"},
	} {
		if got := Parse(s.Marshal()); got != s {
			t.Errorf("Parse(Marshal(%+v)) = %+v", s, got)
		}
	}
	// As the first boot and the console write it; the last line wins, as in
	// the image's shell (sed | tail -n1).
	console := "# Management address: mode=dhcp, or mode=static with address=CIDR gateway=IP dns=IP\nmode=dhcp\n"
	if got := Parse([]byte(console)); got != (Settings{Mode: DHCP}) {
		t.Errorf("Parse(first boot file) = %+v", got)
	}
	if got := Parse([]byte("mode=static\naddress=10.0.0.2/8\naddress=10.0.0.3/8\ngateway=\ndns=\n")); got != (Settings{Mode: Static, Address: "10.0.0.3/8"}) {
		t.Errorf("Parse(two addresses) = %+v", got)
	}
}

type hookCalls struct {
	mu    sync.Mutex
	calls []string
	fail  bool
}

func (h *hookCalls) run(_ context.Context, name string, args ...string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, strings.TrimSpace(filepath.Base(name)+" "+strings.Join(args, " ")))
	if h.fail {
		return []byte("bad"), errors.New("exit status 1")
	}
	return nil, nil
}

func (h *hookCalls) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func TestSave(t *testing.T) {
	dir := t.TempDir()
	hook := filepath.Join(dir, "netconf")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := &hookCalls{}
	f := &File{Path: filepath.Join(dir, FileName), Hook: hook, Run: h.run}
	ctx := context.Background()

	if got, err := f.Load(); err != nil || got != (Settings{Mode: DHCP}) {
		t.Fatalf("Load() of a missing file = %+v, %v; want dhcp", got, err)
	}
	static := Settings{Mode: " Static ", Address: " 192.0.2.10/24", Gateway: "192.0.2.1"}
	res, err := f.Save(ctx, static)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{Mode: Static, Address: "192.0.2.10/24", Gateway: "192.0.2.1"}
	if !res.Applied || res.Settings != want {
		t.Errorf("Save() = %+v", res)
	}
	if got, _ := f.Load(); got != want {
		t.Errorf("Load() after Save = %+v, want %+v", got, want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.get()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff([]string{"netconf", "netconf apply"}, h.get()); diff != "" {
		t.Errorf("hook calls (-want +got):\n%s", diff)
	}

	// Invalid: nothing written, nothing run.
	before, _ := os.ReadFile(f.Path)
	if _, err := f.Save(ctx, Settings{Mode: Static, Address: "192.0.2.300/24"}); err == nil {
		t.Fatal("Save(invalid) succeeded")
	}
	after, _ := os.ReadFile(f.Path)
	if string(before) != string(after) || len(h.get()) != 2 {
		t.Errorf("invalid settings changed the file or ran the hook: %q, calls %v", after, h.get())
	}

	// Unchanged: saved, not applied again.
	if res, err := f.Save(ctx, want); err != nil || !strings.Contains(res.Message, "unchanged") || len(h.get()) != 2 {
		t.Errorf("Save(unchanged) = %+v, %v; calls %v", res, err, h.get())
	}

	// A failing hook is reported.
	h.fail = true
	if _, err := f.Save(ctx, Settings{Mode: DHCP}); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("Save with a failing hook = %v", err)
	}

	// Without the hook (not the appliance image): saved, and said so.
	f2 := &File{Path: filepath.Join(dir, "other.conf"), Hook: filepath.Join(dir, "missing"), Run: h.run}
	res, err = f2.Save(ctx, Settings{Mode: DHCP})
	if err != nil || res.Applied || !strings.Contains(res.Message, "appliance image") {
		t.Errorf("Save without hook = %+v, %v", res, err)
	}
	if got, _ := f2.Load(); got != (Settings{Mode: DHCP}) {
		t.Errorf("Load() = %+v", got)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}
