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
	"strconv"
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

// Scope is what an API token may do.
type Scope string

// The token scopes, from least to most.
const (
	// ScopeMetrics may read GET /metrics and nothing else: the token
	// handed to Prometheus.
	ScopeMetrics Scope = "metrics"
	// ScopeRead may read (GET and HEAD) the API and /metrics, and change
	// nothing.
	ScopeRead Scope = "read"
	// ScopeAdmin may do everything the API offers, except creating tokens
	// (which needs an administrator's password: docs/threat-model.md).
	ScopeAdmin Scope = "admin"
)

// Scopes lists the scopes, from least to most.
var Scopes = []Scope{ScopeMetrics, ScopeRead, ScopeAdmin}

// ParseScope returns the scope named s ("metrics", "read" or "admin").
func ParseScope(s string) (Scope, error) {
	for _, sc := range Scopes {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("unknown token scope %q (want metrics, read or admin)", s)
}

// maxTokenLifetime bounds a token's expiry: ten years.
const maxTokenLifetime = 3650 * 24 * time.Hour

// ParseTokenLifetime parses a token lifetime: a positive whole number of
// hours, days or weeks, e.g. "12h", "90d", "2w". "" and "never" mean no
// expiry (0). Months and years are not units: their length varies.
func ParseTokenLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "never" {
		return 0, nil
	}
	bad := fmt.Errorf("token lifetime %q: want a whole number of hours, days or weeks, e.g. 12h, 90d, 2w (or never)", s)
	if len(s) < 2 {
		return 0, bad
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return 0, bad
	}
	digits := s[:len(s)-1]
	if strings.Trim(digits, "0123456789") != "" || len(digits) > 6 {
		return 0, bad
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n <= 0 {
		return 0, bad
	}
	d := time.Duration(n) * unit
	if d > maxTokenLifetime {
		return 0, fmt.Errorf("token lifetime %q: at most 3650d", s)
	}
	return d, nil
}

// TokenInfo describes a stored API token; the token itself is not stored.
type TokenInfo struct {
	ID       int64      `json:"id"`
	Name     string     `json:"name"`
	Scope    Scope      `json:"scope"`
	Created  time.Time  `json:"created"`
	LastUsed time.Time  `json:"last_used"` // zero if never used
	Expires  *time.Time `json:"expires"`   // nil (JSON null): never
}

// Expired reports whether the token has expired at now.
func (ti TokenInfo) Expired(now time.Time) bool {
	return ti.Expires != nil && !now.Before(*ti.Expires)
}

// NewToken is what CreateScopedToken needs to know.
type NewToken struct {
	Name  string // e.g. "prometheus"
	Scope Scope  // "" means ScopeAdmin
	// Lifetime is how long the token is valid from its creation; 0 means
	// it never expires.
	Lifetime time.Duration
}

// CreateToken creates an admin-scoped API bearer token that never expires,
// named name (e.g. "monitoring"), and returns it; see CreateScopedToken.
func (s *Store) CreateToken(ctx context.Context, name string) (string, error) {
	return s.CreateScopedToken(ctx, NewToken{Name: name})
}

// CreateScopedToken creates an API bearer token and returns it. Only its
// SHA-256 hash is stored: the token is shown once. A plain hash is enough
// because the token has 256 random bits; there is nothing to brute-force
// that a slow hash would protect.
func (s *Store) CreateScopedToken(ctx context.Context, nt NewToken) (string, error) {
	name := strings.TrimSpace(nt.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return "", fmt.Errorf("create token: name must be 1 to 100 characters, got %q", name)
	}
	scope := nt.Scope
	if scope == "" {
		scope = ScopeAdmin
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return "", fmt.Errorf("create token %q: %w", name, err)
	}
	if nt.Lifetime < 0 || nt.Lifetime > maxTokenLifetime {
		return "", fmt.Errorf("create token %q: lifetime %v out of range (0 to 3650 days)", name, nt.Lifetime)
	}
	var b [32]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(token))
	now := s.now()
	var expires int64
	if nt.Lifetime > 0 {
		expires = nanos(now.Add(nt.Lifetime))
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO tokens (name, hash, created, scope, expires) VALUES (?, ?, ?, ?, ?)`,
		name, h[:], nanos(now), string(scope), expires); err != nil {
		return "", fmt.Errorf("create token %q: %w", name, err)
	}
	return token, nil
}

// CheckToken reports whether token is a valid, unrevoked, unexpired API
// token, and describes it. For an expired token ok is false and ti still
// describes it, so that the caller can say why it was refused; for an
// unknown one ti is zero. The lookup is by hash, so its timing reveals
// nothing about stored tokens. err is set only when the database failed.
func (s *Store) CheckToken(ctx context.Context, token string) (ti TokenInfo, ok bool, err error) {
	if len(token) != tokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return TokenInfo{}, false, nil
	}
	h := sha256.Sum256([]byte(token))
	var stored []byte
	row := s.db.QueryRowContext(ctx, `SELECT hash, `+tokenColumns+` FROM tokens WHERE hash = ?`, h[:])
	ti, err = scanToken(row, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return TokenInfo{}, false, nil
	}
	if err != nil {
		return TokenInfo{}, false, fmt.Errorf("check token: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, h[:]) != 1 {
		return TokenInfo{}, false, nil
	}
	now := s.now()
	if ti.Expired(now) {
		return ti, false, nil
	}
	if now.Sub(ti.LastUsed) >= lastUsedGranularity {
		// Best effort: a busy database must not fail authentication.
		if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_used = ? WHERE id = ?`, nanos(now), ti.ID); err != nil {
			s.log.Warn("updating token last_used failed", "token_id", ti.ID, "err", err)
		}
	}
	return ti, true, nil
}

// tokenColumns are the columns scanToken reads, in its order.
const tokenColumns = `id, name, scope, created, last_used, expires`

// scanToken reads a row of tokenColumns, after the columns in pre.
func scanToken(row interface{ Scan(...any) error }, pre ...any) (TokenInfo, error) {
	var (
		ti                        TokenInfo
		scope                     string
		created, lastUsed, expire int64
	)
	if err := row.Scan(append(pre, &ti.ID, &ti.Name, &scope, &created, &lastUsed, &expire)...); err != nil {
		return TokenInfo{}, err
	}
	ti.Scope = Scope(scope)
	ti.Created, ti.LastUsed = fromNanos(created), fromNanos(lastUsed)
	if expire != 0 {
		e := fromNanos(expire)
		ti.Expires = &e
	}
	return ti, nil
}

// Tokens lists the stored tokens, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]TokenInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []TokenInfo{}
	for rows.Next() {
		ti, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
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
