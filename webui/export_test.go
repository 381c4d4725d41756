package webui

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/export"
)

// fakeExport stands in for *export.Exporter, whose Status needs running
// senders; the data type is the real one.
type fakeExport []export.CollectorStatus

func (f fakeExport) Status() []export.CollectorStatus { return f }

// TestExportStatus: the System page shows each collector's connection,
// unsent spool and oldest unsent record, and GET /api/v1/export serves the
// same numbers.
func TestExportStatus(t *testing.T) {
	d, h := testDeps(t)
	oldest := time.Date(2026, 12, 7, 9, 58, 1, 0, time.UTC)
	st := fakeExport{
		{Name: "siem", Address: "10.0.0.5:6514", Transport: "tls", Format: "rfc5424", Connected: false,
			SpoolBytes: 3 << 20, SpoolDiskBytes: 4 << 20, OldestUnsent: &oldest, Sent: 1234,
			Dropped: map[string]uint64{"spool_full": 7, "queue_full": 0, "write_error": 0}, LastError: "dial tcp 10.0.0.5:6514: connection refused"},
		{Name: "backup", Address: "10.0.0.6:514", Transport: "udp", Format: "json", Connected: true, Sent: 99,
			Dropped: map[string]uint64{}},
	}
	d.Export = st
	b := h.adminBrowser(t, d)

	w := h.do(t, "GET", "/api/v1/export", "Bearer "+goodToken, "")
	got := decode[[]export.CollectorStatus](t, w)
	if diff := cmp.Diff([]export.CollectorStatus(st), got); w.Code != http.StatusOK || diff != "" {
		t.Fatalf("GET /api/v1/export = %d (-want +got):\n%s", w.Code, diff)
	}
	page := b.do("GET", "/system", nil, nil).Body.String()
	for _, want := range []string{"Export to syslog collectors", `data-collector="siem"`, "tls 10.0.0.5:6514", "connection refused",
		"3.0 MiB", "2026-12-07 09:58:01", "1234", ">7<", `data-collector="backup"`, "udp 10.0.0.6:514", ">yes<"} {
		if !strings.Contains(page, want) {
			t.Errorf("System page lacks %q", want)
		}
	}
}
