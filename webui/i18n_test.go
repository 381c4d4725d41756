package webui

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestCatalogComplete(t *testing.T) {
	keyRE := regexp.MustCompile(`t (?:\$?\.M|\$\.M|\.P\.M) "([a-z0-9_]+)"`)
	used := map[string]bool{}
	entries, _ := templatesFS.ReadDir("templates")
	for _, e := range entries {
		b, _ := templatesFS.ReadFile("templates/" + e.Name())
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	if len(used) < 50 {
		t.Errorf("found only %d catalog keys in templates; the pattern is stale", len(used))
	}
	// dashboard.js draws with the labels the page hands it.
	for _, k := range dashboardLabels {
		used[k] = true
	}
	cats, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for lang, cat := range cats {
		for k := range used {
			if _, ok := cat[k]; !ok {
				t.Errorf("catalog %s lacks %q", lang, k)
			}
		}
	}
	for k := range cats["en"] {
		if _, ok := cats["ja"][k]; !ok {
			t.Errorf("catalog ja lacks %q", k)
		}
	}
	for k := range cats["ja"] {
		if _, ok := cats["en"][k]; !ok {
			t.Errorf("catalog en lacks %q", k)
		}
	}
}

func TestLanguage(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"", "en"}, {"ja", "ja"}, {"ja-JP,ja;q=0.9,en;q=0.8", "ja"}, {"en-US,en;q=0.9,ja;q=0.8", "en"},
		{"fr,ja;q=0.5", "ja"}, {"de", "en"}, {"en;q=0.1,ja;q=0.2", "ja"},
	} {
		if got := fromAcceptLanguage(tc.header); got != tc.want {
			t.Errorf("fromAcceptLanguage(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
	h := newHarness(t)
	h.addAdmin(t)
	b := h.browser(t)
	w := b.do("GET", "/login", nil, map[string]string{"Accept-Language": "ja-JP"})
	if !strings.Contains(w.Body.String(), `<html lang="ja">`) || !strings.Contains(w.Body.String(), "ログイン") {
		t.Errorf("GET /login with Accept-Language ja: not Japanese")
	}
	w = b.do("GET", "/login?lang=en", nil, map[string]string{"Accept-Language": "ja-JP"})
	if !strings.Contains(w.Body.String(), `<html lang="en">`) {
		t.Errorf("GET /login?lang=en: not English")
	}
	var ck *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == langCookie {
			ck = c
		}
	}
	if ck == nil || ck.Value != "en" {
		t.Errorf("?lang=en set no language cookie")
	}
}
