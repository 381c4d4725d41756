package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTokens(t *testing.T) {
	clock := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clock.Now})
	ctx := context.Background()

	tok1, err := s.CreateToken(ctx, "monitoring")
	if err != nil {
		t.Fatalf("CreateToken() = %v", err)
	}
	clock.Set(at(10))
	tok2, err := s.CreateToken(ctx, " ci ")
	if err != nil {
		t.Fatalf("CreateToken() = %v", err)
	}
	if !strings.HasPrefix(tok1, TokenPrefix) || len(tok1) != len(TokenPrefix)+43 || tok1 == tok2 {
		t.Errorf("CreateToken() = %q, %q, want two distinct rg_ + 43 base64url characters", tok1, tok2)
	}

	// Only the hash is stored.
	rows, err := s.db.Query(`SELECT hash FROM tokens ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	rows.Close()
	h1, h2 := sha256.Sum256([]byte(tok1)), sha256.Sum256([]byte(tok2))
	if diff := cmp.Diff([][]byte{h1[:], h2[:]}, hashes); diff != "" {
		t.Errorf("stored hashes (-want +got):\n%s", diff)
	}
	var leaks int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM tokens WHERE instr(CAST(hash AS TEXT), ?) > 0 OR instr(name, ?) > 0`,
		tok1[3:], tok1[3:]).Scan(&leaks); err != nil || leaks != 0 {
		t.Errorf("token text found in the tokens table (%d rows, %v)", leaks, err)
	}

	clock.Set(at(20))
	for _, tt := range []struct {
		token    string
		wantName string
		wantOK   bool
	}{
		{tok1, "monitoring", true},
		{tok2, "ci", true},
		{flipLast(tok1), "", false},
		{"rg_" + strings.Repeat("A", 43), "", false},
		{tok1[3:], "", false}, // without prefix
		{tok1 + "x", "", false},
		{"", "", false},
		{"Bearer " + tok1, "", false},
	} {
		ti, ok, err := s.CheckToken(ctx, tt.token)
		if err != nil || ok != tt.wantOK || ti.Name != tt.wantName {
			t.Errorf("CheckToken(%q) = %q, %v, %v, want %q, %v, nil", tt.token, ti.Name, ok, err, tt.wantName, tt.wantOK)
		}
	}

	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens() = %v", err)
	}
	want := []TokenInfo{
		{ID: 1, Name: "monitoring", Scope: ScopeAdmin, Created: base, LastUsed: at(20)},
		{ID: 2, Name: "ci", Scope: ScopeAdmin, Created: at(10), LastUsed: at(20)},
	}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("Tokens() (-want +got):\n%s", diff)
	}

	// last_used is updated at most once a minute.
	clock.Set(at(30))
	if _, ok, _ := s.CheckToken(ctx, tok1); !ok {
		t.Fatal("CheckToken(tok1) not ok")
	}
	clock.Set(at(20).Add(2 * time.Minute))
	if _, ok, _ := s.CheckToken(ctx, tok2); !ok {
		t.Fatal("CheckToken(tok2) not ok")
	}
	list, err = s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want[1].LastUsed = at(20).Add(2 * time.Minute)
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("Tokens() after reuse (-want +got):\n%s", diff)
	}

	if err := s.RevokeToken(ctx, 1); err != nil {
		t.Fatalf("RevokeToken(1) = %v", err)
	}
	if ti, ok, err := s.CheckToken(ctx, tok1); ok || err != nil || ti != (TokenInfo{}) {
		t.Errorf("CheckToken(revoked) = %+v, %v, %v, want not ok", ti, ok, err)
	}
	if _, ok, _ := s.CheckToken(ctx, tok2); !ok {
		t.Errorf("CheckToken(tok2) after revoking token 1 not ok")
	}
	if err := s.RevokeToken(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeToken(1) again = %v, want ErrNotFound", err)
	}
	list, err = s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[1:], list); diff != "" {
		t.Errorf("Tokens() after revoke (-want +got):\n%s", diff)
	}
}

func TestCreateTokenBadName(t *testing.T) {
	s := openTest(t, "", Options{})
	for _, name := range []string{"", "   ", strings.Repeat("x", 101)} {
		if _, err := s.CreateToken(context.Background(), name); err == nil {
			t.Errorf("CreateToken(%q) succeeded, want error", name)
		}
	}
}

// flipLast changes the last character of a token.
func flipLast(tok string) string {
	c := byte('A')
	if tok[len(tok)-1] == 'A' {
		c = 'B'
	}
	return tok[:len(tok)-1] + string(c)
}

// TestTokenScopesAndExpiry: a token keeps the scope it was created with;
// an expired token is refused but still described, and never counts as
// used.
func TestTokenScopesAndExpiry(t *testing.T) {
	clock := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clock.Now})
	ctx := context.Background()
	metrics, err := s.CreateScopedToken(ctx, NewToken{Name: "prometheus", Scope: ScopeMetrics, Lifetime: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("CreateScopedToken(metrics) = %v", err)
	}
	read, err := s.CreateScopedToken(ctx, NewToken{Name: "grafana", Scope: ScopeRead})
	if err != nil {
		t.Fatalf("CreateScopedToken(read) = %v", err)
	}
	admin, err := s.CreateScopedToken(ctx, NewToken{Name: "ansible"}) // scope "" is admin
	if err != nil {
		t.Fatalf("CreateScopedToken(admin) = %v", err)
	}
	exp := base.Add(90 * 24 * time.Hour)
	want := []TokenInfo{
		{ID: 1, Name: "prometheus", Scope: ScopeMetrics, Created: base, Expires: &exp},
		{ID: 2, Name: "grafana", Scope: ScopeRead, Created: base},
		{ID: 3, Name: "ansible", Scope: ScopeAdmin, Created: base},
	}
	if list, err := s.Tokens(ctx); err != nil || !cmp.Equal(want, list) {
		t.Errorf("Tokens() = %v (-want +got):\n%s", err, cmp.Diff(want, list))
	}
	for i, tok := range []string{metrics, read, admin} {
		ti, ok, err := s.CheckToken(ctx, tok)
		if err != nil || !ok || ti.Scope != want[i].Scope || ti.Name != want[i].Name {
			t.Errorf("CheckToken(%s) = %+v, %v, %v, want %s ok", want[i].Name, ti, ok, err, want[i].Scope)
		}
	}

	// A second before expiry it works; at expiry it does not, and its
	// last use stays the one before.
	clock.Set(exp.Add(-time.Second))
	if _, ok, _ := s.CheckToken(ctx, metrics); !ok {
		t.Errorf("CheckToken one second before expiry not ok")
	}
	clock.Set(exp)
	ti, ok, err := s.CheckToken(ctx, metrics)
	if ok || err != nil || ti.Name != "prometheus" || !ti.Expired(exp) {
		t.Errorf("CheckToken at expiry = %+v, %v, %v, want the expired token described, not ok", ti, ok, err)
	}
	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := list[0].LastUsed; !got.Equal(exp.Add(-time.Second)) {
		t.Errorf("last_used after an expired attempt = %v, want %v", got, exp.Add(-time.Second))
	}

	for _, nt := range []NewToken{
		{Name: "x", Scope: "root"},
		{Name: "x", Scope: "Admin"},
		{Name: "x", Lifetime: -time.Hour},
		{Name: "x", Lifetime: 3651 * 24 * time.Hour},
	} {
		if _, err := s.CreateScopedToken(ctx, nt); err == nil {
			t.Errorf("CreateScopedToken(%+v) succeeded, want error", nt)
		}
	}
}

// TestTokenScopeMigration: tokens from before scopes existed become
// admin tokens that never expire, and keep working.
func TestTokenScopeMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	tok, err := s.CreateToken(ctx, "old-script")
	if err != nil {
		t.Fatal(err)
	}
	// What the version before left: no scope, no expiry.
	if _, err := s.db.ExecContext(ctx, `ALTER TABLE tokens DROP COLUMN scope; ALTER TABLE tokens DROP COLUMN expires`); err != nil {
		t.Fatal(err)
	}
	// Its migration runs again (rewinding user_version would re-run the
	// later migrations too, which cannot run twice).
	i := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "ADD COLUMN scope") })
	if _, err := s.db.ExecContext(ctx, migrations[i]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir, Options{})
	ti, ok, err := s.CheckToken(ctx, tok)
	if err != nil || !ok || ti.Scope != ScopeAdmin || ti.Expires != nil {
		t.Errorf("CheckToken(old token) after migration = %+v, %v, %v, want admin, no expiry, ok", ti, ok, err)
	}
}

func TestParseTokenLifetime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true},
		{"never", 0, true},
		{"12h", 12 * time.Hour, true},
		{"90d", 90 * 24 * time.Hour, true},
		{" 2w ", 14 * 24 * time.Hour, true},
		{"3650d", 3650 * 24 * time.Hour, true},
		{"3651d", 0, false},
		{"0d", 0, false},
		{"-1d", 0, false},
		{"+1d", 0, false},
		{"1.5d", 0, false},
		{"d", 0, false},
		{"90", 0, false},
		{"90m", 0, false}, // minutes or months: neither
		{"1y", 0, false},
		{"1d12h", 0, false},
		{"9999999999h", 0, false},
		{"90D", 0, false},
	} {
		got, err := ParseTokenLifetime(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseTokenLifetime(%q) = %v, %v, want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
