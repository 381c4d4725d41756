package webui

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/store"
)

// auditActions lists the audit actions, oldest first.
func (h *harness) auditActions(t *testing.T) []string {
	t.Helper()
	es, err := h.store.AuditLog(context.Background(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range slices.Backward(es) {
		out = append(out, e.Action)
	}
	return out
}

// auditLast returns the newest audit entry.
func (h *harness) auditLast(t *testing.T) store.AuditEntry {
	t.Helper()
	es, err := h.store.AuditLog(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 {
		return store.AuditEntry{}
	}
	return es[0]
}

// fakeEvidence has captures for some addresses.
type fakeEvidence struct{ addrs map[netip.Addr]bool }

func (f *fakeEvidence) HasEvidence(ctx context.Context, a netip.Addr) bool { return f.addrs[a] }

func (f *fakeEvidence) WritePcap(ctx context.Context, w io.Writer, a netip.Addr) error {
	if !f.addrs[a] {
		return store.ErrNotFound
	}
	_, err := io.WriteString(w, "\xd4\xc3\xb2\xa1fake pcap")
	return err
}

// fakeSystem records reboots.
type fakeSystem struct {
	mu      sync.Mutex
	reboots int
}

func (f *fakeSystem) Reboot(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reboots++
	return nil
}

// testArgon is a cheap argon2id cost for tests.
var testArgon = argonParams{time: 1, memKiB: 64, threads: 1}

// addLabInventory stores what passive inspection saw in the lab,
// including a printer that spoke SMTP but has no event yet.
func (s *spyStore) addLabInventory(t *testing.T, now time.Time) {
	t.Helper()
	a := netip.MustParseAddr
	if err := s.UpsertHosts(context.Background(), []store.HostDelta{
		{Addr: a("10.20.0.50"), FirstSeen: now.Add(-41 * time.Minute), LastSeen: now.Add(-10 * time.Minute), Flows: 9, Messages: 7,
			RcptDomains: []string{"remote.example"}, RemoteMXs: []string{"198.51.100.25", "198.51.100.27"}, RDNS: "desktop-7qx.office.example"},
		{Addr: a("10.10.0.25"), FirstSeen: now.Add(-50 * time.Minute), LastSeen: now.Add(-20 * time.Minute), Flows: 120, Messages: 300,
			EncryptedFlows: 118, RDNS: "mail.example.com", AuthMechs: []string{}},
		{Addr: a("10.40.0.9"), FirstSeen: now.Add(-5 * time.Minute), LastSeen: now.Add(-5 * time.Minute), Flows: 1, RDNS: "printer-3f.office.example"},
	}); err != nil {
		t.Fatal(err)
	}
}
