package smtpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Line limits. RFC 5321 section 4.5.3.1 allows 512 octets per command line
// and 512 per reply line, but SMTP extensions (SIZE, DSN's ORCPT, ...) add
// to them, so the proxy accepts as much as Postfix's line_length_limit.
const (
	maxCmdLine    = 2048
	maxReplyLine  = 2048
	maxReplyLines = 100 // lines of one multi-line reply
)

var (
	errLineTooLong  = errors.New("line too long")
	errBadReply     = errors.New("malformed reply")
	errReplyTooLong = errors.New("reply has too many lines")
)

// readLine reads one line up to its LF, included. A line longer than max
// is consumed up to its LF and reported as errLineTooLong. The buffer of r
// must be larger than max; the returned slice is valid until the next read.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = r.ReadSlice('\n')
		}
		if err != nil {
			return nil, err
		}
		return nil, errLineTooLong
	}
	if err != nil {
		return nil, err
	}
	if len(line) > max {
		return nil, errLineTooLong
	}
	return line, nil
}

// command is one parsed command line.
type command struct {
	verb string // upper case, e.g. "MAIL"
	arg  string // after the verb and one space, without the line end
}

// parseCommand splits a command line (with its line end) into verb and
// argument. ok is false for anything that is not a verb of ASCII letters
// (1 to 16) optionally followed by a space and printable text: garbage,
// binary, a TLS ClientHello sent in clear.
func parseCommand(line []byte) (cmd command, ok bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	verb, arg, _ := bytes.Cut(line, []byte(" "))
	if len(verb) == 0 || len(verb) > 16 {
		return command{}, false
	}
	for _, c := range verb {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return command{}, false
		}
	}
	for _, c := range arg {
		// SMTPUTF8 addresses are UTF-8: allow octets >= 0x80, refuse controls.
		if c < 0x20 && c != '\t' || c == 0x7f {
			return command{}, false
		}
	}
	return command{verb: strings.ToUpper(string(verb)), arg: string(arg)}, true
}

// parsePath returns the mailbox of a MAIL FROM or RCPT TO argument: prefix
// is "FROM:" or "TO:" (compared without case); a space after the colon is
// tolerated, as most servers do. The null path <> returns "" and true.
func parsePath(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		// Some clients omit the brackets; take the first word.
		addr, _, _ := strings.Cut(rest, " ")
		return addr, addr != ""
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", false
	}
	addr := rest[1:end]
	// A source route (RFC 5321 section 4.1.2) precedes the mailbox: drop it.
	if i := strings.IndexByte(addr, ':'); i >= 0 && strings.HasPrefix(addr, "@") {
		addr = addr[i+1:]
	}
	return addr, true
}

// domainOf returns the lower-case domain of a mailbox, "" if none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}

// parseBDAT parses the argument of BDAT: a chunk size and an optional LAST
// (RFC 3030).
func parseBDAT(arg string) (size int64, last bool, ok bool) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 || len(f[0]) > 18 {
		return 0, false, false
	}
	for _, c := range f[0] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false, false
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, false
		}
		last = true
	}
	return n, last, true
}

// reply is one server reply as received: raw holds every line with its
// line end, so that it passes to the client byte for byte.
type reply struct {
	code int
	raw  []byte
}

// readReply reads one (possibly multi-line) reply, RFC 5321 section 4.2:
// every line is three digits, then "-" (more lines follow) or " " or the
// end of the line (the last line); all lines carry the same code.
func readReply(r *bufio.Reader) (reply, error) {
	var rp reply
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return reply{}, errReplyTooLong
		}
		line, err := readLine(r, maxReplyLine)
		if err != nil {
			return reply{}, err
		}
		code, more, ok := parseReplyLine(line)
		if !ok || (n > 0 && code != rp.code) {
			return reply{}, fmt.Errorf("%w: %q", errBadReply, truncate(line, 64))
		}
		rp.code = code
		rp.raw = append(rp.raw, line...)
		if !more {
			return rp, nil
		}
	}
}

// parseReplyLine checks one reply line (with its line end).
func parseReplyLine(line []byte) (code int, more bool, ok bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) < 3 {
		return 0, false, false
	}
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if code < 200 || code > 599 {
		return 0, false, false
	}
	if len(line) == 3 {
		return code, false, true
	}
	switch line[3] {
	case '-':
		return code, true, true
	case ' ':
		return code, false, true
	}
	return 0, false, false
}

// lines returns the reply's lines without line ends.
func (r reply) lines() []string {
	s := strings.TrimSuffix(string(r.raw), "\n")
	out := strings.Split(s, "\n")
	for i := range out {
		out[i] = strings.TrimSuffix(out[i], "\r")
	}
	return out
}

// text returns the reply in one line for events and logs: the lines' texts
// after the code joined with " / ", e.g. "250 2.0.0 Ok: queued as 4XyZ".
func (r reply) text() string {
	ls := r.lines()
	var b strings.Builder
	fmt.Fprintf(&b, "%d", r.code)
	for i, l := range ls {
		t := ""
		if len(l) > 4 {
			t = l[4:]
		}
		if i == 0 {
			b.WriteString(" ")
		} else {
			b.WriteString(" / ")
		}
		b.WriteString(t)
	}
	return strings.TrimSpace(truncateString(b.String(), 512))
}

// localReply formats a reply of the proxy's own, one line.
func localReply(code int, enhanced, text string) []byte {
	return []byte(fmt.Sprintf("%d %s %s\r\n", code, enhanced, text))
}

// ehloExtensions are the EHLO keywords the proxy relays correctly and so
// passes on when the remote offered them. STARTTLS is added per policy;
// everything else (AUTH, XCLIENT, BINARYMIME, REQUIRETLS, ...) is dropped.
var ehloExtensions = map[string]bool{
	"SIZE":                true,
	"8BITMIME":            true,
	"SMTPUTF8":            true,
	"PIPELINING":          true,
	"CHUNKING":            true,
	"DSN":                 true,
	"ENHANCEDSTATUSCODES": true,
}

// filterEHLO rewrites a 2xx EHLO reply: the first line (the greeting) is
// kept, extension lines are kept if allowed and in ehloExtensions or
// STARTTLS with offerTLS; the lines keep their text and the last line is
// marked as such. exts maps the remote's keywords (upper case) to their
// parameters, all of them, before filtering.
func filterEHLO(r reply, offerTLS bool) (out []byte, exts map[string]string) {
	ls := r.lines()
	exts = map[string]string{}
	kept := []string{ls[0]}
	for _, l := range ls[1:] {
		if len(l) <= 4 {
			continue
		}
		kw, params, _ := strings.Cut(l[4:], " ")
		kw = strings.ToUpper(kw)
		exts[kw] = params
		if ehloExtensions[kw] || kw == "STARTTLS" && offerTLS {
			kept = append(kept, l)
		}
	}
	var b bytes.Buffer
	for i, l := range kept {
		text := ""
		if len(l) > 4 {
			text = l[4:]
		}
		sep := "-"
		if i == len(kept)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%d%s%s\r\n", r.code, sep, text)
	}
	return b.Bytes(), exts
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
