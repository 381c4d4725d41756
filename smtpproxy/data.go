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

// dataScanner finds the end of a DATA block (CRLF "." CRLF, RFC 5321
// section 4.1.1.4) in a stream without changing a byte: dot-stuffing and
// line ends pass as they are, so what it consumed is forwarded as it is,
// straight from the reader's buffer.
//
// Only a "." right after a CR or an LF can end the message or be part of
// a smuggling sequence, so the scanner jumps from one "." to the next
// (bytes.IndexByte) and looks at the two octets before it and the two
// after it. A base64 attachment holds no "." at all and is passed in one
// step. A "." too close to the end of the input to be decided is not
// consumed: the caller offers it again with more input after it. The
// first line starts right after the DATA command's CRLF.
type dataScanner struct {
	prev [2]byte // the last two octets consumed (prev[1] the last)
	size int64   // octets consumed, the end mark excluded
	init bool
}

// scan consumes a prefix of p that can be forwarded as it is: n octets.
// done says that the prefix ends with the end mark (the rest of p belongs
// to the next command). At a smuggling sequence it stops with
// errSmuggling; n is then the octets before the sequence's ".", which
// must not be forwarded either: the caller aborts the message. Without
// done or an error, p[n:] (at most three octets) waits for more input.
func (d *dataScanner) scan(p []byte) (n int, done bool, err error) {
	if !d.init {
		d.prev, d.init = [2]byte{'\r', '\n'}, true
	}
	// at returns the octet k positions into p; before p, what was consumed.
	at := func(k int) byte {
		if k >= 0 {
			return p[k]
		}
		return d.prev[2+k]
	}
	for i := 0; ; {
		k := bytes.IndexByte(p[i:], '.')
		if k < 0 {
			return d.consume(p, len(p)), false, nil
		}
		j := i + k
		i = j + 1
		b1 := at(j - 1)
		if b1 != '\r' && b1 != '\n' {
			continue // a "." within a line
		}
		if j+1 >= len(p) {
			return d.consume(p, j), false, nil
		}
		c1 := p[j+1]
		if b1 == '\r' {
			// "\r." between a bare CR and a line end.
			if c1 == '\r' || c1 == '\n' {
				return d.consume(p, j), false, errSmuggling
			}
			continue
		}
		// A "." at the start of a line.
		switch c1 {
		case '\n':
			return d.consume(p, j), false, errSmuggling
		case '\r':
			if j+2 >= len(p) {
				return d.consume(p, j), false, nil
			}
			if p[j+2] != '\n' {
				continue
			}
			if at(j-2) != '\r' {
				// The line before ended with a bare LF.
				return d.consume(p, j), false, errSmuggling
			}
			n = d.consume(p, j+3)
			d.size -= 3
			return n, true, nil
		}
	}
}

// consume takes p[:n] as scanned and returns n.
func (d *dataScanner) consume(p []byte, n int) int {
	switch {
	case n >= 2:
		d.prev = [2]byte{p[n-2], p[n-1]}
	case n == 1:
		d.prev = [2]byte{d.prev[1], p[0]}
	}
	d.size += int64(n)
	return n
}
