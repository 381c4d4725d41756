package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// TokenPrefix starts every API bearer token, so that leaked tokens are easy
// to recognise (and to scan for).
const TokenPrefix = "rg_"

// tokenLen is the length of TokenPrefix plus 32 random bytes in unpadded
// base64url.
var tokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// lastUsedGranularity limits last_used updates, so that a busy API client
// does not turn every request into a database write.
const lastUsedGranularity = time.Minute

// TokenInfo describes a stored API token; the token itself is not stored.
type TokenInfo struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"` // zero if never used
}

// CreateToken creates an API bearer token named name (e.g. "monitoring") and
// returns it. Only its SHA-256 hash is stored: the token is shown once.
// A plain hash is enough because the token has 256 random bits; there is
// nothing to brute-force that a slow hash would protect.
func (s *Store) CreateToken(ctx context.Context, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return "", fmt.Errorf("create token: name must be 1 to 100 characters, got %q", name)
	}
	var b [32]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(token))
	if _, err := s.db.ExecContext(ctx, `INSERT INTO tokens (name, hash, created) VALUES (?, ?, ?)`,
		name, h[:], nanos(s.now())); err != nil {
		return "", fmt.Errorf("create token %q: %w", name, err)
	}
	return token, nil
}

// CheckToken reports whether token is a valid, unrevoked API token, and its
// name. The lookup is by hash, so its timing reveals nothing about stored
// tokens. err is set only when the database failed.
func (s *Store) CheckToken(ctx context.Context, token string) (name string, ok bool, err error) {
	if len(token) != tokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return "", false, nil
	}
	h := sha256.Sum256([]byte(token))
	var (
		id       int64
		stored   []byte
		lastUsed int64
	)
	err = s.db.QueryRowContext(ctx, `SELECT id, name, hash, last_used FROM tokens WHERE hash = ?`, h[:]).
		Scan(&id, &name, &stored, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("check token: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, h[:]) != 1 {
		return "", false, nil
	}
	now := s.now()
	if now.Sub(fromNanos(lastUsed)) >= lastUsedGranularity {
		// Best effort: a busy database must not fail authentication.
		if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_used = ? WHERE id = ?`, nanos(now), id); err != nil {
			s.log.Warn("updating token last_used failed", "token_id", id, "err", err)
		}
	}
	return name, true, nil
}

// Tokens lists the stored tokens, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]TokenInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created, last_used FROM tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []TokenInfo{}
	for rows.Next() {
		var ti TokenInfo
		var created, lastUsed int64
		if err := rows.Scan(&ti.ID, &ti.Name, &created, &lastUsed); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		ti.Created, ti.LastUsed = fromNanos(created), fromNanos(lastUsed)
		out = append(out, ti)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken deletes the token with the given ID; it wraps ErrNotFound
// when there is none.
func (s *Store) RevokeToken(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("revoke token %d: %w", id, ErrNotFound)
	}
	return nil
}
