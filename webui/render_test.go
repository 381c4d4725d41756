package webui

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/store"
)

func TestPagesRender(t *testing.T) {
	for _, lang := range []string{"en", "ja"} {
		t.Run(lang, func(t *testing.T) {
			h, b := loggedIn(t)
			b.lang = lang
			fillLab(t, h, time.Now())
			h.store.CreateToken(context.Background(), "prometheus")
			h.store.Audit(context.Background(), store.AuditEntry{Actor: "admin", Action: "config.update", Detail: "<script>x</script>"})
			for _, p := range []string{"/", "/hosts", "/hosts?sort=blocked&dir=asc", "/hosts/10.20.0.50", "/events",
				"/events?kind=blocked&client=10.20.0.50&q=spam&since=2026-01-01T00:00", "/policy", "/policy?welcome=1",
				"/policy/mode?to=enforce", "/policy/mode?to=monitor", "/system", "/audit", "/tokens", "/account"} {
				w := b.do("GET", p, nil, nil)
				body := w.Body.String()
				if w.Code != 200 {
					t.Errorf("GET %s = %d\n%s", p, w.Code, body)
					continue
				}
				if !strings.Contains(body, `<html lang="`+lang+`">`) {
					t.Errorf("GET %s: no html lang=%s", p, lang)
				}
				for _, bad := range []string{"!", "<no value>", "<script>x"} {
					if bad == "!" {
						if m := regexp.MustCompile(`>!([a-z_]+)`).FindString(body); m != "" {
							t.Errorf("GET %s: missing catalog key %s", p, m)
						}
						continue
					}
					if strings.Contains(body, bad) {
						t.Errorf("GET %s contains %q", p, bad)
					}
				}
			}
		})
	}
}
