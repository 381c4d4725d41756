package reputation

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/internal/testutil/fakemx"
)

type collector struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collector) add(s string) {
	c.mu.Lock()
	c.msgs = append(c.msgs, s)
	c.mu.Unlock()
}

func (c *collector) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := append([]string(nil), c.msgs...)
		c.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func udpSyslog(t *testing.T) (string, *collector) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	c := &collector{}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			c.add(string(buf[:n]))
		}
	}()
	return pc.LocalAddr().String(), c
}

func tcpSyslog(t *testing.T) (string, *collector) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &collector{}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					var n int
					if _, err := fmtSscan(r, &n); err != nil {
						return
					}
					buf := make([]byte, n)
					if _, err := io.ReadFull(r, buf); err != nil {
						return
					}
					c.add(string(buf))
				}
			}()
		}
	}()
	return ln.Addr().String(), c
}

// fmtSscan reads the octet count of an RFC 6587 frame ("123 ").
func fmtSscan(r *bufio.Reader, n *int) (int, error) {
	s, err := r.ReadString(' ')
	if err != nil {
		return 0, err
	}
	*n = 0
	for _, ch := range strings.TrimSpace(s) {
		*n = *n*10 + int(ch-'0')
	}
	return 1, nil
}

func TestAlertChannels(t *testing.T) {
	udpAddr, udp := udpSyslog(t)
	tcpAddr, tcp := tcpSyslog(t)
	hooks := &collector{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", 400)
			return
		}
		hooks.add(body["subject"].(string))
	}))
	defer hook.Close()
	mx := fakemx.Start(t, "127.0.0.1:0")

	cfg := config.Alerts{
		Email:       config.EmailAlert{To: []string{"noc@corp.example"}, From: "relaygate@corp.example", Relay: mx.Addr().String()},
		Syslog:      config.SyslogAlert{Address: udpAddr, Transport: "udp"},
		Webhook:     config.WebhookAlert{URL: hook.URL},
		DigestAfter: 10, Window: config.Duration(time.Minute),
	}
	a := NewAlerter(slog.New(slog.DiscardHandler), cfg)
	a.Send(context.Background(), Alert{Subject: "198.51.100.25 is listed on zen.spamhaus.org", Body: "evidence"})
	if got := udp.wait(t, 1); len(got) != 1 || !strings.HasPrefix(got[0], "<28>1 ") || !strings.Contains(got[0], "relaygate") || !strings.Contains(got[0], "listed on zen") {
		t.Errorf("syslog UDP got %q; want one RFC 5424 message", got)
	}
	if got := hooks.wait(t, 1); len(got) != 1 || got[0] != "198.51.100.25 is listed on zen.spamhaus.org" {
		t.Errorf("webhook got %q", got)
	}
	if msgs := mx.Messages(); len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "Subject: 198.51.100.25 is listed") || msgs[0].To[0] != "noc@corp.example" {
		t.Errorf("email: %+v", msgs)
	}

	// Test buttons: each channel alone; TCP syslog with octet counting.
	cfg.Syslog = config.SyslogAlert{Address: tcpAddr, Transport: "tcp"}
	a.SetConfig(cfg)
	for _, ch := range []string{ChannelEmail, ChannelSyslog, ChannelWebhook} {
		if err := a.Test(context.Background(), ch); err != nil {
			t.Errorf("Test(%s) = %v", ch, err)
		}
	}
	if got := tcp.wait(t, 1); len(got) != 1 || !strings.Contains(got[0], "test alert") {
		t.Errorf("syslog TCP got %q", got)
	}
	if err := a.Test(context.Background(), "pager"); err == nil {
		t.Errorf("Test(pager) succeeded")
	}
	a.SetConfig(config.Alerts{DigestAfter: 1, Window: config.Duration(time.Minute)})
	if err := a.Test(context.Background(), ChannelWebhook); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("Test of an unconfigured channel = %v", err)
	}
	// A webhook that fails is reported.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) }))
	defer bad.Close()
	a.SetConfig(config.Alerts{Webhook: config.WebhookAlert{URL: bad.URL}, DigestAfter: 1, Window: config.Duration(time.Minute)})
	if err := a.Test(context.Background(), ChannelWebhook); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("failing webhook: %v", err)
	}
}

func TestAlertDigest(t *testing.T) {
	hooks := &collector{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		hooks.add(body["subject"].(string) + "\n" + body["body"].(string))
	}))
	defer hook.Close()
	a := NewAlerter(slog.New(slog.DiscardHandler), config.Alerts{Webhook: config.WebhookAlert{URL: hook.URL},
		DigestAfter: 2, Window: config.Duration(300 * time.Millisecond)})
	for i := range 7 {
		a.Send(context.Background(), Alert{Subject: "alert " + string(rune('A'+i)), Body: "b"})
	}
	got := hooks.wait(t, 3)
	if len(got) != 3 {
		t.Fatalf("got %d deliveries; want 2 alerts and 1 digest: %q", len(got), got)
	}
	if !strings.HasPrefix(got[2], "relaygate digest: 5 more alerts") || !strings.Contains(got[2], "alert G") {
		t.Errorf("digest = %q", got[2])
	}
	// After the window, alerts go out one by one again.
	time.Sleep(350 * time.Millisecond)
	a.Send(context.Background(), Alert{Subject: "later", Body: "b"})
	if got := hooks.wait(t, 4); len(got) != 4 || !strings.HasPrefix(got[3], "later") {
		t.Errorf("after the window: %q", got)
	}
}
