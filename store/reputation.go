package store

import (
	"context"
	"fmt"
	"time"
)

// ReputationCheck is one stored blocklist check.
type ReputationCheck struct {
	Time    time.Time `json:"time"`
	Address string    `json:"address"`
	Zone    string    `json:"zone"`
	Status  string    `json:"status"`
	Code    string    `json:"code,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// AddReputation stores the results of one round of blocklist checks.
func (s *Store) AddReputation(ctx context.Context, checks []ReputationCheck) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add reputation: begin: %w", err)
	}
	defer tx.Rollback()
	for _, c := range checks {
		if _, err := tx.ExecContext(ctx, `INSERT INTO reputation (time, address, zone, status, code, reason, error)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, nanos(c.Time), c.Address, c.Zone, c.Status, c.Code, c.Reason, c.Error); err != nil {
			return fmt.Errorf("add reputation: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add reputation: commit: %w", err)
	}
	return nil
}

// ReputationHistory returns stored checks, newest first; address and zone
// filter when not empty.
func (s *Store) ReputationHistory(ctx context.Context, address, zone string, limit int) ([]ReputationCheck, error) {
	q := `SELECT time, address, zone, status, code, reason, error FROM reputation WHERE 1=1`
	var args []any
	if address != "" {
		q += ` AND address = ?`
		args = append(args, address)
	}
	if zone != "" {
		q += ` AND zone = ?`
		args = append(args, zone)
	}
	q += ` ORDER BY time DESC LIMIT ?`
	args = append(args, clampLimit(limit))
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reputation history: %w", err)
	}
	defer rows.Close()
	out := []ReputationCheck{}
	for rows.Next() {
		var c ReputationCheck
		var t int64
		if err := rows.Scan(&t, &c.Address, &c.Zone, &c.Status, &c.Code, &c.Reason, &c.Error); err != nil {
			return nil, fmt.Errorf("reputation history: %w", err)
		}
		c.Time = fromNanos(t)
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastReputation returns the newest listed-or-clean status of every
// address and zone, so that a restart does not raise old alerts again.
func (s *Store) LastReputation(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT address, zone, status FROM reputation r
		WHERE status IN ('listed', 'clean') AND time = (SELECT MAX(time) FROM reputation
		WHERE address = r.address AND zone = r.zone AND status IN ('listed', 'clean'))`)
	if err != nil {
		return nil, fmt.Errorf("last reputation: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var a, z, st string
		if err := rows.Scan(&a, &z, &st); err != nil {
			return nil, fmt.Errorf("last reputation: %w", err)
		}
		out[a+"|"+z] = st
	}
	return out, rows.Err()
}
