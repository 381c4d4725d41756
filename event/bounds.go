package event

import "unicode/utf8"

// Bounds of what one event may hold. A LAN host controls its envelope
// (HELO, MAIL FROM, RCPT TO) and can make every field as long as the SMTP
// line limit allows; the refusal dialogue, passive inspection and the store
// clip with these same bounds, so that one event costs at most MaxBytes
// however the host talks.
const (
	// MaxHelo bounds the HELO/EHLO name: a domain is at most 255 octets
	// (RFC 1035 section 2.3.4).
	MaxHelo = 255
	// MaxPath bounds MAIL FROM and each RCPT TO address: a local part of
	// 64 octets, "@" and a domain of 255 (RFC 5321 section 4.5.3.1).
	MaxPath = 320
	// MaxText bounds the free-text fields: detail and the remote's reply.
	MaxText = 1024
	// MaxRcpt bounds the recipients kept in one event; RcptDropped counts
	// the others.
	MaxRcpt = 1000
	// MaxBytes bounds the variable-length fields of one event together
	// (Size); recipients beyond it are dropped and counted in RcptDropped.
	MaxBytes = 16 << 10
	// FixedBytes is what an event costs in the store beside its
	// variable-length fields: times, addresses, numbers and the row's index
	// entries, approximately.
	FixedBytes = 160
)

// Clip returns s cut to at most n octets, at a UTF-8 character boundary so
// that the result stays valid text.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// rcptBytes is what one recipient costs: the address, its quotes and comma
// in the stored JSON list.
func rcptBytes(r string) int { return len(r) + 3 }

// StoredBytes is the approximate size of e in the store: its
// variable-length fields plus FixedBytes. Clip keeps it at most
// MaxBytes + FixedBytes.
func (e *Event) StoredBytes() int {
	n := FixedBytes + len(e.Helo) + len(e.MailFrom) + len(e.Detail) + len(e.Reply) + len(e.Relay) + len(e.TLS)
	for _, r := range e.Rcpt {
		n += rcptBytes(r)
	}
	return n
}

// Clip bounds e: HELO to MaxHelo, MAIL FROM and each recipient to MaxPath,
// detail and reply to MaxText, relay name and TLS to MaxPath, at most
// MaxRcpt recipients, and then as many recipients as fit in MaxBytes. The
// recipients it drops are added to RcptDropped, so that the event still
// says how many there were. It may replace e.Rcpt with a new slice; it
// never changes the caller's backing array.
func (e *Event) Clip() {
	e.Helo = Clip(e.Helo, MaxHelo)
	e.MailFrom = Clip(e.MailFrom, MaxPath)
	e.Detail = Clip(e.Detail, MaxText)
	e.Reply = Clip(e.Reply, MaxText)
	e.Relay = Clip(e.Relay, MaxPath)
	e.TLS = Clip(e.TLS, MaxPath)
	budget := MaxBytes - (e.StoredBytes() - FixedBytes)
	for _, r := range e.Rcpt {
		budget += rcptBytes(r) // StoredBytes counted them; count them again below
	}
	keep := 0
	var out []string
	for i, r := range e.Rcpt {
		c := Clip(r, MaxPath)
		if keep >= MaxRcpt || rcptBytes(c) > budget {
			break
		}
		if c != r && out == nil {
			out = append(make([]string, 0, len(e.Rcpt)), e.Rcpt[:i]...)
		}
		if out != nil {
			out = append(out, c)
		}
		budget -= rcptBytes(c)
		keep++
	}
	if out == nil {
		out = e.Rcpt[:keep:keep]
	}
	e.RcptDropped += len(e.Rcpt) - keep
	e.Rcpt = out
}
