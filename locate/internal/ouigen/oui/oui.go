// Package oui reads the IEEE registry's CSV files (MA-L, MA-M, MA-S, IAB)
// into the compact list that package locate embeds.
package oui

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// MaxName bounds an organisation name in the list, in bytes.
const MaxName = 64

// Registry maps an upper-case hex prefix (6, 7 or 9 digits) to its
// organisation.
type Registry map[string]string

// prefixLen is the hex length of an assignment per IEEE registry.
var prefixLen = map[string]int{"MA-L": 6, "MA-M": 7, "MA-S": 9, "IAB": 9}

// ReadCSV adds the assignments of one IEEE CSV file ("Registry,Assignment,
// Organization Name,Organization Address"); a prefix already present keeps
// its first organisation. It returns how many rows it added.
func (r Registry) ReadCSV(rd io.Reader) (int, error) {
	cr := csv.NewReader(bufio.NewReader(rd))
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	added := 0
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return added, nil
		}
		if err != nil {
			return added, fmt.Errorf("line %d: %w", line, err)
		}
		if len(rec) < 3 {
			continue
		}
		want, ok := prefixLen[strings.TrimSpace(rec[0])]
		if !ok {
			continue // the header, or a registry without MAC prefixes
		}
		prefix := strings.ToUpper(strings.TrimSpace(rec[1]))
		if len(prefix) != want || !isHex(prefix) {
			return added, fmt.Errorf("line %d: bad assignment %q for %s", line, rec[1], rec[0])
		}
		name := Clean(rec[2])
		if name == "" {
			continue
		}
		if _, dup := r[prefix]; !dup {
			r[prefix] = name
			added++
		}
	}
}

// Clean collapses white space, drops control characters and clips to
// MaxName bytes on a character boundary.
func Clean(s string) string {
	s = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)), " ")
	for len(s) > MaxName {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return strings.TrimSpace(s)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// WriteGzip writes the sorted list, gzip compressed, reproducibly (no
// name or time in the gzip header).
func (r Registry) WriteGzip(w io.Writer) error {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(zw)
	for _, k := range keys {
		fmt.Fprintf(bw, "%s\t%s\n", k, r[k])
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}
