package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// TestTokenScopesLab runs the daemon and calls its HTTPS API from the
// admin host with tokens made by `appliance token create --scope`: the
// metrics token reads /metrics and nothing else, the read token reads and
// changes nothing, no token creates tokens, and the audit log names the
// token that acted.
func TestTokenScopesLab(t *testing.T) {
	a := startAppliance(t, "monitor", "")
	ctx := context.Background()
	withToken := func(args ...string) *lab.Appliance {
		t.Helper()
		out, err := exec.Command(filepath.Join(theLab.Bin, "appliance"),
			append([]string{"token", "create", "--data-dir", a.DataDir}, args...)...).Output()
		if err != nil {
			t.Fatalf("appliance token create %q: %v", args, err)
		}
		b := *a
		b.Token = strings.TrimSpace(string(out))
		return &b
	}
	metrics := withToken("--name", "prometheus", "--scope", "metrics", "--expires", "90d")
	read := withToken("--name", "grafana", "--scope", "read")

	call := func(who *lab.Appliance, method, path, body string) (int, map[string]any) {
		t.Helper()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		code, resp, err := who.APIRaw(ctx, method, path, b)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		var m map[string]any
		json.Unmarshal(resp, &m)
		return code, m
	}
	for _, tc := range []struct {
		who          *lab.Appliance
		name         string
		method, path string
		body         string
		code         int
		scope        string // scope_required of a 403
	}{
		{metrics, "metrics", "GET", "/metrics", "", 200, ""},
		{metrics, "metrics", "GET", "/api/v1/status", "", 403, "read"},
		{metrics, "metrics", "GET", "/api/v1/tokens", "", 403, "read"},
		{metrics, "metrics", "PUT", "/api/v1/config", `{"mode": "enforce"}`, 403, "admin"},
		{metrics, "metrics", "POST", "/api/v1/tokens", `{"name": "backdoor"}`, 403, "admin"},
		{read, "read", "GET", "/metrics", "", 200, ""},
		{read, "read", "GET", "/api/v1/status", "", 200, ""},
		{read, "read", "PUT", "/api/v1/config", `{"mode": "enforce"}`, 403, "admin"},
		{read, "read", "POST", "/api/v1/system/update?sha256=00", "bundle", 403, "admin"},
		{read, "read", "POST", "/api/v1/system/certificate", `{}`, 403, "admin"},
		{read, "read", "DELETE", "/api/v1/tokens/1", "", 403, "admin"},
		{a, "admin", "POST", "/api/v1/tokens", `{"name": "backdoor", "password": "x"}`, 403, ""},
	} {
		code, body := call(tc.who, tc.method, tc.path, tc.body)
		if code != tc.code {
			t.Errorf("%s token: %s %s = %d %v, want %d", tc.name, tc.method, tc.path, code, body, tc.code)
			continue
		}
		if tc.scope != "" && body["scope_required"] != tc.scope {
			t.Errorf("%s token: %s %s: %v, want scope_required %q", tc.name, tc.method, tc.path, body, tc.scope)
		}
	}
	if st := status(t, a); st.DataPath != "watching" {
		t.Errorf("data_path %q after refused changes, want watching (still monitor)", st.DataPath)
	}

	var toks struct {
		Tokens []struct {
			Name    string  `json:"name"`
			Scope   string  `json:"scope"`
			Expires *string `json:"expires"`
		} `json:"tokens"`
	}
	if err := read.API(ctx, "GET", "/api/v1/tokens", nil, &toks); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks.Tokens {
		got = append(got, tk.Name+" "+tk.Scope+" "+map[bool]string{true: "expires", false: "never"}[tk.Expires != nil])
	}
	if want := "lab admin never,prometheus metrics expires,grafana read never"; strings.Join(got, ",") != want {
		t.Errorf("tokens %q, want %q (no backdoor)", got, want)
	}

	// The admin token acts; the audit log says which token.
	if code, _, err := a.APIRaw(ctx, "GET", "/api/v1/config/backup", nil); err != nil || code != 200 {
		t.Fatalf("GET /api/v1/config/backup = %d, %v", code, err)
	}
	var audit struct {
		Entries []struct{ Actor, Action string } `json:"entries"`
	}
	if err := read.API(ctx, "GET", "/api/v1/audit?limit=1", nil, &audit); err != nil {
		t.Fatal(err)
	}
	if len(audit.Entries) != 1 || audit.Entries[0].Actor != "token:lab" || audit.Entries[0].Action != "config.backup" {
		t.Errorf("newest audit entry %+v, want config.backup by token:lab", audit.Entries)
	}
}
