// Command labmx is the remote MX of the network-namespace lab and the demo:
// a fakemx server that accepts any mail and writes every message to a
// directory.
//
//	labmx -listen 203.0.113.25:25 -listen [2001:db8:25::25]:25 -dir DIR
//
// For every message it writes DIR/<unix-nanos>-<n>.eml with the data and
// appends one JSON line to DIR/messages.jsonl:
//
//	{"time":"...","client":"10.10.0.25","helo":"relay.example","mail_from":"a@example.org","rcpt":["b@example.net"],"size":1234,"file":"...eml"}
//
// It logs to stderr and exits cleanly on SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "labmx:", err)
		os.Exit(1)
	}
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("labmx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var listen listFlag
	fs.Var(&listen, "listen", "address:port to serve SMTP on, repeatable, e.g. 203.0.113.25:25")
	dir := fs.String("dir", "", "directory for the .eml files and messages.jsonl")
	hostname := fs.String("hostname", "labmx.test", "name in the 220 greeting")
	debug := fs.Bool("debug", false, "log go-smtp's connection errors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(listen) == 0 || *dir == "" {
		return errors.New("need at least one -listen and -dir")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, addr := range listen {
		ln, err := listenRetry(ctx, addr, 10*time.Second)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	return serve(ctx, lns, *dir, *hostname, logger)
}

// listenRetry retries while the address is not (yet) assignable: a fresh
// IPv6 address is tentative until duplicate address detection ends.
func listenRetry(ctx context.Context, addr string, wait time.Duration) (net.Listener, error) {
	deadline := time.Now().Add(wait)
	for {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRNOTAVAIL) || time.Now().After(deadline) {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("listen %s: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serve serves lns until ctx is cancelled, writing messages into dir.
func serve(ctx context.Context, lns []net.Listener, dir, hostname string, logger *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	w, err := newWriter(dir, logger)
	if err != nil {
		return err
	}
	defer w.close()
	srv := fakemx.New(fakemx.Options{Hostname: hostname, Logger: logger, Deliver: w.deliver})
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		logger.Info("serving", "listen", ln.Addr().String(), "dir", dir)
		go func() { errc <- srv.Serve(ln) }()
	}
	var serveErr error
	running := len(lns)
	select {
	case <-ctx.Done():
		logger.Info("stopping")
	case serveErr = <-errc:
		running--
	}
	srv.Close()
	for ; running > 0; running-- {
		if err := <-errc; err != nil && serveErr == nil {
			serveErr = err
		}
	}
	return serveErr
}

// record is one line of messages.jsonl.
type record struct {
	Time     time.Time `json:"time"`
	Client   string    `json:"client"`
	Helo     string    `json:"helo"`
	MailFrom string    `json:"mail_from"`
	Rcpt     []string  `json:"rcpt"`
	Size     int       `json:"size"`
	File     string    `json:"file"`
}

// writer stores messages; a message that cannot be stored is refused
// with 451, so the sender keeps it.
type writer struct {
	dir    string
	logger *slog.Logger

	mu    sync.Mutex
	n     int
	jsonl *os.File
}

func newWriter(dir string, logger *slog.Logger) (*writer, error) {
	path := filepath.Join(dir, "messages.jsonl")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &writer{dir: dir, logger: logger, jsonl: f}, nil
}

func (w *writer) deliver(m fakemx.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	name := fmt.Sprintf("%d-%d.eml", m.Time.UnixNano(), w.n)
	if err := os.WriteFile(filepath.Join(w.dir, name), m.Data, 0o644); err != nil {
		w.logger.Error("write message", "err", err)
		return fmt.Errorf("write message: %w", err)
	}
	rcpt := m.To
	if rcpt == nil {
		rcpt = []string{}
	}
	line, err := json.Marshal(record{
		Time: m.Time.UTC(), Client: m.ClientAddr.String(), Helo: m.Helo,
		MailFrom: m.From, Rcpt: rcpt, Size: len(m.Data), File: name,
	})
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	if _, err := w.jsonl.Write(append(line, '\n')); err != nil {
		w.logger.Error("append messages.jsonl", "err", err)
		return fmt.Errorf("append messages.jsonl: %w", err)
	}
	w.logger.Info("message", "client", m.ClientAddr.String(), "helo", m.Helo, "mail_from", m.From,
		"rcpt", strings.Join(m.To, ","), "size", len(m.Data), "file", name)
	return nil
}

func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.jsonl.Close()
}
