package event

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	e := Event{
		Client: netip.MustParseAddr("::ffff:10.20.0.50"),
		Server: netip.MustParseAddr("fe80::1%eth0"),
		Time:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("JST", 9*3600)),
	}
	e.Normalize()
	if got := e.Client.String(); got != "10.20.0.50" {
		t.Errorf("Client = %s; want 10.20.0.50", got)
	}
	if got := e.Server.String(); got != "fe80::1" {
		t.Errorf("Server = %s; want fe80::1", got)
	}
	if e.Rcpt == nil || len(e.Rcpt) != 0 {
		t.Errorf("Rcpt = %#v; want an empty list", e.Rcpt)
	}
	if e.Time.Location() != time.UTC || e.Time.Hour() != 18 {
		t.Errorf("Time = %v; want 18:04:05 UTC", e.Time)
	}
}

func TestKindValid(t *testing.T) {
	for _, k := range Kinds {
		if !k.Valid() {
			t.Errorf("%q.Valid() = false", k)
		}
	}
	for _, k := range []Kind{"", "Blocked", "spam"} {
		if k.Valid() {
			t.Errorf("%q.Valid() = true", k)
		}
	}
}

func TestSenderKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "<>"},
		{"Boss@Example.ORG", "boss@example.org"},
		{"a@b.example", "a@b.example"},
	} {
		if got := SenderKey(tt.in); got != tt.want {
			t.Errorf("SenderKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestClip: fields are cut at their bounds on a character boundary, and
// the recipients that do not fit are counted, not lost silently.
func TestClip(t *testing.T) {
	if got := Clip("aé", 2); got != "a" {
		t.Errorf(`Clip("aé", 2) = %q, want "a" (no half character)`, got)
	}
	rcpt := make([]string, 200)
	for i := range rcpt {
		rcpt[i] = strings.Repeat("r", 1000)
	}
	e := Event{Helo: strings.Repeat("h", 5000), Rcpt: rcpt, RcptDropped: 7}
	e.Clip()
	if len(e.Helo) != MaxHelo {
		t.Errorf("Helo = %d octets, want %d", len(e.Helo), MaxHelo)
	}
	if e.StoredBytes() > MaxBytes+FixedBytes {
		t.Errorf("StoredBytes() = %d, want at most %d", e.StoredBytes(), MaxBytes+FixedBytes)
	}
	if got := len(e.Rcpt) + e.RcptDropped; got != 207 {
		t.Errorf("kept %d + dropped %d = %d, want 207", len(e.Rcpt), e.RcptDropped, got)
	}
	if len(rcpt[0]) != 1000 {
		t.Errorf("Clip changed the caller's recipients")
	}
}
