package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/export"
	"github.com/relaygate/relaygate/mgmtnet"
	"github.com/relaygate/relaygate/smtpproxy"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

// Options are what the command line gives the daemon.
type Options struct {
	// ConfigPath is the configuration file, e.g. /etc/relaygate/relaygate.yaml.
	// SIGHUP re-reads it; the web UI saves to it.
	ConfigPath string
	// LogFormat is text or json; "": the configuration's log.format.
	LogFormat string
	// Stderr receives the logs (nil: os.Stderr).
	Stderr io.Writer
	// Version is reported in the logs and the status, e.g. 1.4.0.
	Version string
}

// errWebStopped: the web server returned without an error before it was
// asked to stop. The daemon stops too, with no error, as it always did.
var errWebStopped = errors.New("web server stopped")

// Run runs the daemon until ctx ends (nil error) or a part it cannot run
// without stops (its error). Whatever happens, it leaves the kernel in its
// failure behaviour (enforce) or clean (monitor).
func Run(ctx context.Context, o Options) error {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	path := o.ConfigPath
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logFormat := o.LogFormat
	if logFormat == "" {
		logFormat = cfg.Log.Format
	}
	if logFormat != "text" && logFormat != "json" {
		return fmt.Errorf("--log-format: unknown format %q (want text or json)", logFormat)
	}
	log := NewLogger(o.Stderr, logFormat, cfg.Log.Level)
	log.Info("starting relaygate", "version", o.Version, "config", path, "mode", cfg.Mode)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	st, err := store.Open(ctx, cfg.DataDir, store.Options{
		Retention: cfg.Store.Retention.D(), MaxEvents: cfg.Store.MaxEvents, Logger: log,
		MaxBytes: int64(cfg.Store.MaxMB) << 20, EventsPerSourcePerMinute: cfg.Store.EventsPerSourcePerMinute,
	})
	if err != nil {
		return err
	}
	defer st.Close()

	// Every recorded event and audit entry goes to the export spools; the
	// store's observer only queues it in memory.
	exp := export.New(log, cfg.DataDir)
	exp.SetConfig(cfg)
	st.SetObserver(exp)

	br := bridge.New(log)
	d := newDaemon(log, path, o.Version, br, st, cfg)
	d.locate = newLocService(log, st, st, cfg, newSNMPLocator)
	d.OnApply(d.locate.SetConfig)
	d.OnApply(exp.SetConfig)
	d.OnApply(func(c *config.Config) {
		st.SetLimits(c.Store.Retention.D(), c.Store.MaxEvents)
		st.SetQuota(int64(c.Store.MaxMB)<<20, c.Store.EventsPerSourcePerMinute)
	})
	if err := br.Apply(ctx, cfg); err != nil {
		return fmt.Errorf("apply configuration: %w", err)
	}
	// Whatever happens from here on, leave the kernel in its failure
	// behaviour (enforce) or clean (monitor); the bridge keeps forwarding.
	defer func() {
		if err := br.Stop(); err != nil {
			log.Error("stop bridge", "err", err)
		}
	}()

	// The baseline of the shed counters: what the kernel sheds from here
	// on reaches the series.
	shed := newShedSampler(br.Counters, st)
	shed.sample(time.Now())

	if d.proxy, err = newProxy(d, cfg); err != nil {
		return err
	}
	ln, err := smtpproxy.ListenTransparent(ctx, cfg.Proxy.Port, bridge.ReplyMark)
	if err != nil {
		return fmt.Errorf("proxy listener: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(st.Collectors()...)
	reg.MustRegister(d.proxy.Collectors()...)
	reg.MustRegister(br.Collectors()...)
	reg.MustRegister(&servingCollector{d: d})
	reg.MustRegister(exp)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The group's context ends with ctx or when the proxy or the web
	// server stops on its own (their goroutines' errors).
	g, gctx := errgroup.WithContext(ctx)
	if d.inspect, err = d.startInspect(gctx, reg, g); err != nil {
		return fmt.Errorf("passive inspection: %w", err)
	}
	g.Go(func() error {
		err := d.proxy.Serve(gctx, ln)
		if gctx.Err() != nil {
			return nil // asked to stop
		}
		return fmt.Errorf("proxy stopped: %w", err)
	})
	g.Go(func() error { d.heartbeat(gctx); return nil })
	g.Go(func() error { exp.Run(gctx); return nil })
	g.Go(func() error { shed.run(gctx, shedInterval); return nil })
	d.startReputation(gctx, cfg, reg, g)
	neighbors := d.startNeighbors(gctx, reg, g)
	if d.alerter != nil {
		d.locate.alerts = d.alerter
	}
	reg.MustRegister(d.locate.Collectors()...)
	g.Go(func() error { d.locate.run(gctx); return nil })

	deps := d.webDeps(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	deps.Reputation, deps.Alerts = d.reputation, d.alerter
	deps.Locator = d.locate
	reboot := &rebooter{log: log, delay: 2 * time.Second}
	deps.Update = updateHandler(log, reboot)
	if onApplianceImage() {
		deps.System = reboot
	}
	mgmt := mgmtnet.NewFile(cfg.DataDir)
	mgmt.Logf = func(format string, args ...any) { log.Error("management address", "err", fmt.Sprintf(format, args...)) }
	deps.Network = mgmt
	deps.Neighbors = neighbors
	deps.Export = exp
	if d.inspect != nil {
		deps.Evidence = webEvidence(d.inspect)
		deps.Inventory = inspectInventory{d.inspect}
	}
	g.Go(func() error {
		err := webui.Serve(gctx, deps, cfg.Web, cfg.DataDir, cfg.Interfaces.Management, log)
		switch {
		case gctx.Err() != nil:
			return nil // asked to stop
		case err != nil:
			return fmt.Errorf("web server: %w", err)
		}
		return errWebStopped
	})

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("serving", "proxy_port", cfg.Proxy.Port, "web", cfg.Web.Listen, "management", cfg.Interfaces.Management)

loop:
	for {
		select {
		case <-gctx.Done():
			if ctx.Err() != nil {
				log.Info("stopping")
			}
			break loop
		case <-hup:
			d.reload(gctx)
		}
	}
	d.setServing(false)
	cancel()
	runErr := g.Wait()
	if errors.Is(runErr, errWebStopped) {
		runErr = nil
	}
	flushCtx, flushCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer flushCancel()
	if err := st.Flush(flushCtx); err != nil {
		log.Warn("flush events", "err", err)
	}
	log.Info("stopped")
	return runErr
}

// NewLogger returns the daemon's logger: text or json (format) on w, at
// level (debug, info, warn, error; anything else: info).
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
