package store

import (
	"context"
	"crypto/sha256"
	"errors"
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
		name, ok, err := s.CheckToken(ctx, tt.token)
		if err != nil || ok != tt.wantOK || name != tt.wantName {
			t.Errorf("CheckToken(%q) = %q, %v, %v, want %q, %v, nil", tt.token, name, ok, err, tt.wantName, tt.wantOK)
		}
	}

	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens() = %v", err)
	}
	want := []TokenInfo{
		{ID: 1, Name: "monitoring", Created: base, LastUsed: at(20)},
		{ID: 2, Name: "ci", Created: at(10), LastUsed: at(20)},
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
	if name, ok, err := s.CheckToken(ctx, tok1); ok || err != nil {
		t.Errorf("CheckToken(revoked) = %q, %v, %v, want not ok", name, ok, err)
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
