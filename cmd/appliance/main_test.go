package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("mode: monitor\ninterfaces: {inside: eth1, outside: eth2, management: eth0}\ndata_dir: "+dir+"\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("mode: enforce\ninterfaces: {inside: eth1, outside: eth2, management: eth0}\nrelays:\n  - {name: r, address: 10.1.1.1/40}\n"), 0o600)

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // substring; "usage" for errUsage
		wantOut string
	}{
		{"no args", nil, "usage", ""},
		{"unknown", []string{"frobnicate"}, "usage", ""},
		{"version", []string{"version"}, "", "relaygate dev"},
		{"check good", []string{"check-config", "--config", good}, "", "ok (mode monitor, 0 relays)"},
		{"check bad", []string{"check-config", "--config", bad}, "line 4: relays[0].address: invalid CIDR", ""},
		{"check missing", []string{"check-config", "--config", filepath.Join(dir, "nope.yaml")}, "no such file", ""},
		{"bad flag", []string{"check-config", "--nope"}, "usage", ""},
		{"token without create", []string{"token"}, "usage", ""},
		{"run bad config", []string{"run", "--config", bad}, "relays[0].address", ""},
		{"run bad log format", []string{"run", "--config", good, "--log-format", "xml"}, "--log-format", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := dispatch(context.Background(), tc.args, &out, &errOut)
			switch {
			case tc.wantErr == "usage":
				if !errors.Is(err, errUsage) {
					t.Fatalf("dispatch(%q) = %v; want a usage error", tc.args, err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("dispatch(%q) = %v; want one line containing %q", tc.args, err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("dispatch(%q) = %v", tc.args, err)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("dispatch(%q) printed %q; want %q", tc.args, out.String(), tc.wantOut)
			}
		})
	}
}

func TestTokenCreate(t *testing.T) {
	dir := t.TempDir()
	var a, b bytes.Buffer
	for _, out := range []*bytes.Buffer{&a, &b} {
		if err := dispatch(context.Background(), []string{"token", "create", "--data-dir", dir, "--name", "ci"}, out, os.Stderr); err != nil {
			t.Fatal(err)
		}
	}
	ta, tb := strings.TrimSpace(a.String()), strings.TrimSpace(b.String())
	if !strings.HasPrefix(ta, "rg_") || ta == tb || strings.Contains(ta, "\n") {
		t.Errorf("tokens %q, %q: want two different single-line rg_ tokens", ta, tb)
	}
	db, err := os.ReadFile(filepath.Join(dir, "relaygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(ta)) {
		t.Errorf("the token is stored in clear in the database")
	}
}

func TestInfoCommand(t *testing.T) {
	var out strings.Builder
	cfg := filepath.Join(t.TempDir(), "missing.yaml")
	if err := dispatch(t.Context(), []string{"info", "--config", cfg}, &out, os.Stderr); err != nil {
		t.Fatalf("info with a missing configuration: %v; want success (it never fails a boot)", err)
	}
	for _, want := range []string{"\nCONFIG_ERROR='read config: open " + cfg, "\nBRIDGE='br0'\n", "\nMANAGEMENT=''\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("info printed\n%s\nwant a line with %q", out.String(), want)
		}
	}
}

func TestBootCommandsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"init-config"},
		{"init-config", "--config", "x.yaml"},
		{"info", "extra"},
		{"health", "--timeout", "soon"},
	} {
		if err := dispatch(t.Context(), args, &strings.Builder{}, &strings.Builder{}); !errors.Is(err, errUsage) {
			t.Errorf("dispatch(%q) = %v; want a usage error", args, err)
		}
	}
}
