package webui

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// languages the UI speaks; the first is the fallback.
var languages = []string{"en", "ja"}

// catalogFS holds one catalog per language, i18n/<lang>.json: every UI
// string, keyed by snake_case names; a value with %d or %s is a fmt
// format. TestCatalogComplete checks that both languages have the same
// keys and every key the templates and the dashboard's script use.
//
//go:embed i18n/*.json
var catalogFS embed.FS

// loadCatalog reads the catalog of every language.
func loadCatalog() (map[string]map[string]string, error) {
	out := make(map[string]map[string]string, len(languages))
	for _, lang := range languages {
		b, err := catalogFS.ReadFile("i18n/" + lang + ".json")
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", lang, err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("catalog i18n/%s.json: %w", lang, err)
		}
		out[lang] = m
	}
	return out, nil
}

// pickLang chooses the language: ?lang= (remembered in a cookie), then the
// cookie, then Accept-Language, then English.
func pickLang(c *gin.Context) string {
	if l := c.Query("lang"); supported(l) {
		http.SetCookie(c.Writer, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
		return l
	}
	if ck, err := c.Request.Cookie(langCookie); err == nil && supported(ck.Value) {
		return ck.Value
	}
	return fromAcceptLanguage(c.GetHeader("Accept-Language"))
}

func supported(l string) bool {
	for _, x := range languages {
		if l == x {
			return true
		}
	}
	return false
}

// fromAcceptLanguage picks the supported language with the highest q
// (RFC 9110 section 12.5.4), ties going to the earlier one.
func fromAcceptLanguage(h string) string {
	type cand struct {
		lang string
		q    float64
		i    int
	}
	var cs []cand
	for i, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if supported(base) && q > 0 {
			cs = append(cs, cand{base, q, i})
		}
	}
	if len(cs) == 0 {
		return languages[0]
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].q > cs[b].q })
	return cs[0].lang
}
