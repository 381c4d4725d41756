// Package export streams every recorded event and every audit entry to
// syslog collectors (a SIEM), as RFC 5424 with structured data or as JSON
// lines, over UDP, TCP (RFC 6587 octet counting) or TLS.
//
// It is never on the data path's critical path: the store hands each
// record to Observe/ObserveAudit, which only queues it in memory (full:
// dropped and counted); a writer appends it to one bounded on-disk spool
// per collector; one sender per collector reads its spool from a persisted
// cursor and advances the cursor only after a successful write.
//
// One job per file: format.go (the lines), spool.go (the on-disk queue),
// sender.go (transports, reconnection, rate), export.go (the fan-out,
// metrics and status).
package export

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// SDID is the SD-ID of relaygate's structured data: a name at the
// private enterprise number 32473, which RFC 5612 reserves for
// documentation and examples.
const SDID = "relaygate@32473"

// AppName is the APP-NAME of every line.
const AppName = "relaygate"

// Line formats.
const (
	FormatRFC5424 = "rfc5424"
	FormatJSON    = "json"
)

// maxParam bounds one SD-PARAM value before a line is fitted to its
// collector's max_line_bytes; rcpt is joined with "," and clipped to it.
const maxParam = 1024

// minParam is how far fitting a line may shrink a param value.
const minParam = 16

// Record is one thing to export: an event or an audit entry, with the id
// that names it on every collector (for deduplication there).
type Record struct {
	ID    string
	Event *event.Event
	Audit *store.AuditEntry
}

// Time is when the record happened.
func (r Record) Time() time.Time {
	if r.Audit != nil {
		return r.Audit.Time
	}
	return r.Event.Time
}

// Kind is the event kind, or "audit".
func (r Record) Kind() string {
	if r.Audit != nil {
		return "audit"
	}
	return string(r.Event.Kind)
}

// param is one SD-PARAM.
type param struct{ name, value string }

// params lists the record's structured data, empty values left out.
func (r Record) params() []param {
	ps := []param{{"id", r.ID}, {"kind", r.Kind()}}
	add := func(name, value string) {
		if value != "" {
			ps = append(ps, param{name, value})
		}
	}
	if a := r.Audit; a != nil {
		add("actor", a.Actor)
		add("action", a.Action)
		add("remote", a.Remote)
		add("detail", a.Detail)
		return ps
	}
	e := r.Event
	if e.Client.IsValid() {
		add("client", e.Client.String())
	}
	if e.Server.IsValid() {
		add("server", e.Server.String())
	}
	if e.ServerPort != 0 {
		add("server_port", strconv.Itoa(int(e.ServerPort)))
	}
	add("relay", e.Relay)
	add("helo", e.Helo)
	add("mail_from", e.MailFrom)
	add("rcpt", event.Clip(strings.Join(e.Rcpt, ","), maxParam))
	if e.RcptDropped > 0 {
		add("rcpt_dropped", strconv.Itoa(e.RcptDropped))
	}
	if e.Messages != 0 {
		add("messages", strconv.Itoa(e.Messages))
	}
	if e.Bytes != 0 {
		add("bytes", strconv.FormatInt(e.Bytes, 10))
	}
	if e.Size != 0 {
		add("size", strconv.FormatInt(e.Size, 10))
	}
	if e.Code != 0 {
		add("code", strconv.Itoa(e.Code))
	}
	add("reply", e.Reply)
	add("detail", e.Detail)
	add("tls", e.TLS)
	if e.Encrypted {
		add("encrypted", "true")
	}
	return ps
}

// severity is the RFC 5424 severity of a record.
func (r Record) severity() int {
	switch r.Kind() {
	case string(event.Alert):
		return 1 // alert: action must be taken immediately
	case string(event.UpstreamError):
		return 3 // error
	case string(event.Blocked), string(event.WouldBlock), string(event.Refused):
		return 4 // warning
	case string(event.Deferred), "audit":
		return 5 // notice
	default:
		return 6 // informational
	}
}

// message is the free-text MSG: one readable line.
func (r Record) message() string {
	if a := r.Audit; a != nil {
		return fmt.Sprintf("audit %s by %s from %s: %s", a.Action, a.Actor, a.Remote, a.Detail)
	}
	e := r.Event
	var b strings.Builder
	b.WriteString(string(e.Kind))
	if e.Client.IsValid() {
		b.WriteString(" " + e.Client.String())
	}
	if e.Server.IsValid() {
		b.WriteString(" -> " + e.Server.String())
	}
	if e.MailFrom != "" {
		b.WriteString(" from <" + e.MailFrom + ">")
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Formatter turns records into lines of one format, at most MaxLine octets.
type Formatter struct {
	// Format is FormatRFC5424 or FormatJSON.
	Format string
	// Facility is the RFC 5424 facility code, e.g. 16 (local0).
	Facility int
	// Hostname is the HOSTNAME field (and "host" in JSON).
	Hostname string
	// MaxLine bounds a line in octets (framing excluded), at least
	// config.MinExportLineBytes.
	MaxLine int
}

// Line formats r. A line longer than MaxLine is fitted: the MSG is cut
// first, then the longest param values are shrunk, and the param
// clipped="true" says so; the id, kind and addresses always survive.
func (f Formatter) Line(r Record) []byte {
	ps := r.params()
	for i := range ps {
		ps[i].value = event.Clip(clean(ps[i].value), maxParam)
	}
	msg := clean(r.message())
	render := f.rfc5424
	if f.Format == FormatJSON {
		render = f.json
	}
	line := render(r, ps, msg, false)
	if len(line) <= f.MaxLine {
		return line
	}
	// Cut the MSG to what is left, then shrink the longest values.
	msg = ""
	for limit := maxParam; ; limit /= 2 {
		if limit < minParam {
			limit = minParam
		}
		for i := range ps {
			if ps[i].name != "id" && ps[i].name != "kind" {
				ps[i].value = event.Clip(ps[i].value, limit)
			}
		}
		line = render(r, ps, msg, true)
		if len(line) <= f.MaxLine || limit == minParam {
			break
		}
	}
	if len(line) > f.MaxLine {
		// Only possible with a MaxLine below config.MinExportLineBytes.
		line = []byte(event.Clip(string(line), f.MaxLine))
	}
	return line
}

// rfc5424 renders <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG.
func (f Formatter) rfc5424(r Record, ps []param, msg string, clipped bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>1 %s %s %s - %s [%s", f.Facility*8+r.severity(),
		r.Time().UTC().Format("2006-01-02T15:04:05.000000Z"), headerField(f.Hostname, 255), AppName,
		headerField(r.Kind(), 32), SDID)
	for _, p := range ps {
		b.WriteString(" " + p.name + `="` + escapeParam(p.value) + `"`)
	}
	if clipped {
		b.WriteString(` clipped="true"`)
	}
	b.WriteString("]")
	if msg != "" {
		b.WriteString(" " + msg)
	}
	return []byte(b.String())
}

// json renders one JSON object: time, host, id, kind and the params.
func (f Formatter) json(r Record, ps []param, msg string, clipped bool) []byte {
	var b strings.Builder
	b.WriteString(`{"time":`)
	t, _ := json.Marshal(r.Time().UTC().Format(time.RFC3339Nano))
	b.Write(t)
	h, _ := json.Marshal(f.Hostname)
	b.WriteString(`,"host":`)
	b.Write(h)
	for _, p := range ps {
		v, _ := json.Marshal(p.value)
		b.WriteString(`,"` + p.name + `":`)
		b.Write(v)
	}
	if clipped {
		b.WriteString(`,"clipped":"true"`)
	}
	if msg != "" {
		v, _ := json.Marshal(msg)
		b.WriteString(`,"msg":`)
		b.Write(v)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// escapeParam escapes a PARAM-VALUE: '"', '\' and ']' are preceded by a
// backslash (RFC 5424 section 6.3.3).
func escapeParam(s string) string {
	if !strings.ContainsAny(s, `"\]`) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if c == '"' || c == '\\' || c == ']' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// clean makes s one line of valid UTF-8: control characters become
// spaces, invalid octets U+FFFD. A LAN host controls its envelope; it must
// not be able to start a new line on the collector.
func clean(s string) string {
	ok := utf8.ValidString(s)
	if ok {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == 0x7f {
				ok = false
				break
			}
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, c := range strings.ToValidUTF8(s, "\uFFFD") {
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		b.WriteRune(c)
	}
	return b.String()
}

// headerField is a header field: printable US-ASCII without spaces, at
// most n octets, "-" when empty (RFC 5424 section 6.2).
func headerField(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		if s[i] > 32 && s[i] < 127 {
			b.WriteByte(s[i])
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}
