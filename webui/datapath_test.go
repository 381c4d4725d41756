package webui

import (
	"encoding/json"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/config"
)

// TestDataPathShown checks that the dashboard and the system page show
// Status.DataPath as its translated word under "Data path", and that the
// dashboard hands dashboard.js every word for its live updates.
func TestDataPathShown(t *testing.T) {
	for _, lang := range []string{"en", "ja"} {
		for _, dp := range []struct {
			word string
			mode config.Mode
		}{{DataPathDiverting, config.Enforce}, {DataPathFailSafe, config.Enforce}, {DataPathWatching, config.Monitor}, {DataPathNotWatching, config.Monitor}} {
			t.Run(lang+"/"+dp.word, func(t *testing.T) {
				h, b := loggedIn(t)
				b.lang = lang
				fillLab(t, h, time.Now())
				h.status.st.Mode, h.status.st.DataPath = dp.mode, dp.word
				h.status.st.Serving = dp.word == DataPathDiverting || dp.word == DataPathWatching
				want := testCatalog(t)[lang]["data_path_"+dp.word]
				if want == "" {
					t.Fatalf("catalog %s lacks data_path_%s", lang, dp.word)
				}
				for _, p := range []string{"/", "/system"} {
					w := b.do("GET", p, nil, nil)
					if w.Code != 200 {
						t.Fatalf("GET %s = %d", p, w.Code)
					}
					m := regexp.MustCompile(`id="data-path">([^<]*)<`).FindStringSubmatch(w.Body.String())
					if m == nil {
						t.Errorf("GET %s: no data-path element", p)
						continue
					}
					if got := html.UnescapeString(m[1]); got != want {
						t.Errorf("GET %s: data path shows %q, want %q", p, got, want)
					}
				}
			})
		}
	}
	t.Run("labels", func(t *testing.T) {
		_, b := loggedIn(t)
		body := b.do("GET", "/", nil, nil).Body.String()
		m := regexp.MustCompile(`(?s)id="dash-labels"[^>]*>(.*?)</script>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatal("GET /: no dash-labels")
		}
		var labels map[string]string
		if err := json.Unmarshal([]byte(strings.TrimSpace(m[1])), &labels); err != nil {
			t.Fatalf("dash-labels: %v: %s", err, m[1])
		}
		for _, w := range []string{DataPathDiverting, DataPathFailSafe, DataPathWatching, DataPathNotWatching} {
			if got, want := labels["data_path_"+w], testCatalog(t)["en"]["data_path_"+w]; got != want {
				t.Errorf("dash-labels[data_path_%s] = %q, want %q", w, got, want)
			}
		}
	})
}

func testCatalog(t *testing.T) map[string]map[string]string {
	t.Helper()
	cats, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	return cats
}
