// Command splicerelay is the floor phase of scripts/bench-smtp.sh: a
// transparent TCP relay on the appliance's own data path (the bridge and
// nftables ruleset of package bridge, the listener and onward dialer of
// package smtpproxy) that copies bytes both ways and does nothing else: no
// SMTP, no limits, no inspection, no event store.
//
// Measured against direct delivery in the same run, it shows what
// terminating a relay's connection and opening another one from the relay's
// address costs on the machine at hand, whatever a proxy then does with the
// bytes. The appliance's own rate is read against both: direct says how far
// the product is from a plain bridge, the floor how much of that distance
// any transparent proxy on this machine would have.
//
// Usage (root, in the box's network namespace, an enforce-mode appliance
// configuration; the appliance must not run at the same time):
//
//	splicerelay -config appliance.yaml
//
// With -divert-only it installs the same bridge, ruleset and routing and
// keeps the diversion alive, but listens on nothing: another transparent
// relay (the benchmark's HAProxy peer) serves the proxy port.
//
// SIGINT or SIGTERM stops it and leaves the ruleset in its failure
// behaviour, as the appliance does; `appliance teardown` removes it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/smtpproxy"
)

// copyMode: read(2)/write(2) through a buffer instead of splice(2), as a
// relay that must see the bytes does (-copy).
var copyMode bool

func main() {
	path := flag.String("config", "", "the appliance's configuration file (enforce mode)")
	divertOnly := flag.Bool("divert-only", false, "install the data path and keep diverting, but leave the proxy port to another process")
	flag.BoolVar(&copyMode, "copy", false, "copy through a 64 KiB buffer in user space (read/write) instead of splice(2)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *path, *divertOnly, log); err != nil {
		fmt.Fprintln(os.Stderr, "splicerelay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path string, divertOnly bool, log *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if cfg.Mode != config.Enforce {
		return fmt.Errorf("%s: mode %q, want enforce (nothing would be diverted)", path, cfg.Mode)
	}
	br := bridge.New(log)
	if err := br.Apply(ctx, cfg); err != nil {
		return fmt.Errorf("apply configuration: %w", err)
	}
	defer func() {
		if err := br.Stop(); err != nil {
			log.Error("stop bridge", "err", err)
		}
	}()
	if divertOnly {
		if err := br.SetServing(true); err != nil {
			return fmt.Errorf("start diverting: %w", err)
		}
		heartbeat(ctx, br, log)
		return nil
	}
	ln, err := smtpproxy.ListenTransparent(ctx, cfg.Proxy.Port, bridge.ReplyMark)
	if err != nil {
		return err
	}
	dialer := smtpproxy.TransparentDialer{Mark: bridge.OnwardMark, Timeout: cfg.Proxy.ConnectTimeout.D()}
	if err := br.SetServing(true); err != nil {
		ln.Close()
		return fmt.Errorf("start diverting: %w", err)
	}

	// The heartbeat has ended before the deferred Stop empties the
	// liveness sets (wg.Wait below): a refresh after it would turn the
	// diversion on again.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		heartbeat(ctx, br, log)
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Warn("accept", "err", err)
			continue
		}
		// Sessions in flight when it stops end with the process: this is a
		// benchmark's tool, and a session without timeouts must not keep
		// it (and the benchmark) waiting.
		go func() {
			if err := relay(ctx, dialer, c.(*net.TCPConn)); err != nil {
				log.Warn("relay", "err", err)
			}
		}()
	}
	wg.Wait()
	return nil
}

// heartbeat keeps the diversion alive until ctx is done.
func heartbeat(ctx context.Context, br *bridge.Bridge, log *slog.Logger) {
	t := time.NewTicker(bridge.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := br.Heartbeat(); err != nil {
				log.Error("heartbeat", "err", err)
			}
		}
	}
}

// relay connects onward from the client's address to the original
// destination and copies both ways until both sides have closed.
func relay(ctx context.Context, d smtpproxy.TransparentDialer, cl *net.TCPConn) error {
	defer cl.Close()
	src := cl.RemoteAddr().(*net.TCPAddr).AddrPort()
	dst := cl.LocalAddr().(*net.TCPAddr).AddrPort()
	uc, err := d.Dial(ctx, src.Addr(), dst)
	if err != nil {
		return err
	}
	up := uc.(*net.TCPConn)
	defer up.Close()
	errc := make(chan error, 1)
	go func() { errc <- pipe(up, cl) }()
	return errors.Join(pipe(cl, up), <-errc)
}

// pipe copies src to dst (splice(2) between the two TCP sockets) and then
// half-closes dst, so that a QUIT's close travels on as a FIN. A peer that
// resets or has gone is how sessions end here (smtp-source resets its
// connection once it has read the 221): not worth a log line each.
func pipe(dst, src *net.TCPConn) error {
	var err error
	if copyMode {
		buf := make([]byte, 64<<10)
		_, err = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
	} else {
		_, err = io.Copy(dst, src)
	}
	if cerr := dst.CloseWrite(); err == nil {
		err = cerr
	}
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ENOTCONN) {
		return nil
	}
	return fmt.Errorf("copy %s -> %s: %w", src.RemoteAddr(), dst.RemoteAddr(), err)
}
