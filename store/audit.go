package store

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry is one administrative change: who did what, when, from where.
type AuditEntry struct {
	ID     int64     `json:"id"`
	Time   time.Time `json:"time"`   // default: now
	Actor  string    `json:"actor"`  // user or token name, e.g. "admin" or "token:monitoring"
	Action string    `json:"action"` // e.g. "config.update", "token.revoke"
	Detail string    `json:"detail"`
	Remote string    `json:"remote"` // client address of the request, e.g. 192.0.2.7
}

// Audit appends a to the audit log. Unlike Record it writes synchronously:
// an admin change must not be applied without its audit entry.
func (s *Store) Audit(ctx context.Context, a AuditEntry) error {
	if a.Time.IsZero() {
		a.Time = s.now()
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO audit (time, actor, action, detail, remote) VALUES (?, ?, ?, ?, ?)`,
		nanos(a.Time), a.Actor, a.Action, a.Detail, a.Remote); err != nil {
		return fmt.Errorf("audit %s by %s: %w", a.Action, a.Actor, err)
	}
	s.observeAudit(a)
	return nil
}

// AuditLog returns the newest audit entries first; limit defaults to 100 and
// is at most 10000.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, time, actor, action, detail, remote FROM audit
		ORDER BY time DESC, id DESC LIMIT ?`, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var a AuditEntry
		var t int64
		if err := rows.Scan(&a.ID, &t, &a.Actor, &a.Action, &a.Detail, &a.Remote); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		a.Time = fromNanos(t)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
