package webui

import (
	"context"
	"io"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/internal/testutil/headless"
)

// stepTimeout bounds one step of the browser test.
const stepTimeout = 15 * time.Second

// browserEnv is a headless Chromium against the real router over TLS.
type browserEnv struct {
	console func() []string // CSP violations and script errors the page logged
	t       *testing.T
	ctx     context.Context
	url     string
	shots   string
	h       *harness
	dataDir string
}

func newBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	headless.SkipWithout(t)
	d, h := testDeps(t)
	now := time.Now()
	fillLab(t, h, now)
	dataDir := t.TempDir()
	h.config.cur.DataDir = dataDir
	h.config.cur.Mode = config.Monitor
	d.Evidence = &fakeEvidence{addrs: map[netip.Addr]bool{netip.MustParseAddr("10.20.0.50"): true}}
	h.store.addLabInventory(t, now)
	d.Inventory = h.store
	d.Logger = nil // the browser's requests would flood the test log
	h.router = NewRouter(d)
	srv := httptest.NewTLSServer(h.router)
	t.Cleanup(srv.Close)

	shots := os.Getenv("RELAYGATE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	// The CSP allows only the appliance's own assets: any violation, or a
	// script error, is a bug.
	ctx, console := headless.Start(t, 100*time.Second)
	e := &browserEnv{t: t, ctx: ctx, console: console, url: srv.URL, shots: shots, h: h, dataDir: dataDir}
	return e
}

func (e *browserEnv) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		e.shot("failure-" + strings.ReplaceAll(what, " ", "-"))
		e.t.Fatalf("%s: %v", what, err)
	}
}

func (e *browserEnv) text(sel string) string {
	e.t.Helper()
	s, err := chromedp.Run(e.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		e.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// shot saves a full-page PNG screenshot as name.png.
func (e *browserEnv) shot(name string) string {
	e.t.Helper()
	png, err := chromedp.Run(e.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		e.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(e.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		e.t.Errorf("save screenshot: %v", err)
	}
	return p
}

// publish copies a screenshot to docs/screenshots when
// RELAYGATE_UPDATE_SCREENSHOTS=1 (run once to refresh the screenshots in docs/webui.md).
func (e *browserEnv) publish(src, name string) {
	if os.Getenv("RELAYGATE_UPDATE_SCREENSHOTS") != "1" || src == "" {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		e.t.Fatal(err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// TestBrowser walks a new administrator from first start to enforce mode
// in headless Chromium: setup with the token, a relay added, the
// dashboard's charts drawn from lab data, login, hosts, events, the mode
// switch with its list of hosts, backup and restore.
func TestBrowser(t *testing.T) {
	e := newBrowserEnv(t)
	d := Deps{Admins: e.h.store, Logger: nil}
	token, err := PrepareSetup(e.ctx, d, e.dataDir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	CSS := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	// First start: every page leads to setup.
	e.do("open setup", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(CSS(`input[name=token]`)))
	e.do("fill setup",
		chromedp.SendKeys(CSS(`input[name=token]`), token),
		chromedp.SetValue(CSS(`input[name=username]`), "admin"),
		chromedp.SendKeys(CSS(`input[name=password]`), "short"),
		chromedp.SendKeys(CSS(`input[name=password2]`), "short"),
		chromedp.SetAttributeValue(CSS(`input[name=password]`), "minlength", "0"),
	)
	e.shot("01-setup")
	// A weak password is refused with a message next to the field.
	e.do("submit weak setup", chromedp.Click(CSS(`button[type=submit].primary`)), chromedp.WaitVisible(CSS(`.field-error`)))
	if got := e.text(`.field-error`); !strings.Contains(got, "Too short") {
		t.Errorf("setup with a short password: field error %q", got)
	}
	e.shot("02-setup-weak-password")
	e.do("fill setup again",
		chromedp.SendKeys(CSS(`input[name=token]`), token),
		chromedp.SendKeys(CSS(`input[name=password]`), adminPass),
		chromedp.SendKeys(CSS(`input[name=password2]`), adminPass),
		chromedp.Click(CSS(`button[type=submit].primary`)),
		chromedp.WaitVisible(CSS(`#add-relay-button`)),
	)
	if _, err := os.Stat(filepath.Join(e.dataDir, SetupTokenFile)); !os.IsNotExist(err) {
		t.Errorf("setup token file still there after setup: %v", err)
	}

	// Add a relay: an invalid address first, then a valid one.
	e.do("add invalid relay",
		chromedp.SendKeys(CSS(`#new-name`), "crm-relay"),
		chromedp.SendKeys(CSS(`#new-address`), "10.10.0.300/32"),
		chromedp.Click(CSS(`#add-relay-button`)),
		chromedp.WaitVisible(CSS(`#new-address-error`)),
	)
	if got := e.text(`#new-address-error`); !strings.Contains(got, "invalid CIDR") {
		t.Errorf("invalid relay address: field error %q, want invalid CIDR", got)
	}
	if n := len(e.h.config.Current().Relays); n != 1 {
		t.Errorf("%d relays after an invalid add, want 1", n)
	}
	e.shot("03-policy-invalid-relay")
	e.do("add relay",
		chromedp.SetValue(CSS(`#new-address`), "10.10.0.26/32"),
		chromedp.Click(CSS(`#add-relay-button`)),
		chromedp.WaitVisible(CSS(`.alert.ok`)),
	)
	if rs := e.h.config.Current().Relays; len(rs) != 2 || rs[1].Name != "crm-relay" || rs[1].Address.String() != "10.10.0.26/32" {
		t.Errorf("relays after add = %+v", rs)
	}
	e.shot("04-policy")

	// Log out and in again.
	e.do("log out", chromedp.Click(CSS(`button.link`)), chromedp.WaitVisible(CSS(`input[name=username]`)))
	e.shot("05-login")
	e.do("log in",
		chromedp.SendKeys(CSS(`input[name=username]`), "admin"),
		chromedp.SendKeys(CSS(`input[name=password]`), adminPass),
		chromedp.Click(CSS(`button[type=submit]`)),
		chromedp.WaitVisible(CSS(`#chart-relayed canvas`)),
	)
	// The charts are drawn from the series and refreshed by polling.
	total, err := chromedp.Run(e.ctx, chromedp.Poll[string](
		`document.getElementById('chart-relayed').getAttribute('data-total') > 0 && document.getElementById('chart-relayed').getAttribute('data-total')`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || total == "" {
		t.Errorf("relayed chart total = %q, %v, want > 0", total, err)
	}
	if n, _ := chromedp.Run(e.ctx, chromedp.Evaluate[int](`document.querySelectorAll('canvas').length`)); n < 3 {
		t.Errorf("%d chart canvases, want 3", n)
	}
	if _, err := chromedp.Run(e.ctx, chromedp.Poll[bool](`document.body.getAttribute('data-dashboard-updated') !== null`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("dashboard never refreshed itself: %v", err)
	}
	if got := e.text(`#top-hosts`); !strings.Contains(got, "10.20.0.50") {
		t.Errorf("top hosts = %q, want 10.20.0.50", got)
	}
	e.publish(e.shot("06-dashboard"), "dashboard.png")
	// The range buttons redraw the charts over 24 hours without a reload.
	e.do("24 h range", chromedp.Click(CSS(`.range button[data-minutes="1440"]`)))
	if _, err := chromedp.Run(e.ctx, chromedp.Poll[bool](
		`document.getElementById('chart-blocked').getAttribute('data-points') === '1440'`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("24 h range: chart not redrawn with 1440 minutes: %v", err)
	}

	e.do("hosts", chromedp.Navigate(e.url+"/hosts?sort=blocked"), chromedp.WaitVisible(CSS(`table.sortable`)))
	e.shot("07-hosts")
	e.do("host", chromedp.Navigate(e.url+"/hosts/10.20.0.50"), chromedp.WaitVisible(CSS(`#pcap`)))
	if got := e.text(`main`); !strings.Contains(got, "victim1@remote.example") {
		t.Errorf("host page lacks the envelope's recipient")
	}
	e.publish(e.shot("08-host"), "host.png")
	e.do("events", chromedp.Navigate(e.url+"/events?kind=blocked"), chromedp.WaitVisible(CSS(`form.filters`)))
	e.shot("09-events")

	// Switch to enforce: the confirmation lists who would be blocked.
	e.do("mode preview", chromedp.Navigate(e.url+"/policy"), chromedp.Click(CSS(`#switch-mode`)), chromedp.WaitVisible(CSS(`#preview`)))
	preview := e.text(`#preview`)
	for _, want := range []string{"10.20.0.50", "10.30.0.80"} {
		if !strings.Contains(preview, want) {
			t.Errorf("mode preview lacks %s: %q", want, preview)
		}
	}
	if strings.Contains(preview, "10.10.0.25") {
		t.Errorf("mode preview lists the relay: %q", preview)
	}
	e.shot("10-mode-confirm")
	e.do("switch mode", chromedp.Click(CSS(`#confirm-mode`)), chromedp.WaitVisible(CSS(`.alert.ok`)))
	if m := e.h.config.Current().Mode; m != config.Enforce {
		t.Errorf("mode after switch = %s, want enforce", m)
	}
	if got := e.text(`#current-mode`); got != "enforce" {
		t.Errorf("policy page shows mode %q, want enforce", got)
	}

	// Backup, change, restore.
	e.do("system", chromedp.Navigate(e.url+"/system"), chromedp.WaitVisible(CSS(`#backup`)))
	yaml, err := chromedp.Run(e.ctx, chromedp.Evaluate[string](
		`fetch(document.getElementById('backup').href, {credentials: 'same-origin'}).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil || !strings.Contains(yaml, "crm-relay") {
		t.Fatalf("backup = %q, %v, want YAML with crm-relay", yaml, err)
	}
	bad := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(bad, []byte(strings.Replace(yaml, "mode: enforce", "mode: block", 1)), 0o600)
	e.do("restore broken", chromedp.SetUploadFiles(CSS(`#restore-file`), []string{bad}),
		chromedp.Click(CSS(`#restore-button`)), chromedp.WaitVisible(CSS(`#restore-error`)))
	if got := e.text(`#restore-error`); !strings.Contains(got, "mode: unknown mode") {
		t.Errorf("broken restore: error %q", got)
	}
	if m := e.h.config.Current().Mode; m != config.Enforce {
		t.Errorf("mode after a broken restore = %s, want enforce (unchanged)", m)
	}
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte(strings.Replace(yaml, "mode: enforce", "mode: monitor", 1)), 0o600)
	e.do("restore", chromedp.SetUploadFiles(CSS(`#restore-file`), []string{good}),
		chromedp.Click(CSS(`#restore-button`)), chromedp.WaitVisible(CSS(`.alert.ok`)))
	if m := e.h.config.Current().Mode; m != config.Monitor {
		t.Errorf("mode after restore = %s, want monitor", m)
	}
	e.shot("11-system")

	e.do("tokens", chromedp.Navigate(e.url+"/tokens"), chromedp.SendKeys(CSS(`input[name=name]`), "prometheus"),
		chromedp.SendKeys(CSS(`input[name=expires]`), "90d"), chromedp.SendKeys(CSS(`form.row input[name=password]`), adminPass),
		chromedp.Click(CSS(`form.row button[type=submit]`)), chromedp.WaitVisible(CSS(`#new-token`)))
	if got := e.text(`td.token-scope`); !strings.Contains(got, "admin") {
		t.Errorf("tokens page scopes %q, want the harness's admin token listed", got)
	}
	e.shot("12-tokens")
	e.do("audit", chromedp.Navigate(e.url+"/audit"), chromedp.WaitVisible(CSS(`table.data`)))
	audit := e.text(`table.data`)
	for _, want := range []string{"setup", "relay.add", "login", "logout", "mode.switch", "config.restore", "token.create"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit page lacks %s", want)
		}
	}
	e.shot("13-audit")
	e.do("japanese", chromedp.Navigate(e.url+"/?lang=ja"), chromedp.WaitVisible(CSS(`#chart-blocked canvas`)))
	if lang, _ := chromedp.Run(e.ctx, chromedp.Evaluate[string](`document.documentElement.lang`)); lang != "ja" {
		t.Errorf("html lang = %q, want ja", lang)
	}
	e.shot("14-dashboard-ja")

	for _, m := range e.console() {
		t.Errorf("browser console: %s", m)
	}
}
