package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// pages are the Markdown files whose links are checked, relative to this
// directory: the README, HACKING.md and every page here.
func pages(t *testing.T) []string {
	t.Helper()
	here, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../README.md", "../HACKING.md"}, here...)
}

var (
	// linkRE matches an inline link or image target: ](target) or
	// ](target "title").
	linkRE = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// codeSpanRE matches inline code, whose brackets are not links.
	codeSpanRE = regexp.MustCompile("`+[^`]*`+")
	headingRE  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	// mdLinkRE reduces a link inside a heading to its text.
	mdLinkRE = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// TestLinks: every relative link of the pages points to a file that
// exists and, with #anchor, to a heading of that file (GitHub's anchors).
func TestLinks(t *testing.T) {
	anchors := map[string]map[string]bool{} // cleaned path -> anchors
	anchorsOf := func(path string) (map[string]bool, error) {
		if a, ok := anchors[path]; ok {
			return a, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		a := map[string]bool{}
		for _, h := range headings(string(b)) {
			a[h] = true
		}
		anchors[path] = a
		return a, nil
	}
	checked := 0
	for _, page := range pages(t) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links(string(b)) {
			target, anchor, _ := strings.Cut(l.target, "#")
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			path := filepath.Clean(page)
			if target != "" {
				path = filepath.Join(filepath.Dir(page), target)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s:%d: link %q: %v", page, l.line, l.target, err)
				continue
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(path, ".md") {
				t.Errorf("%s:%d: link %q: an anchor into a file that is not Markdown", page, l.line, l.target)
				continue
			}
			a, err := anchorsOf(path)
			if err != nil {
				t.Fatal(err)
			}
			if !a[anchor] {
				t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", page, l.line, l.target, path, anchor)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no links found: the parser is broken")
	}
}

type link struct {
	target string
	line   int
}

// links returns the link targets of a Markdown text outside code blocks
// and code spans.
func links(md string) []link {
	var out []link
	inFence := false
	for i, line := range strings.Split(md, "\n") {
		if isFence(line) {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		line = codeSpanRE.ReplaceAllString(line, "")
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			out = append(out, link{target: m[1], line: i + 1})
		}
	}
	return out
}

func isFence(line string) bool {
	s := strings.TrimLeft(line, " ")
	return strings.HasPrefix(s, "```") || strings.HasPrefix(s, "~~~")
}

// headings returns the anchors GitHub gives the headings of a Markdown
// text, in order, numbered -1, -2, ... where a slug repeats.
func headings(md string) []string {
	var out []string
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if isFence(line) {
			inFence = !inFence
			continue
		}
		m := headingRE.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out = append(out, fmt.Sprintf("%s-%d", s, n))
		} else {
			out = append(out, s)
		}
		seen[s]++
	}
	return out
}

// slug is GitHub's anchor for a heading's text: the text as rendered
// (links reduced to their text, no code marks), lower-cased, every
// character but letters, digits, spaces, '-' and '_' dropped, spaces made
// '-'.
func slug(heading string) string {
	text := mdLinkRE.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"How it works", "how-it-works"},
		{"Install on hardware / in a VM", "install-on-hardware--in-a-vm"},
		{"Relaying, STARTTLS policies (what breaks DANE/MTA-STS) and limits", "relaying-starttls-policies-what-breaks-danemta-sts-and-limits"},
		{"The web UI: first start, login, pages", "the-web-ui-first-start-login-pages"},
		{"STARTTLS: `passthrough` (default) and `inspect`", "starttls-passthrough-default-and-inspect"},
		{"SMTP through the proxy vs direct (`scripts/bench-smtp.sh`)", "smtp-through-the-proxy-vs-direct-scriptsbench-smtpsh"},
		{"One complete `make bench` (2026-11-23 19:12-19:17 UTC)", "one-complete-make-bench-2026-11-23-1912-1917-utc"},
		{"See [the API](api.md) now", "see-the-api-now"},
		{"data_dir and log_level", "data_dir-and-log_level"},
	} {
		if got := slug(tc.heading); got != tc.want {
			t.Errorf("slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
	got := headings("# A\n```\n# not a heading\n```\n## A\n### B #\n")
	want := []string{"a", "a-1", "b"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("headings(...) = %v, want %v", got, want)
	}
}
