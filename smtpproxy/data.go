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
	afterCR                      // within a line, right after a CR
	afterCRDot                   // within a line, right after a bare CR and "."
	afterDot                     // "." at a line start, held back
	afterDotCR                   // ".\r" at a line start, held back
)

// dataScanner finds the end of a DATA block (CRLF "." CRLF, RFC 5321
// section 4.1.1.4) in a stream without changing a byte: dot-stuffing and
// line ends pass as they are. It holds back at most the two octets of a
// possible end mark. The first line starts right after the DATA command's
// CRLF.
type dataScanner struct {
	st     dataState
	bareLF bool  // the current line start follows a bare LF
	size   int64 // octets passed on, the end mark excluded
}

// scan consumes p and appends what is to be forwarded to out. It stops
// after the end mark: done is then true and n says how much of p was
// consumed (the rest belongs to the next command). The end mark itself is
// appended to out too. At a smuggling sequence it stops with errSmuggling;
// out then holds what came before it in p.
func (d *dataScanner) scan(out, p []byte) (_ []byte, n int, done bool, err error) {
	pass := func(b []byte) {
		out = append(out, b...)
		d.size += int64(len(b))
	}
	i := 0
	for i < len(p) {
		c := p[i]
		switch d.st {
		case atLineStart:
			if c == '.' {
				d.st = afterDot
				i++
				continue
			}
			d.st = inLine
		case inLine:
			// The bulk of a message: pass everything up to the line's
			// first CR, or its LF.
			seg := p[i:]
			lf := bytes.IndexByte(seg, '\n')
			end := lf
			if lf < 0 {
				end = len(seg)
			}
			switch cr := bytes.IndexByte(seg[:end], '\r'); {
			case cr >= 0 && cr == lf-1: // CRLF, the usual line end
				pass(seg[:lf+1])
				d.bareLF, d.st = false, atLineStart
				i += lf + 1
			case cr >= 0:
				pass(seg[:cr+1])
				d.st = afterCR
				i += cr + 1
			case lf >= 0:
				pass(seg[:lf+1])
				d.bareLF, d.st = true, atLineStart
				i += lf + 1
			default:
				pass(seg)
				i = len(p)
			}
		case afterCR:
			switch c {
			case '\n':
				d.bareLF, d.st = false, atLineStart
			case '.':
				d.st = afterCRDot
			case '\r':
				// A CR after a CR: still right after one.
			default:
				d.st = inLine
			}
			pass(p[i : i+1])
			i++
		case afterCRDot:
			if c == '\r' || c == '\n' {
				return out, i, false, errSmuggling
			}
			d.st = inLine
		case afterDot:
			switch c {
			case '\r':
				d.st = afterDotCR
				i++
			case '\n':
				return out, i, false, errSmuggling
			default:
				pass([]byte{'.'})
				d.st = inLine
			}
		case afterDotCR:
			if c == '\n' {
				if d.bareLF {
					return out, i, false, errSmuggling
				}
				return append(out, ".\r\n"...), i + 1, true, nil
			}
			pass([]byte(".\r"))
			d.st = afterCR
		}
	}
	return out, i, false, nil
}
