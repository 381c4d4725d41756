package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// MaxInventoryList bounds each list column of hosts_seen (recipient
// domains, remote MXs, AUTH mechanisms): a spamming host must not grow its
// row without limit. The first ones seen are kept.
const MaxInventoryList = 100

// HostSeen is one row of the passive host inventory (the inspect package):
// a client address that spoke SMTP on the wire.
type HostSeen struct {
	Addr           netip.Addr `json:"addr"`
	FirstSeen      time.Time  `json:"first_seen"`
	LastSeen       time.Time  `json:"last_seen"`
	Flows          int64      `json:"flows"`
	Messages       int64      `json:"messages"`
	EncryptedFlows int64      `json:"encrypted_flows"`
	RcptDomains    []string   `json:"rcpt_domains"`
	RemoteMXs      []string   `json:"remote_mxs"`
	AuthMechs      []string   `json:"auth_mechs"`
	RDNS           string     `json:"rdns"`
	// Label names the host's subnet (inspect.labels), e.g. "Koror office".
	// It is not stored: the inspect package sets it when it serves the
	// inventory, so the store leaves it empty.
	Label string `json:"label,omitempty"`
}

// HostDelta is what the inventory learned about a host since its last
// flush: counters are added, lists merged (bounded), times widened, and a
// non-empty RDNS replaces the stored name.
type HostDelta struct {
	Addr           netip.Addr
	FirstSeen      time.Time
	LastSeen       time.Time
	Flows          int64
	Messages       int64
	EncryptedFlows int64
	RcptDomains    []string
	RemoteMXs      []string
	AuthMechs      []string
	RDNS           string
}

// UpsertHosts merges deltas into hosts_seen in one transaction.
func (s *Store) UpsertHosts(ctx context.Context, deltas []HostDelta) (err error) {
	if len(deltas) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("upsert hosts: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	for _, d := range deltas {
		addr := d.Addr.Unmap().WithZone("")
		h, err := scanHost(tx.QueryRowContext(ctx, hostCols+` WHERE addr = ?`, addr.String()))
		switch {
		case errors.Is(err, ErrNotFound):
			h = HostSeen{Addr: addr, FirstSeen: d.FirstSeen, LastSeen: d.LastSeen}
		case err != nil:
			return fmt.Errorf("upsert host %s: %w", addr, err)
		}
		if !d.FirstSeen.IsZero() && (h.FirstSeen.IsZero() || d.FirstSeen.Before(h.FirstSeen)) {
			h.FirstSeen = d.FirstSeen
		}
		if d.LastSeen.After(h.LastSeen) {
			h.LastSeen = d.LastSeen
		}
		h.Flows += d.Flows
		h.Messages += d.Messages
		h.EncryptedFlows += d.EncryptedFlows
		h.RcptDomains = mergeBounded(h.RcptDomains, d.RcptDomains)
		h.RemoteMXs = mergeBounded(h.RemoteMXs, d.RemoteMXs)
		h.AuthMechs = mergeBounded(h.AuthMechs, d.AuthMechs)
		if d.RDNS != "" {
			h.RDNS = d.RDNS
		}
		rd, _ := json.Marshal(h.RcptDomains)
		mx, _ := json.Marshal(h.RemoteMXs)
		am, _ := json.Marshal(h.AuthMechs)
		if _, err := tx.ExecContext(ctx, `INSERT INTO hosts_seen
			(addr, first_seen, last_seen, flows, messages, encrypted_flows, rcpt_domains, remote_mxs, auth_mechs, rdns)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (addr) DO UPDATE SET first_seen = excluded.first_seen, last_seen = excluded.last_seen,
			flows = excluded.flows, messages = excluded.messages, encrypted_flows = excluded.encrypted_flows,
			rcpt_domains = excluded.rcpt_domains, remote_mxs = excluded.remote_mxs,
			auth_mechs = excluded.auth_mechs, rdns = excluded.rdns`,
			addr.String(), nanos(h.FirstSeen), nanos(h.LastSeen), h.Flows, h.Messages, h.EncryptedFlows,
			string(rd), string(mx), string(am), h.RDNS); err != nil {
			return fmt.Errorf("upsert host %s: %w", addr, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("upsert hosts: commit: %w", err)
	}
	return nil
}

// HostsSeen returns the inventory, most recently seen first. limit
// defaults to 100 and is at most 10000.
func (s *Store) HostsSeen(ctx context.Context, limit int) ([]HostSeen, error) {
	rows, err := s.db.QueryContext(ctx, hostCols+` ORDER BY last_seen DESC, addr LIMIT ?`, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("query hosts_seen: %w", err)
	}
	defer rows.Close()
	out := []HostSeen{}
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("query hosts_seen: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query hosts_seen: %w", err)
	}
	return out, nil
}

// HostSeenByAddr returns one host of the inventory, or ErrNotFound.
func (s *Store) HostSeenByAddr(ctx context.Context, addr netip.Addr) (HostSeen, error) {
	addr = addr.Unmap().WithZone("")
	h, err := scanHost(s.db.QueryRowContext(ctx, hostCols+` WHERE addr = ?`, addr.String()))
	if err != nil {
		return HostSeen{}, fmt.Errorf("host %s: %w", addr, err)
	}
	return h, nil
}

const hostCols = `SELECT addr, first_seen, last_seen, flows, messages, encrypted_flows,
	rcpt_domains, remote_mxs, auth_mechs, rdns FROM hosts_seen`

type rowScanner interface{ Scan(...any) error }

func scanHost(r rowScanner) (HostSeen, error) {
	var h HostSeen
	var addr, rd, mx, am string
	var first, last int64
	err := r.Scan(&addr, &first, &last, &h.Flows, &h.Messages, &h.EncryptedFlows, &rd, &mx, &am, &h.RDNS)
	if errors.Is(err, sql.ErrNoRows) {
		return h, ErrNotFound
	}
	if err != nil {
		return h, err
	}
	if h.Addr, err = netip.ParseAddr(addr); err != nil {
		return h, fmt.Errorf("addr %q: %w", addr, err)
	}
	h.FirstSeen, h.LastSeen = fromNanos(first), fromNanos(last)
	for _, l := range []struct {
		src string
		dst *[]string
	}{{rd, &h.RcptDomains}, {mx, &h.RemoteMXs}, {am, &h.AuthMechs}} {
		if err := json.Unmarshal([]byte(l.src), l.dst); err != nil {
			return h, fmt.Errorf("host %s: list column: %w", addr, err)
		}
		if *l.dst == nil {
			*l.dst = []string{}
		}
	}
	return h, nil
}

// mergeBounded appends the new values of add to have, up to MaxInventoryList.
func mergeBounded(have, add []string) []string {
	if have == nil {
		have = []string{}
	}
	for _, v := range add {
		if len(have) >= MaxInventoryList {
			break
		}
		if v != "" && !slices.Contains(have, v) {
			have = append(have, v)
		}
	}
	return have
}
