package webui

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/relaygate/relaygate/mgmtnet"
)

// networkHarness is a logged-in harness whose management addressing is a
// real management.conf in a temporary directory; the image's hook is a
// recorder (present: hook true).
func networkHarness(t *testing.T, hook bool) (*harness, *browser, *mgmtnet.File, *hookRecorder) {
	t.Helper()
	d, h := testDeps(t)
	dir := t.TempDir()
	rec := &hookRecorder{}
	f := &mgmtnet.File{Path: filepath.Join(dir, mgmtnet.FileName), Hook: filepath.Join(dir, "netconf"), Run: rec.run}
	if hook {
		if err := os.WriteFile(f.Hook, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.Network = f
	b := h.adminBrowser(t, d)
	return h, b, f, rec
}

type hookRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *hookRecorder) run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, strings.TrimSpace(filepath.Base(name)+" "+strings.Join(args, " ")))
	return nil, nil
}

func (r *hookRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func TestNetworkAPI(t *testing.T) {
	h, _, f, rec := networkHarness(t, true)
	if got := decode[mgmtnet.Settings](t, h.do(t, "GET", "/api/v1/system/network", bearer, "")); got != (mgmtnet.Settings{Mode: mgmtnet.DHCP}) {
		t.Errorf("GET before any change = %+v, want dhcp", got)
	}

	for _, tc := range []struct {
		name   string
		body   string
		fields []string // named in "fields"
	}{
		{"not JSON", `mode=static`, nil},
		{"unknown key", `{"mode": "static", "address": "192.0.2.10/24", "netmask": "255.255.255.0"}`, nil},
		{"unknown mode", `{"mode": "bootp"}`, []string{"mode"}},
		{"static without address", `{"mode": "static"}`, []string{"address"}},
		{"bad address", `{"mode": "static", "address": "192.0.2.300/24"}`, []string{"address"}},
		{"no prefix", `{"mode": "static", "address": "192.0.2.10"}`, []string{"address"}},
		{"gateway outside", `{"mode": "static", "address": "192.0.2.10/24", "gateway": "198.51.100.1"}`, []string{"gateway"}},
		{"bad dns", `{"mode": "static", "address": "192.0.2.10/24", "dns": "resolver"}`, []string{"dns"}},
		{"every field", `{"mode": "static", "address": "a", "gateway": "b", "dns": "c"}`, []string{"address", "gateway", "dns"}},
		{"dhcp with address", `{"mode": "dhcp", "address": "192.0.2.10/24"}`, []string{"address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(f.Path)
			auditBefore := len(h.auditActions(t))
			w := h.do(t, "PUT", "/api/v1/system/network", bearer, tc.body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("PUT %s = %d %s, want 400", tc.body, w.Code, w.Body)
			}
			body := decode[networkErrorBody](t, w)
			if body.Error == "" {
				t.Errorf("no error message: %s", w.Body)
			}
			for _, k := range tc.fields {
				if body.Fields[k] == "" || !strings.Contains(body.Error, k+": ") {
					t.Errorf("field %s not named: %s", k, w.Body)
				}
			}
			if len(body.Fields) != len(tc.fields) {
				t.Errorf("fields %v, want %v", body.Fields, tc.fields)
			}
			after, _ := os.ReadFile(f.Path)
			if string(before) != string(after) || rec.count() != 0 || len(h.auditActions(t)) != auditBefore {
				t.Errorf("a refused change saved, applied or audited: file %q, hook calls %d", after, rec.count())
			}
		})
	}

	w := h.do(t, "PUT", "/api/v1/system/network", bearer, `{"mode": "static", "address": "192.0.2.10/24", "gateway": "192.0.2.1", "dns": "192.0.2.53"}`)
	if w.Code != 200 {
		t.Fatalf("PUT static = %d %s", w.Code, w.Body)
	}
	res := decode[mgmtnet.Result](t, w)
	want := mgmtnet.Settings{Mode: mgmtnet.Static, Address: "192.0.2.10/24", Gateway: "192.0.2.1", DNS: "192.0.2.53"}
	if !res.Applied || res.Settings != want {
		t.Errorf("PUT static = %+v", res)
	}
	if got := decode[mgmtnet.Settings](t, h.do(t, "GET", "/api/v1/system/network", bearer, "")); got != want {
		t.Errorf("GET after PUT = %+v, want %+v", got, want)
	}
	b, _ := os.ReadFile(f.Path)
	if !strings.Contains(string(b), "mode=static\naddress=192.0.2.10/24\ngateway=192.0.2.1\ndns=192.0.2.53\n") {
		t.Errorf("management.conf:\n%s", b)
	}
	if e := h.auditLast(t); e.Action != "system.network" || !strings.Contains(e.Detail, "static 192.0.2.10/24 gateway 192.0.2.1 dns 192.0.2.53") || e.Actor != tokenActor(actorName) {
		t.Errorf("audit %+v", e)
	}
	if w := h.do(t, "PUT", "/api/v1/system/network", "", `{"mode": "dhcp"}`); w.Code != http.StatusUnauthorized {
		t.Errorf("PUT without a token = %d, want 401", w.Code)
	}

	// Without the image's hook the change is saved, and the answer says
	// where it applies.
	h2, _, _, _ := networkHarness(t, false)
	w = h2.do(t, "PUT", "/api/v1/system/network", bearer, `{"mode": "dhcp"}`)
	if res := decode[mgmtnet.Result](t, w); w.Code != 200 || res.Applied || !strings.Contains(res.Message, "appliance image") {
		t.Errorf("PUT without hook = %d %s", w.Code, w.Body)
	}

	// Without Network: 501.
	plain := newHarness(t)
	if w := plain.do(t, "GET", "/api/v1/system/network", bearer, ""); w.Code != http.StatusNotImplemented {
		t.Errorf("GET without Network = %d, want 501", w.Code)
	}
}

func TestNetworkForm(t *testing.T) {
	h, b, f, _ := networkHarness(t, true)
	w := b.do("GET", "/system", nil, nil)
	if body := w.Body.String(); w.Code != 200 || !strings.Contains(body, `id="network-form"`) || !strings.Contains(body, `value="dhcp" id="net-dhcp" checked`) {
		t.Fatalf("system page has no network form with DHCP chosen:\n%s", body)
	}
	// Without the CSRF token: refused, nothing saved.
	if w := b.do("POST", "/system/network", url.Values{"mode": {"static"}, "address": {"192.0.2.10/24"}}, nil); w.Code != http.StatusForbidden {
		t.Errorf("POST without CSRF = %d, want 403", w.Code)
	}
	if _, err := os.Stat(f.Path); err == nil {
		t.Errorf("management.conf written by a request without CSRF token")
	}
	// Invalid: the form comes back with the entered values and per-field
	// errors, nothing saved.
	w = b.post("/system/network", url.Values{"mode": {"static"}, "address": {"192.0.2.10"}, "gateway": {"10.9.9.9"}, "dns": {""}})
	body := w.Body.String()
	if w.Code != 400 || !strings.Contains(body, `id="net-address-error"`) || !strings.Contains(body, `value="192.0.2.10"`) ||
		!strings.Contains(body, `value="static" id="net-static" checked`) {
		t.Errorf("invalid form = %d:\n%s", w.Code, body)
	}
	if _, err := os.Stat(f.Path); err == nil {
		t.Errorf("management.conf written for invalid settings")
	}
	// Valid static, then back to DHCP (static fields left in the form are ignored).
	w = b.post("/system/network", url.Values{"mode": {"static"}, "address": {"192.0.2.10/24"}, "gateway": {"192.0.2.1"}, "dns": {"192.0.2.53"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/system?network=applied" {
		t.Fatalf("valid form = %d %s", w.Code, w.Header().Get("Location"))
	}
	if got, _ := f.Load(); got.Mode != mgmtnet.Static || got.Address != "192.0.2.10/24" {
		t.Errorf("saved %+v", got)
	}
	w = b.do("GET", "/system?network=applied", nil, nil)
	if body := w.Body.String(); !strings.Contains(body, `value="192.0.2.10/24"`) || !strings.Contains(body, "changes to it in a moment") {
		t.Errorf("system page after the change lacks the address or notice")
	}
	w = b.post("/system/network", url.Values{"mode": {"dhcp"}, "address": {"192.0.2.10/24"}, "gateway": {"192.0.2.1"}})
	if w.Code != http.StatusSeeOther {
		t.Errorf("back to DHCP = %d %s", w.Code, w.Body)
	}
	if got, _ := f.Load(); got != (mgmtnet.Settings{Mode: mgmtnet.DHCP}) {
		t.Errorf("saved %+v, want dhcp", got)
	}
	if got := strings.Join(h.auditActions(t), ","); strings.Count(got, "system.network") != 2 {
		t.Errorf("audit actions %s, want two system.network", got)
	}
	// Japanese page.
	b.lang = "ja"
	if w := b.do("GET", "/system", nil, nil); !strings.Contains(w.Body.String(), "管理アドレス") {
		t.Errorf("Japanese system page lacks the network form's title")
	}
}
