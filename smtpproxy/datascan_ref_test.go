package smtpproxy

import "bytes"

// refState is where a refScanner is in a line.
type refState uint8

const (
	refAtLineStart refState = iota // at the start of a line
	refInLine                      // within a line
	refAfterCR                     // within a line, right after a CR
	refAfterCRDot                  // within a line, right after a bare CR and "."
	refAfterDot                    // "." at a line start, held back
	refAfterDotCR                  // ".\r" at a line start, held back
)

// refScanner is the DATA scanner as it was before it jumped from "." to
// "." (a byte-by-byte state machine), kept as the fuzz target's oracle.
// It finds the end of a DATA block (CRLF "." CRLF, RFC 5321
// section 4.1.1.4) in a stream without changing a byte: dot-stuffing and
// line ends pass as they are. It holds back at most the two octets of a
// possible end mark. The first line starts right after the DATA command's
// CRLF.
type refScanner struct {
	st     refState
	bareLF bool  // the current line start follows a bare LF
	size   int64 // octets passed on, the end mark excluded
}

// scan consumes p and appends what is to be forwarded to out. It stops
// after the end mark: done is then true and n says how much of p was
// consumed (the rest belongs to the next command). The end mark itself is
// appended to out too. At a smuggling sequence it stops with errSmuggling;
// out then holds what came before it in p.
func (d *refScanner) scan(out, p []byte) (_ []byte, n int, done bool, err error) {
	pass := func(b []byte) {
		out = append(out, b...)
		d.size += int64(len(b))
	}
	i := 0
	for i < len(p) {
		c := p[i]
		switch d.st {
		case refAtLineStart:
			if c == '.' {
				d.st = refAfterDot
				i++
				continue
			}
			d.st = refInLine
		case refInLine:
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
				d.bareLF, d.st = false, refAtLineStart
				i += lf + 1
			case cr >= 0:
				pass(seg[:cr+1])
				d.st = refAfterCR
				i += cr + 1
			case lf >= 0:
				pass(seg[:lf+1])
				d.bareLF, d.st = true, refAtLineStart
				i += lf + 1
			default:
				pass(seg)
				i = len(p)
			}
		case refAfterCR:
			switch c {
			case '\n':
				d.bareLF, d.st = false, refAtLineStart
			case '.':
				d.st = refAfterCRDot
			case '\r':
				// A CR after a CR: still right after one.
			default:
				d.st = refInLine
			}
			pass(p[i : i+1])
			i++
		case refAfterCRDot:
			if c == '\r' || c == '\n' {
				return out, i, false, errSmuggling
			}
			d.st = refInLine
		case refAfterDot:
			switch c {
			case '\r':
				d.st = refAfterDotCR
				i++
			case '\n':
				return out, i, false, errSmuggling
			default:
				pass([]byte{'.'})
				d.st = refInLine
			}
		case refAfterDotCR:
			if c == '\n' {
				if d.bareLF {
					return out, i, false, errSmuggling
				}
				return append(out, ".\r\n"...), i + 1, true, nil
			}
			pass([]byte(".\r"))
			d.st = refAfterCR
		}
	}
	return out, i, false, nil
}
