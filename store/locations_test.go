package store

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/locate"
)

const pcMAC = "aa:bb:cc:dd:ee:ff"

func foundAt(addr string, t time.Time) locate.Location {
	return locate.Location{Addr: netip.MustParseAddr(addr), Status: locate.Found, MAC: pcMAC, Vendor: "Dell Inc.",
		Switch: "access-2", Port: "Gi1/0/17", PortDescription: "3F room 12", IfIndex: 10117, VLAN: 20,
		Path: []string{"core", "access-2"}, SeenAt: t}
}

func mustLocation(t *testing.T, s *Store, addr string) LocationRecord {
	t.Helper()
	rec, ok, err := s.Location(context.Background(), netip.MustParseAddr(addr))
	if err != nil || !ok {
		t.Fatalf("Location(%s) = %+v, %v, %v, want a record", addr, rec, ok, err)
	}
	return rec
}

// TestLocationSurvivesAgeing: the found location of an address stays
// after later lookups find only the MAC, nothing or fail; the last
// attempt says how those went. A found answer replaces it, and so does an
// answer naming another MAC.
func TestLocationSurvivesAgeing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "", Options{})
	found := foundAt("10.20.0.50", base)
	if err := s.SaveLocation(ctx, found); err != nil {
		t.Fatal(err)
	}
	later := []locate.Location{
		{Addr: found.Addr, Status: locate.MACOnly, MAC: pcMAC, SeenAt: base.Add(5 * time.Minute)},
		{Addr: found.Addr, Status: locate.NotFound, SeenAt: base.Add(10 * time.Minute)},
		{Addr: found.Addr, Status: locate.Failed, Error: "core: timeout", SeenAt: base.Add(15 * time.Minute)},
	}
	for _, l := range later {
		if err := s.SaveLocation(ctx, l); err != nil {
			t.Fatal(err)
		}
		want := LocationRecord{Location: found, LastAttempt: l.SeenAt, LastStatus: l.Status, LastError: l.Error}
		if diff := cmp.Diff(want, mustLocation(t, s, "10.20.0.50"), addrComparer); diff != "" {
			t.Errorf("after a %s answer: Location() (-want +got):\n%s", l.Status, diff)
		}
	}

	moved := foundAt("10.20.0.50", base.Add(20*time.Minute))
	moved.Port, moved.PortDescription = "Gi1/0/3", "2F copier"
	if err := s.SaveLocation(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if got := mustLocation(t, s, "10.20.0.50"); got.Port != "Gi1/0/3" || got.LastStatus != locate.Found || got.LastError != "" {
		t.Errorf("after a new found answer: Location() = %+v, want port Gi1/0/3, last status found", got)
	}
	other := locate.Location{Addr: found.Addr, Status: locate.MACOnly, MAC: "00:11:22:33:44:55", SeenAt: base.Add(25 * time.Minute)}
	if err := s.SaveLocation(ctx, other); err != nil {
		t.Fatal(err)
	}
	if got := mustLocation(t, s, "10.20.0.50"); got.MAC != other.MAC || got.Port != "" {
		t.Errorf("after a mac_only answer with another MAC: Location() = %+v, want MAC %s and no port", got, other.MAC)
	}

	if _, ok, err := s.Location(ctx, netip.MustParseAddr("10.20.0.51")); ok || err != nil {
		t.Errorf("Location(never looked up) = ok %v, %v, want false, nil", ok, err)
	}
	if err := s.SaveLocation(ctx, locate.Location{Status: locate.Found}); err == nil {
		t.Error("SaveLocation(no address) = nil, want an error")
	}
}

// TestLocationsForAndByMAC: the list pages get the records of many
// addresses at once; the IPv4 and IPv6 addresses of one MAC are found
// from the MAC, IPv4-mapped addresses stored unmapped.
func TestLocationsForAndByMAC(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "", Options{})
	for _, a := range []string{"::ffff:10.20.0.50", "2001:db8:20::50"} {
		if err := s.SaveLocation(ctx, foundAt(a, base)); err != nil {
			t.Fatal(err)
		}
	}
	other := foundAt("10.20.0.60", base)
	other.MAC = "00:11:22:33:44:55"
	if err := s.SaveLocation(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveLocation(ctx, locate.Location{Addr: netip.MustParseAddr("10.20.0.70"), Status: locate.NotFound, SeenAt: base}); err != nil {
		t.Fatal(err)
	}

	got, err := s.AddressesByMAC(ctx, "AA:BB:CC:DD:EE:FF")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("10.20.0.50"), netip.MustParseAddr("2001:db8:20::50")}
	if diff := cmp.Diff(want, got, addrComparer); diff != "" {
		t.Errorf("AddressesByMAC() (-want +got):\n%s", diff)
	}
	if got, err := s.AddressesByMAC(ctx, ""); err != nil || len(got) != 0 {
		t.Errorf("AddressesByMAC(\"\") = %v, %v, want none (not_found rows have no MAC)", got, err)
	}

	recs, err := s.LocationsFor(ctx, []netip.Addr{netip.MustParseAddr("10.20.0.50"), netip.MustParseAddr("10.20.0.60"),
		netip.MustParseAddr("10.20.0.70"), netip.MustParseAddr("10.9.9.9")})
	if err != nil {
		t.Fatal(err)
	}
	gotMACs := map[string]string{}
	for a, r := range recs {
		gotMACs[a.String()] = r.MAC + "/" + string(r.LastStatus)
	}
	wantMACs := map[string]string{"10.20.0.50": pcMAC + "/found", "10.20.0.60": "00:11:22:33:44:55/found", "10.20.0.70": "/not_found"}
	if diff := cmp.Diff(wantMACs, gotMACs); diff != "" {
		t.Errorf("LocationsFor() MAC/status (-want +got):\n%s", diff)
	}
}

// TestLocationsBounded: the table keeps at most maxLocations rows, those
// looked up longest ago going first, and ages with the retention.
func TestLocationsBounded(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: base}
	s := openTest(t, "", Options{Now: clk.Now, Retention: 24 * time.Hour})
	s.maxLocations = 50
	stale := foundAt("10.9.0.1", base.Add(-48*time.Hour))
	if err := s.SaveLocation(ctx, stale); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := s.SaveLocation(ctx, foundAt(fmt.Sprintf("10.20.%d.%d", i/250, i%250+1), base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM locations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 50 {
		t.Errorf("locations after Prune = %d rows, want 50", rows)
	}
	for addr, want := range map[string]bool{"10.9.0.1": false, "10.20.0.1": false, fmt.Sprintf("10.20.0.%d", n): true} {
		if _, ok, err := s.Location(ctx, netip.MustParseAddr(addr)); err != nil || ok != want {
			t.Errorf("Location(%s) after Prune = ok %v, %v, want %v", addr, ok, err, want)
		}
	}
}
