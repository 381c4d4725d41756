package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relaygate/relaygate/bridge"
	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/inspect"
	"github.com/relaygate/relaygate/mgmtnet"
	"github.com/relaygate/relaygate/reputation"
	"github.com/relaygate/relaygate/smtpproxy"
	"github.com/relaygate/relaygate/store"
	"github.com/relaygate/relaygate/webui"
)

func checkConfig(path string, stdout io.Writer) error {
	c, err := config.Load(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (mode %s, %d relays)\n", path, c.Mode, len(c.Relays))
	return nil
}

func createToken(ctx context.Context, dataDir, name string, stdout io.Writer) error {
	st, err := store.Open(ctx, dataDir, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := st.CreateToken(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func teardown(path string) error {
	c, err := config.Load(path)
	if err != nil {
		return err
	}
	return bridge.Teardown(c)
}

// daemon holds the running parts; manager is its ConfigManager.
type daemon struct {
	log     *slog.Logger
	path    string
	started time.Time
	br      *bridge.Bridge
	proxy   *smtpproxy.Proxy
	store   *store.Store

	reputation *reputation.Watcher
	alerter    *reputation.Alerter
	inspect    *inspect.Inspector
	// captureAll: capture opened on every bridge port (set before the
	// web UI starts).
	captureAll bool
	// alive follows the heartbeat of the kernel's diversion.
	alive liveness

	// onApply hooks run, under mu, after a new configuration is in force.
	onApply []func(*config.Config)

	mu      sync.Mutex
	cfg     *config.Config
	serving bool
}

func runDaemon(ctx context.Context, path, logFormat string, stderr io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if logFormat == "" {
		logFormat = cfg.Log.Format
	}
	if logFormat != "text" && logFormat != "json" {
		return fmt.Errorf("--log-format: unknown format %q (want text or json)", logFormat)
	}
	log := newLogger(stderr, logFormat, cfg.Log.Level)
	log.Info("starting relaygate", "version", version, "config", path, "mode", cfg.Mode)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	st, err := store.Open(ctx, cfg.DataDir, store.Options{
		Retention: cfg.Store.Retention.D(), MaxEvents: cfg.Store.MaxEvents, Logger: log,
	})
	if err != nil {
		return err
	}
	defer st.Close()

	d := &daemon{log: log, path: path, started: time.Now(), br: bridge.New(log), store: st, cfg: cfg,
		alive: liveness{ttl: bridge.AliveTimeout}}
	if err := d.br.Apply(ctx, cfg); err != nil {
		return fmt.Errorf("apply configuration: %w", err)
	}
	// Whatever happens from here on, leave the kernel in its failure
	// behaviour (enforce) or clean (monitor); the bridge keeps forwarding.
	defer func() {
		if err := d.br.Stop(); err != nil {
			log.Error("stop bridge", "err", err)
		}
	}()

	// The baseline of the shed counters: what the kernel sheds from here
	// on reaches the series.
	shed := newShedSampler(d.br.Counters, st)
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
	reg.MustRegister(&bridgeCollector{d: d})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if d.inspect, err = d.startInspect(ctx, reg, &wg); err != nil {
		return fmt.Errorf("passive inspection: %w", err)
	}
	proxyDone := make(chan error, 1)
	wg.Go(func() { proxyDone <- d.proxy.Serve(ctx, ln) })
	wg.Go(func() { d.heartbeat(ctx) })
	wg.Go(func() { shed.run(ctx, shedInterval) })
	d.startReputation(ctx, cfg, reg, &wg)

	deps := d.webDeps(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	deps.Reputation, deps.Alerts = d.reputation, d.alerter
	reboot := &rebooter{log: log, delay: 2 * time.Second}
	deps.Update = updateHandler(log, reboot)
	if onApplianceImage() {
		deps.System = reboot
	}
	mgmt := mgmtnet.NewFile(cfg.DataDir)
	mgmt.Logf = func(format string, args ...any) { log.Error("management address", "err", fmt.Sprintf(format, args...)) }
	deps.Network = mgmt
	if d.inspect != nil {
		deps.Evidence = webEvidence(d.inspect)
		deps.Inventory = inspectInventory{d.inspect}
	}
	webDone := make(chan error, 1)
	wg.Go(func() {
		webDone <- webui.Serve(ctx, deps, cfg.Web, cfg.DataDir, cfg.Interfaces.Management, log)
	})

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("serving", "proxy_port", cfg.Proxy.Port, "web", cfg.Web.Listen, "management", cfg.Interfaces.Management)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping")
			break loop
		case <-hup:
			d.reload(ctx)
		case err := <-proxyDone:
			runErr = fmt.Errorf("proxy stopped: %w", err)
			proxyDone <- err
			break loop
		case err := <-webDone:
			if err != nil {
				runErr = fmt.Errorf("web server: %w", err)
			}
			webDone <- err
			break loop
		}
	}
	d.setServing(false)
	cancel()
	wg.Wait()
	flushCtx, flushCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer flushCancel()
	if err := st.Flush(flushCtx); err != nil {
		log.Warn("flush events", "err", err)
	}
	log.Info("stopped")
	return runErr
}

// heartbeat keeps the diversion alive while the proxy serves.
func (d *daemon) heartbeat(ctx context.Context) {
	d.setServing(true)
	t := time.NewTicker(bridge.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.recordHeartbeat(d.br.Heartbeat())
		}
	}
}

// recordHeartbeat feeds a heartbeat's result to the liveness tracker and
// logs once per failure streak.
func (d *daemon) recordHeartbeat(err error) {
	switch d.alive.record(err, time.Now()) {
	case streakFailing:
		d.log.Error("heartbeat failed: diversion off, the kernel's failure behaviour is in force until it succeeds", "err", err)
	case streakHealed:
		d.log.Info("heartbeat succeeds again: diversion alive")
	}
}

func (d *daemon) setServing(on bool) {
	d.mu.Lock()
	d.serving = on
	d.mu.Unlock()
	err := d.br.SetServing(on)
	if on {
		d.recordHeartbeat(err)
	} else if err != nil {
		d.log.Error("set serving", "serving", on, "err", err)
	}
}

// dataPath reports what the data path does now (Status.DataPath) and
// whether that is what the mode promises (Status.Serving).
func (d *daemon) dataPath() (string, bool) {
	d.mu.Lock()
	c, serving := d.cfg, d.serving
	d.mu.Unlock()
	return dataPath(dataPathState{
		mode:         c.Mode,
		proxyServing: serving,
		alive:        d.alive.alive(time.Now()),
		inspectOn:    c.Inspect.On(),
		capturing:    d.captureAll && d.inspect != nil && d.inspect.Capturing(),
	})
}

// reload re-reads the configuration file (SIGHUP). A bad file is reported
// and the running configuration stays.
func (d *daemon) reload(ctx context.Context) {
	c, err := config.Load(d.path)
	if err != nil {
		d.log.Error("reload: keeping the running configuration", "err", err)
		return
	}
	if err := d.apply(ctx, c); err != nil {
		d.log.Error("reload: keeping the running configuration", "err", err)
		return
	}
	d.audit(ctx, "sighup", "", "config.reload", "configuration reloaded from "+d.path)
}

// Current returns the running configuration.
func (d *daemon) Current() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Apply validates, applies live, and then saves c atomically. On failure the
// previous configuration stays in force and on disk.
func (d *daemon) Apply(ctx context.Context, c *config.Config, actor, remote string) error {
	if err := d.apply(ctx, c); err != nil {
		return err
	}
	if err := c.Save(d.path); err != nil {
		return fmt.Errorf("configuration applied but not saved: %w", err)
	}
	d.audit(ctx, actor, remote, "config.update", fmt.Sprintf("mode %s, %d relays", c.Mode, len(c.Relays)))
	return nil
}

// restartKeys are the settings that only take effect on a restart.
func restartKeys(old, c *config.Config) error {
	for _, k := range []struct {
		key      string
		old, new any
	}{
		{"interfaces.bridge", old.Interfaces.Bridge, c.Interfaces.Bridge},
		{"interfaces.inside", old.Interfaces.Inside, c.Interfaces.Inside},
		{"interfaces.outside", old.Interfaces.Outside, c.Interfaces.Outside},
		{"interfaces.management", old.Interfaces.Management, c.Interfaces.Management},
		{"web", old.Web, c.Web},
		{"data_dir", old.DataDir, c.DataDir},
		{"proxy.port", old.Proxy.Port, c.Proxy.Port},
	} {
		if !reflect.DeepEqual(k.old, k.new) {
			return &config.FieldError{Key: k.key, Msg: "cannot change while running: edit the file and restart the daemon"}
		}
	}
	return nil
}

func (d *daemon) apply(ctx context.Context, c *config.Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.cfg
	if err := restartKeys(old, c); err != nil {
		return err
	}
	if err := d.br.Apply(ctx, c); err != nil {
		if rerr := d.br.Apply(ctx, old); rerr != nil {
			d.log.Error("roll back to the previous configuration", "err", rerr)
		}
		return fmt.Errorf("apply configuration: %w", err)
	}
	d.store.SetLimits(c.Store.Retention.D(), c.Store.MaxEvents)
	for _, f := range d.onApply {
		f(c)
	}
	d.cfg = c
	d.log.Info("configuration applied", "mode", c.Mode, "relays", len(c.Relays))
	return nil
}

func (d *daemon) audit(ctx context.Context, actor, remote, action, detail string) {
	if err := d.store.Audit(ctx, store.AuditEntry{Time: time.Now(), Actor: actor, Action: action, Detail: detail, Remote: remote}); err != nil {
		d.log.Error("audit log", "err", err)
	}
}

// Status reports the daemon's state for the API.
func (d *daemon) Status(ctx context.Context) webui.Status {
	c := d.Current()
	word, serving := d.dataPath()
	up := time.Since(d.started)
	s := webui.Status{
		Mode: c.Mode, Version: version, Started: d.started, Serving: serving, DataPath: word,
		Uptime: up.Round(time.Second).String(), UptimeSeconds: up.Seconds(),
		Counters: d.br.Counters(),
	}
	if d.inspect != nil {
		s.Inspect = d.inspect.Stats()
	}
	for _, p := range d.br.Ports() {
		s.Ports = append(s.Ports, webui.PortStatus{
			Name: p.Name, Role: webui.PortRole(p.Role), OperState: p.OperState, MTU: p.MTU,
			RxBytes: p.RxBytes, TxBytes: p.TxBytes, RxPackets: p.RxPackets, TxPackets: p.TxPackets,
		})
	}
	return s
}

// bridgeCollector exports the ruleset's counters and the port statistics.
type bridgeCollector struct{ d *daemon }

var (
	ruleDesc    = prometheus.NewDesc("relaygate_rule_packets_total", "Packets counted by relaygate's nftables counters.", []string{"counter"}, nil)
	portRxDesc  = prometheus.NewDesc("relaygate_port_rx_bytes_total", "Bytes received on an appliance port.", []string{"port", "role"}, nil)
	portTxDesc  = prometheus.NewDesc("relaygate_port_tx_bytes_total", "Bytes sent on an appliance port.", []string{"port", "role"}, nil)
	portUpDesc  = prometheus.NewDesc("relaygate_port_up", "1 when the port's operational state is up.", []string{"port", "role"}, nil)
	servingDesc = prometheus.NewDesc("relaygate_serving", "1 while the data path does what the mode promises: enforce, the proxy serves and the diversion is alive; monitor, passive capture runs on the bridge ports.", nil, nil)
)

func (b *bridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ruleDesc, portRxDesc, portTxDesc, portUpDesc, servingDesc} {
		ch <- d
	}
}

func (b *bridgeCollector) Collect(ch chan<- prometheus.Metric) {
	for name, v := range b.d.br.Counters() {
		ch <- prometheus.MustNewConstMetric(ruleDesc, prometheus.CounterValue, float64(v), name)
	}
	for _, p := range b.d.br.Ports() {
		up := 0.0
		if p.OperState == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(portRxDesc, prometheus.CounterValue, float64(p.RxBytes), p.Name, p.Role)
		ch <- prometheus.MustNewConstMetric(portTxDesc, prometheus.CounterValue, float64(p.TxBytes), p.Name, p.Role)
		ch <- prometheus.MustNewConstMetric(portUpDesc, prometheus.GaugeValue, up, p.Name, p.Role)
	}
	_, serving := b.d.dataPath()
	v := 0.0
	if serving {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(servingDesc, prometheus.GaugeValue, v)
}
