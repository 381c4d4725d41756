package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrExists is returned when a record that must be unique or first
// already exists.
var ErrExists = errors.New("already exists")

// User is a web UI administrator. Only a password hash is stored (argon2id
// in PHC string form, chosen by the web UI).
type User struct {
	Username     string    `json:"username"`
	PasswordHash string    `json:"-"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
}

// Session is a web UI login. IDHash is the SHA-256 of the session cookie:
// the cookie itself is never stored, so a copy of the database does not
// log anyone in.
type Session struct {
	IDHash   []byte
	Username string
	// CSRF is the token every state-changing browser request must carry.
	CSRF     string
	Created  time.Time
	LastSeen time.Time
	// Remote is the client address at login, e.g. 192.0.2.7.
	Remote string
}

// UserCount returns the number of administrators.
func (s *Store) UserCount(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// CreateFirstUser creates the first administrator. It wraps ErrExists when
// any administrator exists already, so that a setup token cannot be used
// to add a second one behind the first one's back.
func (s *Store) CreateFirstUser(ctx context.Context, username, passwordHash string) error {
	now := nanos(s.now())
	res, err := s.db.ExecContext(ctx, `INSERT INTO users (username, password_hash, created, updated)
		SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users)`, username, passwordHash, now, now)
	if err != nil {
		return fmt.Errorf("create user %q: %w", username, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("create user %q: %w", username, err)
	}
	if n == 0 {
		return fmt.Errorf("create user %q: an administrator %w", username, ErrExists)
	}
	return nil
}

// User returns the administrator named username; it wraps ErrNotFound
// when there is none.
func (s *Store) User(ctx context.Context, username string) (User, error) {
	u := User{Username: username}
	var created, updated int64
	err := s.db.QueryRowContext(ctx, `SELECT password_hash, created, updated FROM users WHERE username = ?`, username).
		Scan(&u.PasswordHash, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", username, err)
	}
	u.Created, u.Updated = fromNanos(created), fromNanos(updated)
	return u, nil
}

// SetPasswordHash replaces an administrator's password hash; it wraps
// ErrNotFound when there is no such user.
func (s *Store) SetPasswordHash(ctx context.Context, username, passwordHash string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated = ? WHERE username = ?`,
		passwordHash, nanos(s.now()), username)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", username, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set password of %q: %w", username, err)
	} else if n == 0 {
		return fmt.Errorf("set password of %q: %w", username, ErrNotFound)
	}
	return nil
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	if len(se.IDHash) == 0 {
		return errors.New("create session: empty id hash")
	}
	if se.Created.IsZero() {
		se.Created = s.now()
	}
	if se.LastSeen.IsZero() {
		se.LastSeen = se.Created
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO sessions (id_hash, username, csrf, created, last_seen, remote)
		VALUES (?, ?, ?, ?, ?, ?)`, se.IDHash, se.Username, se.CSRF, nanos(se.Created), nanos(se.LastSeen), se.Remote); err != nil {
		return fmt.Errorf("create session for %q: %w", se.Username, err)
	}
	return nil
}

// Session returns the session with the given id hash; it wraps ErrNotFound
// when there is none.
func (s *Store) Session(ctx context.Context, idHash []byte) (Session, error) {
	se := Session{IDHash: idHash}
	var created, lastSeen int64
	err := s.db.QueryRowContext(ctx, `SELECT username, csrf, created, last_seen, remote FROM sessions WHERE id_hash = ?`, idHash).
		Scan(&se.Username, &se.CSRF, &created, &lastSeen, &se.Remote)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	se.Created, se.LastSeen = fromNanos(created), fromNanos(lastSeen)
	return se, nil
}

// TouchSession records activity on a session at t.
func (s *Store) TouchSession(ctx context.Context, idHash []byte, t time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_seen = ? WHERE id_hash = ?`, nanos(t), idHash); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// DeleteSession removes a session (logout, expiry). Deleting a missing
// session is not an error.
func (s *Store) DeleteSession(ctx context.Context, idHash []byte) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions removes every session of username, e.g. after a
// password change.
func (s *Store) DeleteUserSessions(ctx context.Context, username string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE username = ?`, username); err != nil {
		return fmt.Errorf("delete sessions of %q: %w", username, err)
	}
	return nil
}

// PruneSessions deletes sessions last seen before idleBefore or created
// before createdBefore, and returns how many.
func (s *Store) PruneSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen < ? OR created < ?`, nanos(idleBefore), nanos(createdBefore))
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	return n, nil
}

// Setting returns the value of a setting and whether it exists.
func (s *Store) Setting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("setting %q: %w", key, err)
	}
	return v, true, nil
}

// SetSetting creates or replaces a setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("set setting %q: %w", key, err)
	}
	return nil
}

// TakeSetting deletes a setting and returns the value it had, in one
// statement, so that of two concurrent takers only one gets it (one-time
// secrets such as the setup token).
func (s *Store) TakeSetting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `DELETE FROM settings WHERE key = ? RETURNING value`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("take setting %q: %w", key, err)
	}
	return v, true, nil
}
