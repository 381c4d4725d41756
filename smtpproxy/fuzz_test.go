package smtpproxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"EHLO relay.example.org\r\n", "MAIL FROM:<a@b> SIZE=10\r\n", "RCPT TO:<@x,@y:u@v>\r\n",
		"BDAT 100 LAST\r\n", "\x16\x03\x01\x00", "mail from: <>\n", "RCPT TO:<ü@exämple.org>\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, ok := parseCommand(line)
		if !ok {
			return
		}
		if cmd.verb == "" || strings.ToUpper(cmd.verb) != cmd.verb || strings.ContainsAny(cmd.arg, "\r\n") {
			t.Fatalf("parseCommand(%q) = %+v", line, cmd)
		}
		switch cmd.verb {
		case "MAIL":
			if a, ok := parsePath(cmd.arg, "FROM:"); ok && strings.ContainsAny(a, "<>") && !strings.Contains(cmd.arg, "<<") {
				_ = a // brackets inside an unbracketed word are the remote's to refuse
			}
		case "RCPT":
			a, _ := parsePath(cmd.arg, "TO:")
			_ = domainOf(a)
		case "BDAT":
			if n, _, ok := parseBDAT(cmd.arg); ok && n < 0 {
				t.Fatalf("parseBDAT(%q) = %d", cmd.arg, n)
			}
		}
	})
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250-mx.example\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n", "220 ok\r\n", "250\r\n",
		"421-a\r\n450 b\r\n", "2500\r\n", strings.Repeat("250-x\r\n", 120) + "250 y\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rp, err := readReply(bufio.NewReaderSize(bytes.NewReader(in), ioBufSize))
		if err != nil {
			return
		}
		if !bytes.HasPrefix(in, rp.raw) || rp.code < 200 || rp.code > 599 {
			t.Fatalf("readReply(%q) = %d %q", in, rp.code, rp.raw)
		}
		_ = rp.text()
		out, _ := filterEHLO(rp, false)
		// The filtered reply is itself one well-formed reply.
		again, err := readReply(bufio.NewReaderSize(bytes.NewReader(out), ioBufSize))
		if err != nil || !bytes.Equal(again.raw, out) || again.code != rp.code {
			t.Fatalf("filterEHLO(%q) = %q, not one reply: %v", rp.raw, out, err)
		}
		for _, l := range again.lines()[1:] {
			kw, _, _ := strings.Cut(l[min(len(l), 4):], " ")
			if !ehloExtensions[strings.ToUpper(kw)] {
				t.Fatalf("filterEHLO kept %q: %q", kw, out)
			}
		}
	})
}

// FuzzDataScanner: whatever the chunking, the scanner consumes exactly
// the input up to and including the end mark, or stops at a smuggling
// sequence, as the byte-by-byte scanner it replaced (refScanner) decides
// on the whole input; a message it lets end holds no smuggling sequence.
// The input is offered as the session offers it: what the scanner left
// unconsumed comes again with the next chunk after it.
func FuzzDataScanner(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", ".\r\n", "..x\r\n.\r\nMAIL", "x\n.\n", "x\r\n.\nQ", "x\n.\r\n", ".\r\r\n.\r\n", ".x\r\n.\r", "x\r.\r\nQ", "x\r.\nQ", "a\r.b\r\n.\r\n", ".\r.\r\n", "", "\n.\r\n", "\r\r\n.\r\n", "a.b\r\n.", "a\r\n.\r"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		_, wantN, wantDone, wantErr := (&refScanner{}).scan(nil, in)
		var d dataScanner
		pos, end, done, err := 0, 0, false, error(nil)
		step := int(chunk%16) + 1
		for !done && err == nil && end < len(in) {
			end = min(end+step, len(in))
			var n int
			n, done, err = d.scan(in[pos:end])
			if n < 0 || n > end-pos || (!done && err == nil && end-pos-n > 3) {
				t.Fatalf("scan(%q) consumed %d, done %v, err %v", in[pos:end], n, done, err)
			}
			pos += n
		}
		if done != wantDone || (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: done %v err %v; byte by byte: done %v err %v", in, done, err, wantDone, wantErr)
		}
		if done {
			if pos != wantN || !bytes.HasSuffix(in[:pos], []byte(".\r\n")) {
				t.Fatalf("%q: consumed %d, byte by byte %d", in, pos, wantN)
			}
			if d.size != int64(pos-3) {
				t.Fatalf("size %d, want %d", d.size, pos-3)
			}
			for _, seq := range []string{"\r.\r", "\r.\n", "\n.\n"} {
				if bytes.Contains(in[:pos], []byte(seq)) {
					t.Fatalf("forwarded %q, which holds the smuggling sequence %q", in[:pos], seq)
				}
			}
		}
	})
}
