package smtpproxy

import (
	"bytes"
	"log/slog"
	"net/netip"
	"testing"
)

// TestConnLoggerAsWith: a connection's logger writes what Logger.With would
// have written, in text and JSON, also after WithAttrs and WithGroup, and
// nothing below the handler's level.
func TestConnLoggerAsWith(t *testing.T) {
	src := netip.MustParseAddr("10.10.0.25")
	dst := netip.MustParseAddrPort("203.0.113.25:25")
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	for _, format := range []string{"text", "json"} {
		newBase := func(buf *bytes.Buffer) *slog.Logger {
			o := &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: noTime}
			if format == "json" {
				return slog.New(slog.NewJSONHandler(buf, o)).With("component", "smtpproxy")
			}
			return slog.New(slog.NewTextHandler(buf, o)).With("component", "smtpproxy")
		}
		write := func(l *slog.Logger) {
			l.Info("not shown")
			l.Warn("upstream gone", "relay", "office", "after", 3)
			l.With("mx", "mx.example").Error("dial", "err", "refused")
			l.WithGroup("tls").Warn("handshake", "version", "1.3")
		}
		var want, got bytes.Buffer
		write(newBase(&want).With("conn_id", uint64(7), "client", src.String(), "orig_dst", dst.String()))
		write(connLogger(newBase(&got), slog.Uint64("conn_id", 7), slog.Any("client", src), slog.Any("orig_dst", dst)))
		if got.String() != want.String() {
			t.Errorf("%s:\n got %s\nwant %s", format, got.String(), want.String())
		}
		if n := bytes.Count(want.Bytes(), []byte("\n")); n != 3 {
			t.Errorf("%s: %d lines written, want 3:\n%s", format, n, want.String())
		}
	}
}
