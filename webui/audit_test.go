package webui

import (
	"context"
	"testing"
	"time"

	"github.com/relaygate/relaygate/store"
)

func TestAuditAPI(t *testing.T) {
	h := newHarness(t)
	for _, a := range []string{"login", "config.update", "logout"} {
		h.store.Audit(context.Background(), store.AuditEntry{Actor: "admin", Action: a, Time: time.Now()})
	}
	w := h.do(t, "GET", "/api/v1/audit?limit=2", bearer, "")
	r := decode[map[string][]store.AuditEntry](t, w)
	if len(r["entries"]) != 2 || r["entries"][0].Action != "logout" {
		t.Errorf("GET /api/v1/audit?limit=2 = %s", w.Body)
	}
	if w := h.do(t, "GET", "/api/v1/audit?limit=0", bearer, ""); w.Code != 400 {
		t.Errorf("limit=0 = %d, want 400", w.Code)
	}
}
