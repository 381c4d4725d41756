package oui

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadCSVWriteGzip(t *testing.T) {
	const csv = `Registry,Assignment,Organization Name,Organization Address
MA-L,00000C,"Cisco Systems, Inc",170 WEST TASMAN DRIVE SAN JOSE CA US 95134-1706 
MA-L,001422,Dell Inc.,One Dell Way Round Rock TX US 78682 
MA-L,001422,Someone Else,duplicate keeps the first
MA-M,741AE09,Private,
MA-S,70B3D5F2F,  TELE  PLATFORMS ,"Polbina st., 3/1 Moscow  RU 109388 "
CID,0A1B2C,Company ID,not a MAC prefix
`
	r := Registry{}
	n, err := r.ReadCSV(strings.NewReader(csv))
	if err != nil || n != 4 {
		t.Fatalf("ReadCSV = %d, %v, want 4, nil", n, err)
	}
	var buf bytes.Buffer
	if err := r.WriteGzip(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	want := "00000C\tCisco Systems, Inc\n001422\tDell Inc.\n70B3D5F2F\tTELE PLATFORMS\n741AE09\tPrivate\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
}

func TestReadCSVBadAssignment(t *testing.T) {
	_, err := Registry{}.ReadCSV(strings.NewReader("MA-L,00000,Short,\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("ReadCSV(short assignment) = %v, want an error naming line 1", err)
	}
}

func TestClean(t *testing.T) {
	long := strings.Repeat("é", 40) // 80 bytes
	if got := Clean(long); len(got) > MaxName || !strings.HasPrefix(long, got) || len(got) != 64 {
		t.Errorf("Clean(80 bytes) = %d bytes %q, want 64 bytes on a character boundary", len(got), got)
	}
	if got := Clean(" a\tb\x00c\n"); got != "a b c" {
		t.Errorf("Clean = %q, want %q", got, "a b c")
	}
}
