package webui

import (
	"strings"
	"testing"
)

func TestTokensAPI(t *testing.T) {
	h, b := loggedIn(t)
	w := b.apiJSON("POST", "/api/v1/tokens", `{"name": "prometheus", "password": "`+adminPass+`"}`, nil)
	if w.Code != 201 {
		t.Fatalf("POST /api/v1/tokens = %d %s", w.Code, w.Body)
	}
	created := decode[map[string]any](t, w)
	if created["token"] == "" || created["name"] != "prometheus" || created["scope"] != "admin" {
		t.Fatalf("created %v", created)
	}
	if e := h.auditLast(t); e.Action != "token.create" || e.Actor != adminUser || e.Detail != "prometheus (scope admin)" {
		t.Errorf("audit %+v", e)
	}
	newToken := "Bearer " + created["token"].(string)
	// The new token works.
	if w := h.do(t, "GET", "/api/v1/tokens", newToken, ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"name":"prometheus"`) {
		t.Errorf("GET /api/v1/tokens with the new token = %d %s", w.Code, w.Body)
	}
	for _, body := range []string{``, `{`, `{"name": ""}`, `{"name": "a\nb"}`, `{"nom": "x"}`, `{"name": "` + strings.Repeat("x", 101) + `"}`} {
		if w := b.apiJSON("POST", "/api/v1/tokens", body, map[string]string{reauthHeader: adminPass}); w.Code != 400 {
			t.Errorf("POST /api/v1/tokens %q = %d, want 400", body, w.Code)
		}
	}
	// Token 1 is the harness's (goodToken), 2 the one created.
	if w := h.do(t, "DELETE", "/api/v1/tokens/2", bearer, ""); w.Code != 204 {
		t.Errorf("DELETE /api/v1/tokens/2 = %d %s", w.Code, w.Body)
	}
	if w := h.do(t, "GET", "/api/v1/tokens", newToken, ""); w.Code != 401 {
		t.Errorf("revoked token = %d, want 401", w.Code)
	}
	if w := h.do(t, "DELETE", "/api/v1/tokens/2", bearer, ""); w.Code != 404 {
		t.Errorf("second DELETE = %d, want 404", w.Code)
	}
	if w := h.do(t, "DELETE", "/api/v1/tokens/x", bearer, ""); w.Code != 400 {
		t.Errorf("DELETE /api/v1/tokens/x = %d, want 400", w.Code)
	}
	if got := strings.Join(h.auditActions(t), ","); got != "login,token.create,token.revoke" {
		t.Errorf("audit actions %s", got)
	}
}
