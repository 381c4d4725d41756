package smtpproxy

import (
	"bytes"
	"errors"
)

// errSmuggling is a line holding only "." that ends with a bare LF, or
// that follows a line ending with a bare LF, or a "." between a bare CR
// and a CR or LF ("\r.\r", "\r.\n"). Servers disagree on whether these
// end the message (SMTP smuggling, CVE-2023-51764 and friends): the proxy
// neither forwards them nor treats them as the end, and aborts.
var errSmuggling = errors.New("end-of-data sequence with a bare CR or LF")

// dataState is where a dataScanner is in a line.
type dataState uint8

const (
	atLineStart dataState = iota // at the start of a line
	inLine                       // within a line
	afterDot                     // "." at a line start, held back
	afterDotCR                   // ".\r" at a line start, held back
)

// dataScanner finds the end of a DATA block (CRLF "." CRLF, RFC 5321
// section 4.1.1.4) in a stream without changing a byte: dot-stuffing and
// line ends pass as they are. It holds back at most the two octets of a
// possible end mark. The first line starts right after the DATA command's
// CRLF.
type dataScanner struct {
	st      dataState
	lastCR  bool  // inLine: the last octet passed was CR
	crDot   bool  // inLine: the last octets passed were a bare CR and "."
	bareLF  bool  // the current line start follows a bare LF
	size    int64 // octets passed on, the end mark excluded
	scanned int64 // octets consumed
}

// scan consumes p and appends what is to be forwarded to out. It stops
// after the end mark: done is then true and n says how much of p was
// consumed (the rest belongs to the next command). The end mark itself is
// appended to out too.
func (d *dataScanner) scan(out, p []byte) (_ []byte, n int, done bool, err error) {
	i := 0
	for i < len(p) {
		switch d.st {
		case atLineStart:
			if p[i] == '.' {
				d.st = afterDot
				i++
				continue
			}
			d.st, d.lastCR = inLine, false
		case afterDot:
			switch p[i] {
			case '\r':
				d.st = afterDotCR
				i++
			case '\n':
				return out, i, false, errSmuggling
			default:
				out = append(out, '.')
				d.size++
				d.st, d.lastCR = inLine, false
			}
		case afterDotCR:
			if p[i] == '\n' {
				if d.bareLF {
					return out, i, false, errSmuggling
				}
				out = append(out, ".\r\n"...)
				i++
				d.scanned += int64(i)
				return out, i, true, nil
			}
			out = append(out, ".\r"...)
			d.size += 2
			d.st, d.lastCR = inLine, true
		case inLine:
			// A bare CR, "." and CR or LF across the chunk boundary.
			if d.crDot && (p[i] == '\r' || p[i] == '\n') ||
				d.lastCR && p[i] == '.' && i+1 < len(p) && (p[i+1] == '\r' || p[i+1] == '\n') {
				return out, i, false, errSmuggling
			}
			crDot := d.lastCR && p[i] == '.' && i+1 == len(p)
			d.crDot = false
			j := bytes.IndexByte(p[i:], '\n')
			end := len(p)
			if j >= 0 {
				end = i + j + 1
			}
			at, tail := bareCRDot(p[i:end])
			if at >= 0 {
				return out, i, false, errSmuggling
			}
			if j < 0 {
				out = append(out, p[i:]...)
				d.size += int64(len(p) - i)
				d.lastCR = p[len(p)-1] == '\r'
				d.crDot = tail || crDot
				i = len(p)
				continue
			}
			cr := d.lastCR
			if j > 0 {
				cr = p[i+j-1] == '\r'
			}
			out = append(out, p[i:i+j+1]...)
			d.size += int64(j + 1)
			d.bareLF = !cr
			d.st = atLineStart
			i += j + 1
		}
	}
	d.scanned += int64(i)
	return out, i, false, nil
}

// bareCRDot returns the offset in seg of a bare CR followed by "." and a
// CR or LF, or -1; tail reports that seg ends with a bare CR and ".",
// whose next octet is still to come.
func bareCRDot(seg []byte) (at int, tail bool) {
	for off := 0; ; {
		k := bytes.Index(seg[off:], []byte("\r."))
		if k < 0 {
			return -1, false
		}
		k += off
		if k+2 == len(seg) {
			return -1, true
		}
		if c := seg[k+2]; c == '\r' || c == '\n' {
			return k, false
		}
		off = k + 2
	}
}
