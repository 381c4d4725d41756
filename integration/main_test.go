// Package integration runs relaygate end to end in the network-namespace
// lab (scripts/lab.sh): a relay and an infected PC behind an L3 switch, the
// appliance, a router and a remote MX. The tests need root; CI runs as root.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

var (
	theLab *lab.Lab
	theMX  *lab.MX
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 || os.Getenv("RELAYGATE_FRAME_HELPER") != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "relaygate-lab-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	prefix := fmt.Sprintf("rgi%d", os.Getpid()%100000)
	theLab, err = lab.Up(prefix, dir, os.Getenv("RELAYGATE_BIN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	theMX, err = theLab.StartMX()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
		theMX.Signal(syscall.SIGTERM, 5*time.Second)
	}
	if err := theLab.Down(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "lab logs kept in", dir)
	}
	os.Exit(code)
}

func needLab(t *testing.T) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces, a bridge and nftables rules (run `sudo make test`; CI runs as root)")
	}
	return theLab
}

// startAppliance runs the daemon with the lab configuration for mode, with
// a data directory of the test's own, and stops it when the test ends.
func startAppliance(t *testing.T, mode, extra string) *lab.Appliance {
	t.Helper()
	return startApplianceIn(t, needLab(t), mode, extra)
}

// startApplianceIn is startAppliance in lab l.
func startApplianceIn(t *testing.T, l *lab.Lab, mode, extra string) *lab.Appliance {
	t.Helper()
	dataDir := filepath.Join(l.Dir, "data-"+strings.ReplaceAll(t.Name(), "/", "_"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := l.StartAppliance(ctx, strings.ReplaceAll(t.Name(), "/", "_"), lab.Config(mode, dataDir, extra))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, done := a.Exited(); !done {
			if err := a.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
				t.Errorf("stop appliance: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("appliance log:\n%s", a.Output())
		}
	})
	return a
}

// startGroup starts cmd (its output to the test's stderr) in a process
// group of its own, killed whole when the test ends: a connection still
// retrying its SYN would reach the next test's daemon.
func startGroup(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
}

// uniqueSender returns a sender address no other test uses.
func uniqueSender(t *testing.T, local string) string {
	return fmt.Sprintf("%s-%d@%s", local, time.Now().UnixNano(), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))+".example")
}

// waitEvent polls the API until an event of kind from client with the given
// sender appears.
func waitEvent(t *testing.T, a *lab.Appliance, kind event.Kind, client, mailFrom string) event.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		var resp struct {
			Events []event.Event `json:"events"`
		}
		err := a.API(ctx, "GET", fmt.Sprintf("/api/v1/events?kind=%s&client=%s&limit=1000", kind, client), nil, &resp)
		if err == nil {
			for _, e := range resp.Events {
				if mailFrom == "" || e.MailFrom == mailFrom {
					return e
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s event from %s (mail from %q) after 20s (last error: %v)", kind, client, mailFrom, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// events returns all events of kind from client, following the API's
// next links from page to page.
func events(t *testing.T, a *lab.Appliance, kind event.Kind, client string) []event.Event {
	t.Helper()
	var out []event.Event
	for next := fmt.Sprintf("/api/v1/events?kind=%s&client=%s&limit=10000", kind, client); next != ""; {
		var resp struct {
			Events []event.Event `json:"events"`
			Next   string        `json:"next"`
		}
		if err := a.API(context.Background(), "GET", next, nil, &resp); err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.Events...)
		next = resp.Next
	}
	return out
}

// server formats an address for swaks.
func server(addr string) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]"
	}
	return addr
}

// sendOK sends a message with swaks and fails the test if it is not accepted.
func sendOK(t *testing.T, host, mx, from string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := theLab.Swaks(ctx, host, server(mx), from, "someone@remote.example")
	if err != nil {
		t.Fatalf("swaks from %s to %s: %v\n%s", host, mx, err, out)
	}
	return out
}
