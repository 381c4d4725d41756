//go:build !linux

package neighbor

import (
	"context"
	"errors"
	"log/slog"
)

// Listen is Linux only (AF_PACKET).
func Listen(ctx context.Context, t *Table, iface, side string, log *slog.Logger) error {
	return errors.New("neighbor: LLDP/CDP listening needs Linux")
}
