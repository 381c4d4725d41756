package reputation

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/relaygate/relaygate/config"
)

// Alert is one thing the admin must look at.
type Alert struct {
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
}

// Channels of the alerter.
const (
	ChannelEmail   = "email"
	ChannelSyslog  = "syslog"
	ChannelWebhook = "webhook"
)

// Alerter sends alerts to the configured channels. When more than
// DigestAfter alerts arrive within Window, the rest of the window's alerts
// go out as one digest at its end, so that a flood sends a digest, not a
// flood.
type Alerter struct {
	log      *slog.Logger
	hostname string
	http     *http.Client
	now      func() time.Time

	mu      sync.Mutex
	cfg     config.Alerts
	winEnd  time.Time
	sent    int     // alerts sent individually in the current window
	pending []Alert // held for the digest
	timer   *time.Timer
}

// NewAlerter returns an alerter for cfg.
func NewAlerter(logger *slog.Logger, cfg config.Alerts) *Alerter {
	h, _ := os.Hostname()
	return &Alerter{
		log: logger.With("component", "alerts"), hostname: h, cfg: cfg, now: time.Now,
		http: &http.Client{Timeout: 10 * time.Second},
	}
}

// SetConfig changes the channels live.
func (a *Alerter) SetConfig(cfg config.Alerts) {
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
}

// Send delivers al now, or holds it for the window's digest.
func (a *Alerter) Send(ctx context.Context, al Alert) {
	if al.Time.IsZero() {
		al.Time = a.now()
	}
	a.mu.Lock()
	now := a.now()
	if now.After(a.winEnd) {
		a.winEnd, a.sent = now.Add(a.cfg.Window.D()), 0
	}
	if a.sent >= a.cfg.DigestAfter {
		a.pending = append(a.pending, al)
		if a.timer == nil {
			a.timer = time.AfterFunc(a.winEnd.Sub(now), func() { a.flushDigest(context.Background()) })
		}
		a.mu.Unlock()
		return
	}
	a.sent++
	cfg := a.cfg
	a.mu.Unlock()
	a.deliver(ctx, cfg, al)
}

// FlushDigest sends what the digest holds now (also called by the timer).
func (a *Alerter) flushDigest(ctx context.Context) {
	a.mu.Lock()
	held := a.pending
	a.pending, a.timer = nil, nil
	cfg := a.cfg
	a.mu.Unlock()
	if len(held) == 0 {
		return
	}
	var b strings.Builder
	for _, al := range held {
		fmt.Fprintf(&b, "%s  %s\n%s\n\n", al.Time.UTC().Format(time.RFC3339), al.Subject, al.Body)
	}
	a.deliver(ctx, cfg, Alert{Time: a.now(), Subject: fmt.Sprintf("relaygate digest: %d more alerts", len(held)), Body: b.String()})
}

func (a *Alerter) deliver(ctx context.Context, cfg config.Alerts, al Alert) {
	for _, ch := range []string{ChannelEmail, ChannelSyslog, ChannelWebhook} {
		if err := a.sendTo(ctx, cfg, ch, al); err != nil && !errors.Is(err, errNotConfigured) {
			a.log.Error("alert not delivered", "channel", ch, "subject", al.Subject, "err", err)
		}
	}
}

var errNotConfigured = errors.New("channel not configured")

// Test sends a test alert on one channel and reports the outcome.
func (a *Alerter) Test(ctx context.Context, channel string) error {
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	err := a.sendTo(ctx, cfg, channel, Alert{Time: a.now(), Subject: "relaygate test alert",
		Body: "This is a test of the " + channel + " alert channel of relaygate on " + a.hostname + "."})
	if errors.Is(err, errNotConfigured) {
		return fmt.Errorf("%s alerts are not configured (alerts.%s)", channel, channel)
	}
	return err
}

func (a *Alerter) sendTo(ctx context.Context, cfg config.Alerts, channel string, al Alert) error {
	switch channel {
	case ChannelEmail:
		if len(cfg.Email.To) == 0 {
			return errNotConfigured
		}
		return a.sendEmail(cfg.Email, al)
	case ChannelSyslog:
		if cfg.Syslog.Address == "" {
			return errNotConfigured
		}
		return a.sendSyslog(ctx, cfg.Syslog, al)
	case ChannelWebhook:
		if cfg.Webhook.URL == "" {
			return errNotConfigured
		}
		return a.sendWebhook(ctx, cfg.Webhook, al)
	}
	return fmt.Errorf("unknown alert channel %q (want email, syslog or webhook)", channel)
}

func (a *Alerter) sendEmail(c config.EmailAlert, al Alert) error {
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nAuto-Submitted: auto-generated\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		c.From, strings.Join(c.To, ", "), al.Subject, al.Time.Format(time.RFC1123Z))
	msg.WriteString(strings.ReplaceAll(al.Body, "\n", "\r\n"))
	msg.WriteString("\r\n")
	if err := smtp.SendMail(c.Relay, nil, c.From, c.To, msg.Bytes()); err != nil {
		return fmt.Errorf("email alert via %s: %w", c.Relay, err)
	}
	return nil
}

// syslogMessage formats an RFC 5424 message: facility daemon (3),
// severity warning (4).
func syslogMessage(hostname string, al Alert) string {
	const pri = 3*8 + 4
	if hostname == "" {
		hostname = "-"
	}
	msg := strings.ReplaceAll(al.Subject+": "+al.Body, "\n", " ")
	return fmt.Sprintf("<%d>1 %s %s relaygate %d alert - \xEF\xBB\xBF%s", pri,
		al.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), hostname, os.Getpid(), msg)
}

func (a *Alerter) sendSyslog(ctx context.Context, c config.SyslogAlert, al Alert) error {
	msg := syslogMessage(a.hostname, al)
	d := &net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	switch c.Transport {
	case "tls":
		host, _, _ := net.SplitHostPort(c.Address)
		conn, err = (&tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}}).DialContext(ctx, "tcp", c.Address)
	case "tcp":
		conn, err = d.DialContext(ctx, "tcp", c.Address)
	default:
		conn, err = d.DialContext(ctx, "udp", c.Address)
	}
	if err != nil {
		return fmt.Errorf("syslog alert to %s: %w", c.Address, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	frame := msg
	if c.Transport != "udp" {
		// RFC 6587 octet counting.
		frame = fmt.Sprintf("%d %s", len(msg), msg)
	}
	if _, err := conn.Write([]byte(frame)); err != nil {
		return fmt.Errorf("syslog alert to %s: %w", c.Address, err)
	}
	return nil
}

func (a *Alerter) sendWebhook(ctx context.Context, c config.WebhookAlert, al Alert) error {
	body, _ := json.Marshal(map[string]any{"source": "relaygate", "host": a.hostname, "time": al.Time.UTC(), "subject": al.Subject, "body": al.Body})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook alert: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("webhook alert: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook alert: %s answered %s", c.URL, resp.Status)
	}
	return nil
}
