package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestServeWritesMessages(t *testing.T) {
	dir := t.TempDir()
	var lns []net.Listener
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, lns, dir, "labmx.test", slog.New(slog.DiscardHandler)) }()

	bodies := []string{"Subject: one\r\n\r\nfirst\r\n", "Subject: two\r\n\r\nsecond\r\n"}
	for i, ln := range lns {
		c, err := smtp.Dial(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail("from@example.org", []string{"to@example.net", "cc@example.net"}, strings.NewReader(bodies[i])); err != nil {
			t.Fatalf("SendMail via %s: %v", ln.Addr(), err)
		}
		c.Quit()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after cancel")
	}

	f, err := os.Open(filepath.Join(dir, "messages.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, r)
		data, err := os.ReadFile(filepath.Join(dir, r.File))
		if err != nil {
			t.Fatal(err)
		}
		if want := bodies[len(got)-1]; !bytes.Equal(data, []byte(want)) {
			t.Errorf("%s = %q, want %q", r.File, data, want)
		}
		if time.Since(r.Time) > time.Minute {
			t.Errorf("time %v, want recent", r.Time)
		}
	}
	want := []record{
		{Client: "127.0.0.1", Helo: "localhost", MailFrom: "from@example.org", Rcpt: []string{"to@example.net", "cc@example.net"}, Size: len(bodies[0])},
		{Client: "127.0.0.1", Helo: "localhost", MailFrom: "from@example.org", Rcpt: []string{"to@example.net", "cc@example.net"}, Size: len(bodies[1])},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(record{}, "Time", "File")); diff != "" {
		t.Errorf("messages.jsonl (-want +got):\n%s", diff)
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no listen", []string{"-dir", t.TempDir()}, "need at least one -listen and -dir"},
		{"no dir", []string{"-listen", "127.0.0.1:0"}, "need at least one -listen and -dir"},
		{"bad listen", []string{"-listen", "256.0.0.1:25", "-dir", t.TempDir()}, "listen 256.0.0.1:25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("run(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}
