package export

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/store"
)

// syslogLine is an RFC 5424 line taken apart.
type syslogLine struct {
	Pri, Version                              int
	Time, Host, App, ProcID, MsgID, SDID, Msg string
	Params                                    map[string]string
}

// parseRFC5424 parses one RFC 5424 line with one SD-ELEMENT, following
// the grammar of RFC 5424 section 6 (it is the test's own parser, not the
// formatter's code run backwards).
func parseRFC5424(line string) (syslogLine, error) {
	var l syslogLine
	rest, ok := strings.CutPrefix(line, "<")
	if !ok {
		return l, fmt.Errorf("no PRI")
	}
	pri, rest, ok := strings.Cut(rest, ">")
	if !ok {
		return l, fmt.Errorf("no PRI end")
	}
	var err error
	if l.Pri, err = strconv.Atoi(pri); err != nil || l.Pri > 191 {
		return l, fmt.Errorf("PRI %q", pri)
	}
	fields := strings.SplitN(rest, " ", 7)
	if len(fields) < 7 {
		return l, fmt.Errorf("header has %d fields", len(fields))
	}
	if l.Version, err = strconv.Atoi(fields[0]); err != nil || l.Version != 1 {
		return l, fmt.Errorf("VERSION %q", fields[0])
	}
	l.Time, l.Host, l.App, l.ProcID, l.MsgID = fields[1], fields[2], fields[3], fields[4], fields[5]
	if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
		return l, fmt.Errorf("TIMESTAMP: %w", err)
	}
	sd := fields[6]
	if !strings.HasPrefix(sd, "[") {
		return l, fmt.Errorf("no SD-ELEMENT")
	}
	i := 1
	for i < len(sd) && sd[i] != ' ' && sd[i] != ']' {
		i++
	}
	l.SDID = sd[1:i]
	l.Params = map[string]string{}
	for i < len(sd) && sd[i] == ' ' {
		i++
		j := strings.IndexByte(sd[i:], '=')
		if j < 1 || j > 32 || sd[i+j+1] != '"' {
			return l, fmt.Errorf("PARAM-NAME at %d", i)
		}
		name := sd[i : i+j]
		i += j + 2
		var v strings.Builder
		for ; i < len(sd) && sd[i] != '"'; i++ {
			if sd[i] == '\\' && i+1 < len(sd) && strings.IndexByte(`"\]`, sd[i+1]) >= 0 {
				i++
			} else if sd[i] == ']' {
				return l, fmt.Errorf("unescaped ] in %s", name)
			}
			v.WriteByte(sd[i])
		}
		if i >= len(sd) {
			return l, fmt.Errorf("unterminated %s", name)
		}
		i++ // closing quote
		if !utf8.ValidString(v.String()) {
			return l, fmt.Errorf("%s is not UTF-8", name)
		}
		l.Params[name] = v.String()
	}
	if i >= len(sd) || sd[i] != ']' {
		return l, fmt.Errorf("SD-ELEMENT not closed at %d", i)
	}
	l.Msg = strings.TrimPrefix(sd[i+1:], " ")
	return l, nil
}

var testTime = time.Date(2026, 12, 1, 9, 30, 0, 123456000, time.UTC)

func blockedEvent() event.Event {
	return event.Event{Time: testTime, Kind: event.Blocked,
		Client: netip.MustParseAddr("10.20.0.50"), Server: netip.MustParseAddr("203.0.113.25"), ServerPort: 25,
		Helo: `evil"helo]`, MailFrom: `bot\@pc.example`, Rcpt: []string{"a@x.example", "b@y.example"},
		Code: 554, Detail: "refused: not a relay", Messages: 1}
}

func TestLineRFC5424ParsesBack(t *testing.T) {
	f := Formatter{Format: FormatRFC5424, Facility: 16, Hostname: "gw-1", MaxLine: 2048}
	e := blockedEvent()
	line := string(f.Line(Record{ID: "abc-1", Event: &e}))
	got, err := parseRFC5424(line)
	if err != nil {
		t.Fatalf("parseRFC5424(%q) = %v", line, err)
	}
	if got.Pri != 16*8+4 || got.Host != "gw-1" || got.App != "relaygate" || got.MsgID != "blocked" || got.SDID != SDID {
		t.Errorf("header = %+v, want PRI 132, gw-1, relaygate, blocked, %s", got, SDID)
	}
	if got.Time != "2026-12-01T09:30:00.123456Z" {
		t.Errorf("TIMESTAMP = %s, want 2026-12-01T09:30:00.123456Z", got.Time)
	}
	want := map[string]string{"id": "abc-1", "kind": "blocked", "client": "10.20.0.50", "server": "203.0.113.25",
		"server_port": "25", "helo": `evil"helo]`, "mail_from": `bot\@pc.example`, "rcpt": "a@x.example,b@y.example",
		"messages": "1", "code": "554", "detail": "refused: not a relay"}
	if diff := cmp.Diff(want, got.Params); diff != "" {
		t.Errorf("structured data (-want +got):\n%s\nline: %s", diff, line)
	}
	if !strings.Contains(line, `helo="evil\"helo\]"`) || !strings.Contains(line, `mail_from="bot\\@pc.example"`) {
		t.Errorf("line %s does not escape '\"', '\\' and ']' as RFC 5424 section 6.3.3 says", line)
	}
}

func TestLineAuditAndKinds(t *testing.T) {
	f := Formatter{Format: FormatRFC5424, Facility: 3, Hostname: "gw", MaxLine: 2048}
	a := store.AuditEntry{Time: testTime, Actor: "admin", Action: "config.update", Detail: "mode: monitor -> enforce", Remote: "192.0.2.7"}
	got, err := parseRFC5424(string(f.Line(Record{ID: "x-2", Audit: &a})))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": "x-2", "kind": "audit", "actor": "admin", "action": "config.update",
		"detail": "mode: monitor -> enforce", "remote": "192.0.2.7"}
	if diff := cmp.Diff(want, got.Params); diff != "" {
		t.Errorf("audit structured data (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		kind event.Kind
		sev  int
	}{{event.Alert, 1}, {event.UpstreamError, 3}, {event.Blocked, 4}, {event.WouldBlock, 4}, {event.Refused, 4}, {event.Deferred, 5}, {event.Relayed, 6}} {
		e := event.Event{Time: testTime, Kind: tc.kind, TLS: "passthrough", Encrypted: true, Bytes: 1234}
		l, err := parseRFC5424(string(f.Line(Record{ID: "k", Event: &e})))
		if err != nil {
			t.Fatal(err)
		}
		if l.Pri != 3*8+tc.sev || l.MsgID != string(tc.kind) || l.Params["tls"] != "passthrough" || l.Params["encrypted"] != "true" || l.Params["bytes"] != "1234" {
			t.Errorf("%s: PRI %d MSGID %s params %v, want PRI %d, tls, encrypted, bytes", tc.kind, l.Pri, l.MsgID, l.Params, 3*8+tc.sev)
		}
	}
}

// TestLineNoNewline: a LAN host's envelope cannot start a new line or
// put invalid UTF-8 on the collector.
func TestLineNoNewline(t *testing.T) {
	f := Formatter{Format: FormatRFC5424, Facility: 16, Hostname: "gw", MaxLine: 2048}
	e := blockedEvent()
	e.Helo = "a\r\n<13>1 forged\x00\xff"
	line := f.Line(Record{ID: "n", Event: &e})
	if strings.ContainsAny(string(line), "\r\n\x00") || !utf8.Valid(line) {
		t.Errorf("Line = %q, want one line of valid UTF-8", line)
	}
	got, err := parseRFC5424(string(line))
	if err != nil {
		t.Fatal(err)
	}
	if got.Params["helo"] != "a  <13>1 forged \uFFFD" {
		t.Errorf("helo = %q, want the control characters as spaces", got.Params["helo"])
	}
}

// TestLineClipped: a line longer than MaxLine is fitted, still parses,
// keeps id, kind and addresses, and says clipped.
func TestLineClipped(t *testing.T) {
	for _, format := range []string{FormatRFC5424, FormatJSON} {
		for _, maxLine := range []int{480, 1000, 2048} {
			f := Formatter{Format: format, Facility: 16, Hostname: "gw", MaxLine: maxLine}
			e := blockedEvent()
			e.Detail = strings.Repeat(`é"]\`, 300)
			e.Helo = strings.Repeat("h", 255)
			for i := range 200 {
				e.Rcpt = append(e.Rcpt, fmt.Sprintf("user%03d@long-domain.example", i))
			}
			line := f.Line(Record{ID: "clip-1", Event: &e})
			if len(line) > maxLine || !utf8.Valid(line) {
				t.Errorf("%s %d: len %d, valid UTF-8 %v: want at most %d", format, maxLine, len(line), utf8.Valid(line), maxLine)
			}
			params := map[string]string{}
			if format == FormatJSON {
				if err := json.Unmarshal(line, &params); err != nil {
					t.Fatalf("%s %d: %v: %s", format, maxLine, err, line)
				}
			} else {
				l, err := parseRFC5424(string(line))
				if err != nil {
					t.Fatalf("%s %d: %v: %s", format, maxLine, err, line)
				}
				params = l.Params
			}
			for k, v := range map[string]string{"id": "clip-1", "kind": "blocked", "client": "10.20.0.50", "server": "203.0.113.25", "clipped": "true"} {
				if params[k] != v {
					t.Errorf("%s %d: %s = %q, want %q", format, maxLine, k, params[k], v)
				}
			}
		}
	}
	// A line that fits is not marked.
	f := Formatter{Format: FormatRFC5424, Facility: 16, Hostname: "gw", MaxLine: 2048}
	e := blockedEvent()
	if l := f.Line(Record{ID: "x", Event: &e}); strings.Contains(string(l), "clipped") {
		t.Errorf("Line = %s, want no clipped param", l)
	}
}

func TestLineJSON(t *testing.T) {
	f := Formatter{Format: FormatJSON, Facility: 16, Hostname: "gw-1", MaxLine: 2048}
	e := blockedEvent()
	line := f.Line(Record{ID: "j-1", Event: &e})
	var got map[string]string
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("json.Unmarshal(%s) = %v", line, err)
	}
	want := map[string]string{"time": "2026-12-01T09:30:00.123456Z", "host": "gw-1", "id": "j-1", "kind": "blocked",
		"client": "10.20.0.50", "server": "203.0.113.25", "server_port": "25", "helo": `evil"helo]`, "mail_from": `bot\@pc.example`,
		"rcpt": "a@x.example,b@y.example", "messages": "1", "code": "554", "detail": "refused: not a relay",
		"msg": `blocked 10.20.0.50 -> 203.0.113.25 from <bot\@pc.example>: refused: not a relay`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON line (-want +got):\n%s", diff)
	}
}
