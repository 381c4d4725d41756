package webui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// argonParams is the argon2id cost. The default follows RFC 9106 section
// 4's second recommendation scaled down for a small appliance: 64 MiB,
// 3 passes, 2 lanes, about 0.2 s on a low-end x86 core.
type argonParams struct {
	time    uint32
	memKiB  uint32
	threads uint8
}

var defaultArgon = argonParams{time: 3, memKiB: 64 * 1024, threads: 2}

const (
	argonSaltLen = 16
	argonKeyLen  = 32
	// MinPasswordLen is the shortest accepted administrator password,
	// in characters.
	MinPasswordLen = 12
	// maxPasswordLen bounds what is hashed.
	maxPasswordLen = 1024
)

// hashPassword returns the password's argon2id hash in the PHC string form
// "$argon2id$v=19$m=65536,t=3,p=2$<salt>$<key>".
func hashPassword(p argonParams, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.time, p.memKiB, p.threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memKiB, p.time, p.threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// checkPassword reports whether password matches the PHC hash. The cost
// comes from the hash, so old hashes keep working after a cost change.
func checkPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("password hash: not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, fmt.Errorf("password hash: unsupported version %q", parts[2])
	}
	var p argonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memKiB, &p.time, &p.threads); err != nil {
		return false, fmt.Errorf("password hash: parameters %q: %w", parts[3], err)
	}
	if p.time == 0 || p.threads == 0 || p.memKiB < 8*uint32(p.threads) || p.memKiB > 1<<22 || p.time > 100 {
		return false, fmt.Errorf("password hash: parameters %q out of range", parts[3])
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("password hash: salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, fmt.Errorf("password hash: key: %w", err)
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memKiB, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// weakPasswords are fragments that make a password trivially guessable
// whatever its length ("password1234", "qwertyuiop12").
var weakPasswords = []string{
	"password", "passwort", "qwerty", "asdfgh", "zxcvbn", "letmein", "welcome", "admin",
	"relaygate", "iloveyou", "123456", "654321", "abcdef", "changeme", "secret", "default",
}

// passwordProblem returns the catalog key of the reason password is too
// weak for username, or "" when it is acceptable. The rules are the ones
// of NIST SP 800-63B section 3.1.1.2: a minimum length, no composition
// rules, and a check against known-bad values.
func passwordProblem(username, password string) string {
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLen:
		return "pw_short"
	case len(password) > maxPasswordLen:
		return "pw_long"
	}
	distinct := map[rune]bool{}
	for _, r := range password {
		if unicode.IsControl(r) {
			return "pw_control"
		}
		distinct[unicode.ToLower(r)] = true
	}
	if len(distinct) < 5 {
		return "pw_repetitive"
	}
	lower := strings.ToLower(password)
	if u := strings.ToLower(username); len(u) >= 3 && strings.Contains(lower, u) {
		return "pw_username"
	}
	for _, w := range weakPasswords {
		if strings.Contains(lower, w) {
			return "pw_common"
		}
	}
	if isSequence(lower) {
		return "pw_common"
	}
	return ""
}

// isSequence reports whether s is a run of consecutive characters in
// either direction, e.g. "abcdefghijkl" or "987654321098".
func isSequence(s string) bool {
	rs := []rune(s)
	for _, step := range []rune{1, -1} {
		seq := true
		for i := 1; i < len(rs); i++ {
			d := rs[i] - rs[i-1]
			// Digits wrap around: ...8, 9, 0, 1...
			if d != step && !(unicode.IsDigit(rs[i]) && (d == -9*step)) {
				seq = false
				break
			}
		}
		if seq {
			return true
		}
	}
	return false
}

// validUsername reports whether u is an acceptable administrator name:
// 1-64 letters, digits, '.', '_', '-', '@'.
func validUsername(u string) bool {
	if u == "" || len(u) > 64 {
		return false
	}
	for _, r := range u {
		if !(r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-@", r))) {
			return false
		}
	}
	return true
}

const (
	// maxConcurrentHashes bounds the argon2id hashes (and checks)
	// computed at once across the process: each takes defaultArgon's
	// 64 MiB, and a burst of logins must not take the appliance's
	// memory.
	maxConcurrentHashes = 2
	// hashWait is how long a request waits for a hashing slot before it
	// is answered 429 Too Many Requests.
	hashWait = 2 * time.Second
)

// errHashBusy: no hashing slot within the wait.
var errHashBusy = errors.New("password hashing busy")

// hashGate is a semaphore of hashing slots.
type hashGate struct {
	slots chan struct{}
	wait  time.Duration
	hook  func() // tests: runs in the slot before f
}

func newHashGate(slots int, wait time.Duration, hook func()) *hashGate {
	return &hashGate{slots: make(chan struct{}, slots), wait: wait, hook: hook}
}

// run runs f, which hashes or checks passwords, in a slot. It returns
// errHashBusy when no slot is free within the wait, ctx's error when ctx
// ends first; f has not run then.
func (g *hashGate) run(ctx context.Context, f func()) error {
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
	case <-t.C:
		return errHashBusy
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.slots }()
	if g.hook != nil {
		g.hook()
	}
	f()
	return nil
}
