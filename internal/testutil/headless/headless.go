// Package headless starts Debian's Chromium for relaygate's browser tests
// (chromedp), with the flags that keep it off the network of its own and
// accept the appliance's self-signed certificate, and collects what the
// pages log that would be a bug: Content Security Policy violations and
// script errors.
package headless

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's Chromium; CI installs it.
const ChromiumPath = "/usr/bin/chromium"

// SkipWithout skips the test when Chromium is not installed.
func SkipWithout(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("browser test skipped: %s not found (apt-get install chromium)", ChromiumPath)
	}
}

// Start starts a headless Chromium with a fresh profile, bounded by
// timeout, stopped when the test ends. extra allocator options come after
// the defaults (e.g. chromedp.ModifyCmdFunc to run it elsewhere). console
// returns the CSP violations and script errors logged so far.
func Start(t testing.TB, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) (ctx context.Context, console func() []string) {
	t.Helper()
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		// The machine's network is closed: no update, sync or
		// background connections.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.IgnoreCertErrors, // the appliance's self-signed certificate
		chromedp.WindowSize(1366, 900),
		chromedp.UserDataDir(t.TempDir()),
	}, extra...)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var mu sync.Mutex
	var logged []string
	if err := chromedp.Listen(ctx, func(ev any) {
		var en *cdplog.Entry
		switch v := ev.(type) {
		case *cdplog.EventEntryAdded:
			en = v.Entry
		case cdplog.EventEntryAdded:
			en = v.Entry
		}
		if en == nil {
			return
		}
		if strings.Contains(en.Text, "Content Security Policy") || (en.Source == "javascript" && en.Level == "error") {
			mu.Lock()
			logged = append(logged, string(en.Source)+": "+en.Text)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), logged...)
	}
}
