package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUsers(t *testing.T) {
	clock := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clock.Now})
	ctx := context.Background()

	if n, err := s.UserCount(ctx); err != nil || n != 0 {
		t.Fatalf("UserCount() = %d, %v, want 0, nil", n, err)
	}
	if _, err := s.User(ctx, "admin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(admin) before creation = %v, want ErrNotFound", err)
	}
	if err := s.CreateFirstUser(ctx, "admin", "$argon2id$hash1"); err != nil {
		t.Fatalf("CreateFirstUser() = %v", err)
	}
	if err := s.CreateFirstUser(ctx, "second", "$argon2id$hash2"); !errors.Is(err, ErrExists) {
		t.Errorf("CreateFirstUser(second) = %v, want ErrExists", err)
	}
	if n, err := s.UserCount(ctx); err != nil || n != 1 {
		t.Errorf("UserCount() = %d, %v, want 1, nil", n, err)
	}
	u, err := s.User(ctx, "admin")
	if err != nil {
		t.Fatalf("User(admin) = %v", err)
	}
	want := User{Username: "admin", PasswordHash: "$argon2id$hash1", Created: base, Updated: base}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("User(admin) (-want +got):\n%s", diff)
	}
	clock.Set(at(60))
	if err := s.SetPasswordHash(ctx, "admin", "$argon2id$hash3"); err != nil {
		t.Fatalf("SetPasswordHash() = %v", err)
	}
	if u, _ := s.User(ctx, "admin"); u.PasswordHash != "$argon2id$hash3" || !u.Updated.Equal(at(60)) {
		t.Errorf("after SetPasswordHash: %+v", u)
	}
	if err := s.SetPasswordHash(ctx, "nobody", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPasswordHash(nobody) = %v, want ErrNotFound", err)
	}
}

func TestSessions(t *testing.T) {
	clock := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clock.Now})
	ctx := context.Background()
	h1 := sha256.Sum256([]byte("cookie1"))
	h2 := sha256.Sum256([]byte("cookie2"))

	if _, err := s.Session(ctx, h1[:]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session() before creation = %v, want ErrNotFound", err)
	}
	s1 := Session{IDHash: h1[:], Username: "admin", CSRF: "csrf1", Remote: "192.0.2.7"}
	if err := s.CreateSession(ctx, s1); err != nil {
		t.Fatalf("CreateSession() = %v", err)
	}
	clock.Set(at(100))
	if err := s.CreateSession(ctx, Session{IDHash: h2[:], Username: "admin", CSRF: "csrf2"}); err != nil {
		t.Fatalf("CreateSession() = %v", err)
	}
	got, err := s.Session(ctx, h1[:])
	if err != nil {
		t.Fatalf("Session() = %v", err)
	}
	s1.Created, s1.LastSeen = base, base
	if diff := cmp.Diff(s1, got); diff != "" {
		t.Errorf("Session() (-want +got):\n%s", diff)
	}
	if err := s.TouchSession(ctx, h1[:], at(200)); err != nil {
		t.Fatalf("TouchSession() = %v", err)
	}
	if got, _ := s.Session(ctx, h1[:]); !got.LastSeen.Equal(at(200)) {
		t.Errorf("LastSeen = %v, want %v", got.LastSeen, at(200))
	}
	// h2 was last seen at 100, h1 at 200: pruning idle before 150 drops h2.
	if n, err := s.PruneSessions(ctx, at(150), at(0)); err != nil || n != 1 {
		t.Errorf("PruneSessions() = %d, %v, want 1, nil", n, err)
	}
	if _, err := s.Session(ctx, h2[:]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session(h2) after prune = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, h1[:]); err != nil {
		t.Fatalf("DeleteSession() = %v", err)
	}
	if _, err := s.Session(ctx, h1[:]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session(h1) after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, h1[:]); err != nil {
		t.Errorf("DeleteSession() twice = %v, want nil", err)
	}
	for _, h := range [][32]byte{h1, h2} {
		if err := s.CreateSession(ctx, Session{IDHash: h[:], Username: "admin"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUserSessions(ctx, "admin"); err != nil {
		t.Fatalf("DeleteUserSessions() = %v", err)
	}
	if _, err := s.Session(ctx, h2[:]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session(h2) after DeleteUserSessions = %v, want ErrNotFound", err)
	}
	if err := s.CreateSession(ctx, Session{}); err == nil {
		t.Error("CreateSession without id hash succeeded")
	}
}

func TestSettings(t *testing.T) {
	s := openTest(t, "", Options{})
	ctx := context.Background()
	if _, ok, err := s.Setting(ctx, "k"); ok || err != nil {
		t.Errorf("Setting(k) = %v, %v, want missing", ok, err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := s.SetSetting(ctx, "k", v); err != nil {
			t.Fatalf("SetSetting() = %v", err)
		}
	}
	if v, ok, err := s.Setting(ctx, "k"); v != "v2" || !ok || err != nil {
		t.Errorf("Setting(k) = %q, %v, %v, want v2", v, ok, err)
	}
	// Of many concurrent takers, exactly one gets the value.
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 8 {
		wg.Go(func() {
			v, ok, err := s.TakeSetting(ctx, "k")
			if err != nil {
				t.Errorf("TakeSetting() = %v", err)
			}
			if ok {
				mu.Lock()
				got++
				mu.Unlock()
				if v != "v2" {
					t.Errorf("TakeSetting() = %q, want v2", v)
				}
			}
		})
	}
	wg.Wait()
	if got != 1 {
		t.Errorf("%d takers got the setting, want 1", got)
	}
	if _, ok, _ := s.Setting(ctx, "k"); ok {
		t.Error("setting still there after TakeSetting")
	}
}
