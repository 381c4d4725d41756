package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/relaygate/relaygate/internal/testutil/headless"
	"github.com/relaygate/relaygate/internal/testutil/lab"
	"github.com/relaygate/relaygate/webui"
)

// The browser tests check what the administrator sees, not what the API
// says: headless Chromium on the lab's admin host opens the real
// appliance's web UI after real traffic and reads the dashboard as drawn.

// The administrator checkDashboardInBrowser creates on a fresh appliance,
// and logs in as when the appliance already has one.
const (
	browserAdmin    = "admin"
	browserPassword = "a long and boring passphrase"
)

// browserStep bounds one step in the browser (a page load, a form sent).
const browserStep = 20 * time.Second

// browserWant is what the dashboard must show.
type browserWant struct {
	Blocked      int64  // the Blocked (Would block) total and the sum its chart drew
	TopHost      string // the first row of the top hosts
	TopHostCount int64  // that row's count
	Monitor      bool   // "Would block" and the monitor note instead of "Blocked"
}

// dashboardLabels are the blocked card's label per language, as in
// webui/i18n/en.json and ja.json (keys blocked and would_block).
var dashboardLabels = []struct {
	lang, blocked, wouldBlock string
}{
	{"en", "Blocked", "Would block"},
	{"ja", "遮断", "遮断対象"},
}

// dashboardView is what the browser shows of the dashboard.
type dashboardView struct {
	Lang        string `json:"lang"`
	Total       string `json:"total"`
	Label       string `json:"label"`
	ChartTotal  string `json:"chart_total"`
	Canvases    int    `json:"canvases"`
	TopRows     int    `json:"top_rows"`
	TopHref     string `json:"top_href"`
	TopText     string `json:"top_text"`
	TopCount    string `json:"top_count"`
	NoteHidden  bool   `json:"note_hidden"`
	NoteVisible bool   `json:"note_visible"`
}

// readDashboard collects dashboardView in the page.
const readDashboard = `(() => {
	const q = s => document.querySelector(s);
	const row = q('#top-hosts tr');
	const link = row ? row.querySelector('td a') : null;
	const cells = row ? row.querySelectorAll('td') : [];
	const note = q('#monitor-note');
	return {
		lang: document.documentElement.lang,
		total: q('#total-blocked').textContent.trim(),
		label: q('#label-blocked').textContent.trim(),
		chart_total: q('#chart-blocked').getAttribute('data-total') || '',
		canvases: document.querySelectorAll('#chart-blocked canvas').length,
		top_rows: document.querySelectorAll('#top-hosts tr').length,
		top_href: link ? link.getAttribute('href') : '',
		top_text: link ? link.textContent.trim() : '',
		top_count: cells.length > 1 ? cells[1].textContent.trim() : '',
		note_hidden: note.hidden,
		note_visible: note.checkVisibility(),
	};
})()`

// needChromium skips the test when Chromium is not installed.
func needChromium(t *testing.T) {
	t.Helper()
	headless.SkipWithout(t)
}

// adminBrowser starts headless Chromium in the lab's admin namespace, the
// only host that reaches the management address, so the browser opens the
// UI at its real address. chromedp talks to it over a pipe (fds 3 and 4),
// which `ip netns exec` passes on; the test process never changes
// namespace. Script errors and CSP violations the pages log are collected
// in console.
func adminBrowser(t *testing.T, l *lab.Lab) (ctx context.Context, console func() []string) {
	t.Helper()
	ns := l.NS("admin")
	return headless.Start(t, 3*time.Minute, chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
		ip, err := exec.LookPath("ip")
		if err != nil {
			cmd.Err = fmt.Errorf("LookPath(ip): %w", err)
			return
		}
		cmd.Path = ip
		cmd.Args = append([]string{"ip", "netns", "exec", ns, headless.ChromiumPath}, cmd.Args[1:]...)
		// What chromedp's default does: the browser dies with the test.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}))
}

// screenshots returns the directory for screenshots: $RELAYGATE_SCREENSHOTS
// or a temporary one.
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RELAYGATE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browserSession is headless Chromium on a lab's admin host, logged in to
// an appliance's web UI.
type browserSession struct {
	t       *testing.T
	ctx     context.Context
	console func() []string
	base    string
	shots   string
	prefix  string
}

// shot saves a screenshot of the page as name.
func (b *browserSession) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.shots, b.prefix+"-"+name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot %s", p)
}

// do runs steps within browserStep; on failure it saves a screenshot and
// ends the test.
func (b *browserSession) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		b.shot("failure-" + strings.ReplaceAll(what, " ", "-"))
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("browser: %s: %v (at %s)", what, err, loc)
	}
}

// openBrowser starts Chromium on l's admin host and logs in to a's web UI.
// On a fresh appliance it first creates the administrator with the
// one-time setup token, as an administrator would; otherwise it logs in.
// Screenshots go to $RELAYGATE_SCREENSHOTS or a temporary directory.
func openBrowser(t *testing.T, l *lab.Lab, a *lab.Appliance) *browserSession {
	t.Helper()
	needChromium(t)
	ctx, console := adminBrowser(t, l)
	b := &browserSession{t: t, ctx: ctx, console: console, base: "https://" + lab.Mgmt4 + ":8443",
		shots: screenshots(t), prefix: strings.ReplaceAll(t.Name(), "/", "_")}
	CSS := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	token, err := os.ReadFile(filepath.Join(a.DataDir, webui.SetupTokenFile))
	switch {
	case err == nil:
		b.do("first-start setup",
			chromedp.Navigate(b.base+"/?lang=en"),
			chromedp.WaitVisible(CSS(`input[name=token]`)),
			chromedp.SendKeys(CSS(`input[name=token]`), strings.TrimSpace(string(token))),
			chromedp.SetValue(CSS(`input[name=username]`), browserAdmin),
			chromedp.SendKeys(CSS(`input[name=password]`), browserPassword),
			chromedp.SendKeys(CSS(`input[name=password2]`), browserPassword),
			chromedp.Click(CSS(`button[type=submit].primary`)),
			chromedp.WaitVisible(CSS(`#add-relay-button`)),
		)
		if _, err := os.Stat(filepath.Join(a.DataDir, webui.SetupTokenFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("setup token file still there after setup in the browser: %v", err)
		}
	case errors.Is(err, os.ErrNotExist):
		b.do("log in",
			chromedp.Navigate(b.base+"/login?lang=en"),
			chromedp.WaitVisible(CSS(`input[name=password]`)),
			chromedp.SetValue(CSS(`input[name=username]`), browserAdmin),
			chromedp.SendKeys(CSS(`input[name=password]`), browserPassword),
			chromedp.Click(CSS(`button[type=submit].primary`)),
			chromedp.WaitVisible(CSS(`#chart-blocked`)),
		)
	default:
		t.Fatal(err)
	}
	return b
}

// checkDashboardInBrowser opens the appliance's dashboard in headless
// Chromium on the admin host, in English and in Japanese, and checks what
// it shows against want: the blocked total and its label, the sum the
// blocked chart drew, the first of the top hosts, and the monitor note.
func checkDashboardInBrowser(t *testing.T, a *lab.Appliance, want browserWant) {
	t.Helper()
	b := openBrowser(t, needLab(t), a)
	ctx, base, do, shot, console := b.ctx, b.base, b.do, b.shot, b.console
	CSS := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	for _, lang := range dashboardLabels {
		do("dashboard in "+lang.lang,
			chromedp.Navigate(base+"/?lang="+lang.lang),
			chromedp.WaitVisible(CSS(`#chart-blocked canvas`)),
		)
		// dashboard.js has drawn the page's data once it marks the body.
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.body.getAttribute('data-dashboard-updated') !== null`,
			chromedp.WithPollingTimeout(browserStep))); err != nil {
			shot("failure-dashboard-" + lang.lang)
			t.Fatalf("dashboard in %s: never drawn by dashboard.js: %v", lang.lang, err)
		}
		v, err := chromedp.Run(ctx, chromedp.Evaluate[dashboardView](readDashboard))
		if err != nil {
			t.Fatalf("read the dashboard in %s: %v", lang.lang, err)
		}
		shot("dashboard-" + lang.lang)
		for _, p := range dashboardProblems(v, want, lang.lang, lang.blocked, lang.wouldBlock) {
			t.Errorf("dashboard in %s: %s", lang.lang, p)
		}
	}
	for _, m := range console() {
		t.Errorf("browser console: %s", m)
	}
}

// dashboardProblems compares what the browser showed with want.
func dashboardProblems(v dashboardView, want browserWant, lang, blocked, wouldBlock string) []string {
	var out []string
	if v.Lang != lang {
		out = append(out, fmt.Sprintf("html lang = %q, want %q", v.Lang, lang))
	}
	if w := strconv.FormatInt(want.Blocked, 10); v.Total != w {
		out = append(out, fmt.Sprintf("#total-blocked = %q, want %s", v.Total, w))
	}
	label := blocked
	if want.Monitor {
		label = wouldBlock
	}
	if v.Label != label {
		out = append(out, fmt.Sprintf("#label-blocked = %q, want %q", v.Label, label))
	}
	if w := strconv.FormatInt(want.Blocked, 10); v.ChartTotal != w || want.Blocked == 0 || v.Canvases == 0 {
		out = append(out, fmt.Sprintf("#chart-blocked drew %d canvases with data-total %q, want a chart with %s (non-zero)",
			v.Canvases, v.ChartTotal, w))
	}
	if w := "/hosts/" + want.TopHost; v.TopHref != w || v.TopText != want.TopHost {
		out = append(out, fmt.Sprintf("first of #top-hosts (%d rows) links %q to %q, want %q to %q",
			v.TopRows, v.TopText, v.TopHref, want.TopHost, w))
	}
	if w := strconv.FormatInt(want.TopHostCount, 10); v.TopCount != w {
		out = append(out, fmt.Sprintf("first of #top-hosts counts %q, want %s", v.TopCount, w))
	}
	if v.NoteVisible != want.Monitor || v.NoteHidden == want.Monitor {
		out = append(out, fmt.Sprintf("#monitor-note visible %v (hidden attribute %v), want visible %v",
			v.NoteVisible, v.NoteHidden, want.Monitor))
	}
	return out
}

// TestBrowserDashboard sends real traffic through the box and checks the
// dashboard in a real browser: in enforce mode the PC's three refused
// sessions (two over IPv4, one over IPv6) are "Blocked" 3 next to a
// relayed message; in monitor mode the PC's three delivered messages are
// "Would block" 3 with the monitor note.
func TestBrowserDashboard(t *testing.T) {
	needLab(t)
	needChromium(t)
	t.Run("enforce", func(t *testing.T) {
		a := startAppliance(t, "enforce", "inspect:\n  reverse_dns: false\n")
		for _, mx := range []string{lab.MX4, lab.MX4, lab.MX6} {
			out := swaksRefused(t, "pc", mx, "bot@pc.example", "victim@remote.example")
			if !strings.Contains(out, "554 5.7.1") {
				t.Fatalf("PC's session to %s: no 554 5.7.1\n%s", mx, out)
			}
		}
		from := uniqueSender(t, "relay")
		sendOK(t, "relay", lab.MX4, from)
		if _, err := theMX.WaitMessage(from, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		until(t, 20*time.Second, "the dashboard API counts the PC's refused sessions", func() (bool, string) {
			d := getDashboard(t, a)
			return d.Totals["blocked"] == 3 && d.Totals["relayed"] == 1, fmt.Sprintf("totals %v", d.Totals)
		})
		checkDashboardInBrowser(t, a, browserWant{Blocked: 3, TopHost: lab.PC4, TopHostCount: 2})
	})
	t.Run("monitor", func(t *testing.T) {
		a := startAppliance(t, "monitor", "inspect:\n  reverse_dns: false\n")
		// In monitor mode the PC's mail goes out; the dashboard says it
		// would be blocked.
		for _, mx := range []string{lab.MX4, lab.MX4, lab.MX6} {
			sendOK(t, "pc", mx, uniqueSender(t, "bot"))
		}
		sendOK(t, "relay", lab.MX4, uniqueSender(t, "relay"))
		until(t, 20*time.Second, "the dashboard API counts the PC's sessions as would-block", func() (bool, string) {
			d := getDashboard(t, a)
			return d.Monitor && d.Totals["blocked"] == 3 && d.Totals["outcome_would_block"] == 3 && d.Totals["relayed"] == 1,
				fmt.Sprintf("monitor %v, totals %v", d.Monitor, d.Totals)
		})
		checkDashboardInBrowser(t, a, browserWant{Blocked: 3, TopHost: lab.PC4, TopHostCount: 2, Monitor: true})
	})
}
