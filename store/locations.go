package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/locate"
)

// MaxLocations bounds the locations table: one row per located address,
// those looked up longest ago going first.
const MaxLocations = 65536

// MaxAddressesByMAC bounds the addresses AddressesByMAC returns: one
// machine has a few (IPv4, IPv6 privacy and stable addresses), a router
// seen through a misconfigured switch may have thousands.
const MaxAddressesByMAC = 64

// maxLocationError bounds the stored error text of one lookup.
const maxLocationError = 1024

// LocationRecord is what the store knows of where an address is: the
// best answer kept (Location) and how the last lookup went. The answer
// kept is the latest found one, so that the location survives the
// switches' MAC tables ageing out and the PC going home; a later answer
// that is not found replaces it only when nothing was found before, or
// when it names another MAC (the address now belongs to another machine).
type LocationRecord struct {
	locate.Location
	// LastAttempt is when the address was last looked up.
	LastAttempt time.Time `json:"last_attempt"`
	// LastStatus is how that lookup went: found, mac_only, not_found or
	// failed.
	LastStatus locate.Status `json:"last_status"`
	// LastError is why that lookup failed, if it did.
	LastError string `json:"last_error,omitempty"`
}

// Known reports whether the record holds an answer with a MAC (found or
// mac_only).
func (r LocationRecord) Known() bool { return r.MAC != "" }

// keeps reports whether the kept answer old stays when the answer nu
// arrives: a found answer is only replaced by another found answer or by
// an answer naming another MAC.
func keeps(old, nu locate.Location) bool {
	switch {
	case nu.Status == locate.Found:
		return false
	case old.Status == locate.Found || old.Status == locate.MACOnly:
		return nu.MAC == "" || nu.MAC == old.MAC && old.Status == locate.Found
	}
	return false
}

// SaveLocation stores the answer of one lookup of loc.Addr (at
// loc.SeenAt, or now when zero).
func (s *Store) SaveLocation(ctx context.Context, loc locate.Location) (err error) {
	addr := loc.Addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return errors.New("save location: invalid address")
	}
	loc.Addr = addr
	if loc.SeenAt.IsZero() {
		loc.SeenAt = s.now()
	}
	loc.SeenAt = loc.SeenAt.UTC()
	loc.Error = event.Clip(loc.Error, maxLocationError)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save location %s: begin: %w", addr, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	kept := loc
	var raw string
	err = tx.QueryRowContext(ctx, `SELECT location FROM locations WHERE addr = ?`, addr.String()).Scan(&raw)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("save location %s: %w", addr, err)
	default:
		var old locate.Location
		if err := json.Unmarshal([]byte(raw), &old); err != nil {
			return fmt.Errorf("save location %s: stored location: %w", addr, err)
		}
		if keeps(old, loc) {
			kept = old
		}
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return fmt.Errorf("save location %s: %w", addr, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO locations (addr, updated, last_status, last_error, mac, location)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (addr) DO UPDATE SET updated = excluded.updated, last_status = excluded.last_status,
		last_error = excluded.last_error, mac = excluded.mac, location = excluded.location`,
		addr.String(), nanos(loc.SeenAt), string(loc.Status), loc.Error, kept.MAC, string(b)); err != nil {
		return fmt.Errorf("save location %s: %w", addr, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save location %s: commit: %w", addr, err)
	}
	return nil
}

const locationCols = `SELECT addr, updated, last_status, last_error, location FROM locations`

func scanLocation(r rowScanner) (LocationRecord, error) {
	var rec LocationRecord
	var addr, status, raw string
	var updated int64
	if err := r.Scan(&addr, &updated, &status, &rec.LastError, &raw); err != nil {
		return rec, err
	}
	if err := json.Unmarshal([]byte(raw), &rec.Location); err != nil {
		return rec, fmt.Errorf("location of %s: %w", addr, err)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return rec, fmt.Errorf("location addr %q: %w", addr, err)
	}
	rec.Addr, rec.LastAttempt, rec.LastStatus = a, fromNanos(updated), locate.Status(status)
	return rec, nil
}

// Location returns what the store knows of where addr is; ok is false
// when it was never looked up.
func (s *Store) Location(ctx context.Context, addr netip.Addr) (LocationRecord, bool, error) {
	addr = addr.Unmap().WithZone("")
	rec, err := scanLocation(s.db.QueryRowContext(ctx, locationCols+` WHERE addr = ?`, addr.String()))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return LocationRecord{}, false, nil
	case err != nil:
		return LocationRecord{}, false, fmt.Errorf("location %s: %w", addr, err)
	}
	return rec, true, nil
}

// LocationsFor returns the records of those of addrs that were looked up,
// in one query (the list pages).
func (s *Store) LocationsFor(ctx context.Context, addrs []netip.Addr) (map[netip.Addr]LocationRecord, error) {
	out := map[netip.Addr]LocationRecord{}
	if len(addrs) == 0 {
		return out, nil
	}
	keys := make([]string, len(addrs))
	for i, a := range addrs {
		keys[i] = a.Unmap().WithZone("").String()
	}
	list, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("locations of %d addresses: %w", len(addrs), err)
	}
	rows, err := s.db.QueryContext(ctx, locationCols+` WHERE addr IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, fmt.Errorf("locations of %d addresses: %w", len(addrs), err)
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := scanLocation(rows)
		if err != nil {
			return nil, fmt.Errorf("locations of %d addresses: %w", len(addrs), err)
		}
		out[rec.Addr] = rec
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("locations of %d addresses: %w", len(addrs), err)
	}
	return out, nil
}

// AddressesByMAC returns the addresses whose kept answer names mac (lower
// case colon form), in address order, at most MaxAddressesByMAC: one
// machine's IPv4 and IPv6 addresses.
func (s *Store) AddressesByMAC(ctx context.Context, mac string) ([]netip.Addr, error) {
	mac = strings.ToLower(mac)
	out := []netip.Addr{}
	if mac == "" {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT addr FROM locations WHERE mac = ? ORDER BY addr LIMIT ?`, mac, MaxAddressesByMAC)
	if err != nil {
		return nil, fmt.Errorf("addresses of MAC %s: %w", mac, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("addresses of MAC %s: %w", mac, err)
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("addresses of MAC %s: addr %q: %w", mac, v, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("addresses of MAC %s: %w", mac, err)
	}
	return out, nil
}

// pruneLocations ages the locations with the retention (by their last
// lookup) and keeps at most MaxLocations, those looked up longest ago
// going first.
func (s *Store) pruneLocations(ctx context.Context, cutoff time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM locations WHERE updated < ?`, nanos(cutoff)); err != nil {
		return fmt.Errorf("prune locations by age: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM locations WHERE addr IN
		(SELECT addr FROM locations ORDER BY updated DESC, addr LIMIT -1 OFFSET ?)`, s.maxLocations); err != nil {
		return fmt.Errorf("prune locations by count: %w", err)
	}
	return nil
}
