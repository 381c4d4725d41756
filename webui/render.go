package webui

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/store"
)

// templatesFS holds the server-rendered pages: layout.html wraps each
// page's "content".
//
//go:embed templates
var templatesFS embed.FS

// pageData is what every page template gets.
type pageData struct {
	page      string
	Lang      string
	OtherLang string
	LangURL   string
	M         map[string]string
	Nav       string
	User      string
	CSRF      string
	Error     string
	Notice    string
	Data      any
}

// fieldArgs is the argument of the "numfield" sub-template.
type fieldArgs struct {
	P     *pageData
	Name  string
	Value string
}

// templateFuncs are the helpers the templates use.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		// t formats a catalog entry: {{t .M "switch_to" "enforce"}}.
		"t": func(m map[string]string, key string, args ...any) string {
			v, ok := m[key]
			if !ok {
				return "!" + key
			}
			if len(args) == 0 {
				return v
			}
			return fmt.Sprintf(v, args...)
		},
		"fmtTime": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		},
		"isoTime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"bytes":   humanBytes,
		"join":    strings.Join,
		"addr": func(a netip.Addr) string {
			if !a.IsValid() {
				return ""
			}
			return a.String()
		},
		"pathEscape": url.PathEscape,
		// fieldArgs passes a page and one form field to a sub-template.
		"fieldArgs": func(p *pageData, name, value string) fieldArgs { return fieldArgs{p, name, value} },
	}
}

// parseTemplates parses layout.html with each page.
func parseTemplates() (map[string]*template.Template, error) {
	pages, err := fs.Glob(templatesFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("glob templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		name := path.Base(p)
		if name == "layout.html" {
			continue
		}
		t, err := template.New(name).Funcs(templateFuncs()).ParseFS(templatesFS, "templates/layout.html", p)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		out[name] = t
	}
	if len(out) == 0 {
		return nil, errors.New("no page templates")
	}
	return out, nil
}

func humanBytes(v uint64) string {
	const unit = 1024
	if v < unit {
		return fmt.Sprintf("%d B", v)
	}
	div, exp := uint64(unit), 0
	for n := v / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(v)/float64(div), "KMGTPE"[exp])
}

// newPage starts the data of a page for the request: language, session,
// navigation.
func (s *server) newPage(c *gin.Context, page, nav string) *pageData {
	lang := pickLang(c)
	other := "ja"
	if lang == "ja" {
		other = "en"
	}
	q := c.Request.URL.Query()
	q.Set("lang", other)
	p := &pageData{page: page, Lang: lang, OtherLang: other, M: s.catalog[lang], Nav: nav,
		LangURL: c.Request.URL.Path + "?" + q.Encode()}
	if v, ok := c.Get(sessionKey); ok {
		se := v.(*store.Session)
		p.User, p.CSRF = se.Username, se.CSRF
	}
	return p
}

// render executes a page template and writes it with status.
func (s *server) render(c *gin.Context, status int, page string, p *pageData) {
	t := s.templates[page]
	if t == nil {
		s.log.Error("no template", "page", page)
		c.String(http.StatusInternalServerError, "internal error\n")
		c.Abort()
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("render page", "page", page, "err", err)
		c.String(http.StatusInternalServerError, "internal error\n")
		c.Abort()
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
	c.Abort()
}

// renderMessage shows a page with one message (errors that end a flow).
func (s *server) renderMessage(c *gin.Context, status int, key string) {
	p := s.newPage(c, "message.html", "")
	p.Error = p.M[key]
	s.render(c, status, "message.html", p)
}

// pageError logs err once and shows a generic error page.
func (s *server) pageError(c *gin.Context, status int, op string, err error) {
	s.log.Error(op, "err", err, "path", c.Request.URL.Path)
	s.renderMessage(c, status, "err_internal")
}

// msg returns a catalog entry in the request's language.
func (s *server) msg(c *gin.Context, key string) string { return s.catalog[pickLang(c)][key] }
