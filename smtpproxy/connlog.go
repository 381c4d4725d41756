package smtpproxy

import (
	"context"
	"log/slog"
)

// connHandler gives every record of one connection the connection's
// attributes, like Logger.With, but only when a record is actually
// handled. Logger.With formats its attributes into the handler at once, and
// most sessions log nothing at the default level: that was work and
// garbage on every session.
type connHandler struct {
	next  slog.Handler
	attrs []slog.Attr
}

// connLogger returns a logger whose records carry attrs first, as
// base.With(attrs) would.
func connLogger(base *slog.Logger, attrs ...slog.Attr) *slog.Logger {
	return slog.New(connHandler{next: base.Handler(), attrs: attrs})
}

func (h connHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h connHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs and WithGroup are rare on a connection's logger: they fix the
// connection's attributes into the handler then, in front of the new ones.
func (h connHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.next.WithAttrs(h.attrs).WithAttrs(as)
}

func (h connHandler) WithGroup(name string) slog.Handler {
	return h.next.WithAttrs(h.attrs).WithGroup(name)
}
