package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestUpsertHosts(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	pc := netip.MustParseAddr("10.20.0.50")
	v6 := netip.MustParseAddr("2001:db8:20::50")
	if err := s.UpsertHosts(ctx, []HostDelta{
		{Addr: pc, FirstSeen: t0.Add(time.Minute), LastSeen: t0.Add(2 * time.Minute), Flows: 2, Messages: 5,
			RcptDomains: []string{"a.example", "b.example"}, RemoteMXs: []string{"203.0.113.25"}, AuthMechs: []string{"PLAIN"}},
		{Addr: netip.MustParseAddr("::ffff:10.20.0.51"), FirstSeen: t0, LastSeen: t0, Flows: 1},
	}); err != nil {
		t.Fatal(err)
	}
	// The second flush widens the times, adds counters and merges lists.
	if err := s.UpsertHosts(ctx, []HostDelta{
		{Addr: pc, FirstSeen: t0, LastSeen: t0.Add(time.Minute), Flows: 1, Messages: 1, EncryptedFlows: 1,
			RcptDomains: []string{"b.example", "c.example"}, RDNS: "pc50.lan.example"},
		{Addr: v6, FirstSeen: t0.Add(time.Hour), LastSeen: t0.Add(time.Hour), Flows: 1},
		{Addr: pc, RDNS: ""}, // a name-only delta with zero times changes nothing
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.HostSeenByAddr(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	want := HostSeen{Addr: pc, FirstSeen: t0, LastSeen: t0.Add(2 * time.Minute), Flows: 3, Messages: 6, EncryptedFlows: 1,
		RcptDomains: []string{"a.example", "b.example", "c.example"}, RemoteMXs: []string{"203.0.113.25"},
		AuthMechs: []string{"PLAIN"}, RDNS: "pc50.lan.example"}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("HostSeenByAddr(%s) (-want +got):\n%s", pc, diff)
	}
	all, err := s.HostsSeen(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, h := range all {
		order = append(order, h.Addr.String())
	}
	if diff := cmp.Diff([]string{v6.String(), pc.String(), "10.20.0.51"}, order); diff != "" {
		t.Errorf("HostsSeen order (-want +got):\n%s", diff)
	}
	if _, err := s.HostSeenByAddr(ctx, netip.MustParseAddr("192.0.2.1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("HostSeenByAddr(unknown) error = %v, want ErrNotFound", err)
	}
}

func TestUpsertHostsBounded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pc := netip.MustParseAddr("10.20.0.50")
	for i := 0; i < 5; i++ {
		var doms []string
		for j := 0; j < 50; j++ {
			doms = append(doms, fmt.Sprintf("d%d-%d.example", i, j))
		}
		if err := s.UpsertHosts(ctx, []HostDelta{{Addr: pc, FirstSeen: time.Unix(1, 0), LastSeen: time.Unix(2, 0), RcptDomains: doms}}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.HostSeenByAddr(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.RcptDomains) != MaxInventoryList || h.RcptDomains[0] != "d0-0.example" {
		t.Errorf("RcptDomains has %d entries starting %q, want the first %d", len(h.RcptDomains), h.RcptDomains[0], MaxInventoryList)
	}
}
