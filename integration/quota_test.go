package integration

import (
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// dirBytes is the size of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQuotaFlood: a LAN host sends refused sessions whose HELO, MAIL FROM
// and 100 recipients are each as long as a command line allows (about
// 190 KB of envelope per session). The data directory grows by a small
// fraction of that: each event is clipped, and the source's budget keeps
// all but a few events a minute out of the store. The API still counts
// every session, and the events it serves say how many recipients there
// were.
func TestQuotaFlood(t *testing.T) {
	l := needLab(t)
	const (
		src      = "10.20.0.77"
		sessions = 120
		budget   = 10
		field    = 1800 // octets: a command line is at most 2000
		rcpts    = 100
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if out, err := l.Run(ctx, "pc", "ip", "addr", "replace", src+"/24", "dev", "eth0"); err != nil {
		t.Fatalf("add the source address: %v\n%s", err, out)
	}
	defer l.Run(context.Background(), "pc", "ip", "addr", "del", src+"/24", "dev", "eth0")
	a := startAppliance(t, "enforce", fmt.Sprintf("store:\n  events_per_source_per_minute: %d\ninspect:\n  reverse_dns: false\n", budget))
	flood := smtpflood(t, l)
	// Let the daemon's first writes (schema, first series) settle.
	time.Sleep(time.Second)
	before := dirBytes(t, a.DataDir)

	long := strings.Repeat("x", field)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS("pc"), flood, "-mode", "send",
		"-target", lab.MX4+":25", "-src", src, "-n", fmt.Sprint(sessions), "-concurrency", "2",
		"-rate", "600", "-timeout", "20s", "-helo", "h"+long, "-from", long+"@evil.example",
		"-to", long+"@victim.example", "-rcpts", fmt.Sprint(rcpts), "-size", "10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("smtpflood: %v\n%s", err, out)
	}
	t.Logf("smtpflood: %s", strings.TrimSpace(string(out)))
	sent := int64(sessions * (rcpts + 2) * field)

	var hosts map[string]apiHost
	until(t, 20*time.Second, "every session counted", func() (bool, string) {
		hosts = getHosts(t, a)
		return hosts[src].Blocked == sessions, fmt.Sprintf("%s blocked %d, want %d", src, hosts[src].Blocked, sessions)
	})
	evs := events(t, a, "", src)
	m := scrape(t, a)
	over := int64(m["relaygate_store_events_over_budget_total"])
	if int64(len(evs))+over != sessions {
		t.Errorf("events stored %d + held back over budget %d = %d, want %d sessions", len(evs), over, int64(len(evs))+over, sessions)
	}
	// The sessions may straddle a minute: at most two minutes' budgets.
	if len(evs) == 0 || len(evs) > 2*budget {
		t.Errorf("events stored for %s = %d, want 1 to %d (the budget)", src, len(evs), 2*budget)
	}
	for _, e := range evs {
		if e.Kind != event.Blocked && e.Kind != event.Refused {
			t.Errorf("event of kind %s from %s, want blocked or refused", e.Kind, src)
		}
		if len(e.Helo) > event.MaxHelo || len(e.MailFrom) > event.MaxPath {
			t.Errorf("stored helo %d and mail_from %d octets, want at most %d and %d", len(e.Helo), len(e.MailFrom), event.MaxHelo, event.MaxPath)
		}
		for _, r := range e.Rcpt {
			if len(r) > event.MaxPath {
				t.Fatalf("stored recipient of %d octets, want at most %d", len(r), event.MaxPath)
			}
		}
		if e.Kind == event.Blocked && len(e.Rcpt)+e.RcptDropped != rcpts {
			t.Errorf("event %d: %d recipients kept + %d dropped, want %d", e.ID, len(e.Rcpt), e.RcptDropped, rcpts)
		}
	}
	after := dirBytes(t, a.DataDir)
	t.Logf("sent %d octets of envelope in %d sessions; data directory %d -> %d octets; %d events stored, %d over budget",
		sent, sessions, before, after, len(evs), over)
	if grew := after - before; grew > 5<<20 {
		t.Errorf("data directory grew by %d octets for %d octets of envelope, want at most 5 MiB", grew, sent)
	}
}
