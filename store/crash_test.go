package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
)

// crashDirEnv marks the child process of TestCrashDurability and names its
// data directory.
const crashDirEnv = "RELAYGATE_STORE_CRASH_DIR"

// TestCrashChild is the child process of TestCrashDurability: it records
// events as fast as it can and prints, after each Flush, how many are
// committed, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashDurability; runs only when started by it")
	}
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{PruneInterval: -1, EventsPerSourcePerMinute: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	for n := 0; ; {
		for range 37 {
			s.Record(event.Event{Kind: event.Blocked, Client: netip.MustParseAddr("10.0.0.5"),
				MailFrom: "spam@evil.example", Rcpt: []string{"a@example.com", "b@example.com"}, Detail: strconv.Itoa(n)})
			n++
		}
		if err := s.Flush(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		if d := s.Dropped(); d != 0 {
			fmt.Fprintln(os.Stderr, "child: dropped", d)
			os.Exit(2)
		}
		fmt.Printf("flushed %d\n", n)
	}
}

// TestCrashDurability kills a process that is writing to the store with
// SIGKILL, and checks that the database is intact and holds at least every
// event whose Flush returned.
func TestCrashDurability(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const target = 3000 // events flushed before the kill
	lines := make(chan int)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "flushed "); ok {
				n, err := strconv.Atoi(v)
				if err == nil {
					lines <- n
				}
			}
		}
	}()
	flushed := 0
	killed := false
	timeout := time.After(2 * time.Minute)
	for !killed {
		select {
		case n, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited early after %d flushed events: %s", flushed, stderr.String())
			}
			flushed = n
			if flushed >= target {
				// Kill mid-stream: the child is already recording the next batch.
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child flushed only %d events in time: %s", flushed, stderr.String())
		}
	}
	// Lines printed before the kill are still in the pipe.
	for n := range lines {
		flushed = n
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL; stderr: %s", err, stderr.String())
	}
	t.Logf("child killed after %d flushed events", flushed)

	s := openTest(t, dir, Options{})
	var integrity string
	if err := s.db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("PRAGMA integrity_check = %q, %v, want ok", integrity, err)
	}
	before := countEvents(t, s)
	if before < int64(flushed) {
		t.Fatalf("after crash: %d events in the store, want at least the %d flushed", before, flushed)
	}
	// Every flushed event is there, in order, without gaps.
	var maxDetail, distinct int64
	if err := s.db.QueryRow(`SELECT MAX(CAST(detail AS INTEGER)), COUNT(DISTINCT detail) FROM events`).Scan(&maxDetail, &distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != before || maxDetail != before-1 {
		t.Errorf("after crash: %d events, %d distinct, highest %d: want 0 to %d without gaps", before, distinct, maxDetail, before-1)
	}

	// The store keeps working, and survives another reopen.
	for range 100 {
		s.Record(event.Event{Kind: event.Relayed})
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	s2 := openTest(t, dir, Options{})
	if got, want := countEvents(t, s2), before+100; got != want {
		t.Errorf("after reopen: %d events, want %d", got, want)
	}
	if err := s2.db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("PRAGMA integrity_check after reopen = %q, %v, want ok", integrity, err)
	}
}
