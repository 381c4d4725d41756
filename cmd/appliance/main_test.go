package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/store"
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

// TestTokenCreateScopes: --scope and --expires are stored with the token;
// without them the token is admin and never expires, as before; bad
// values are refused with the flag named, and nothing is created.
func TestTokenCreateScopes(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	for _, args := range [][]string{
		{"--name", "old-script"},
		{"--name", "prometheus", "--scope", "metrics", "--expires", "90d"},
		{"--name", "grafana", "--scope=read", "--expires=12h"},
	} {
		if err := dispatch(ctx, append([]string{"token", "create", "--data-dir", dir}, args...), &strings.Builder{}, os.Stderr); err != nil {
			t.Fatalf("token create %q: %v", args, err)
		}
	}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--scope", "root"}, `--scope: unknown token scope "root"`},
		{[]string{"--scope", "Admin"}, `--scope: unknown token scope "Admin"`},
		{[]string{"--expires", "90"}, `--expires: token lifetime "90"`},
		{[]string{"--expires", "3m"}, `--expires: token lifetime "3m"`},
		{[]string{"--expires", "0d"}, `--expires: token lifetime "0d"`},
	} {
		var out strings.Builder
		err := dispatch(ctx, append([]string{"token", "create", "--data-dir", dir, "--name", "bad"}, tc.args...), &out, os.Stderr)
		if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || out.Len() != 0 {
			t.Errorf("token create %q = %v, printed %q; want an error starting %q and no token", tc.args, err, out.String(), tc.wantErr)
		}
	}
	st, err := store.Open(ctx, dir, store.Options{PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	toks, err := st.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ti := range toks {
		life := "never"
		if ti.Expires != nil {
			life = ti.Expires.Sub(ti.Created).String()
		}
		got = append(got, fmt.Sprintf("%s %s %s", ti.Name, ti.Scope, life))
	}
	want := []string{"old-script admin never", "prometheus metrics 2160h0m0s", "grafana read 12h0m0s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored tokens (-want +got):\n%s", diff)
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
