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

// FuzzDataScanner: whatever the chunking, the scanner forwards exactly
// the input up to and including the end mark, or stops at a smuggling
// sequence having forwarded only a prefix of the input; a message it lets
// end holds no smuggling sequence.
func FuzzDataScanner(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", ".\r\n", "..x\r\n.\r\nMAIL", "x\n.\n", "x\r\n.\nQ", "x\n.\r\n", ".\r\r\n.\r\n", ".x\r\n.\r", "x\r.\r\nQ", "x\r.\nQ", "a\r.b\r\n.\r\n", ".\r.\r\n", ""} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		whole, n1, done1, err1 := (&dataScanner{}).scan(nil, in)
		var d dataScanner
		var out []byte
		pos, done, err := 0, false, error(nil)
		step := int(chunk%16) + 1
		for pos < len(in) && !done && err == nil {
			end := min(pos+step, len(in))
			var n int
			out, n, done, err = d.scan(out, in[pos:end])
			pos += n
			if n < end-(pos-n) && !done && err == nil {
				t.Fatalf("scan consumed %d of %d without stopping", n, end-(pos-n))
			}
		}
		if done != done1 || (err == nil) != (err1 == nil) {
			t.Fatalf("chunked: done %v err %v; whole: done %v err %v", done, err, done1, err1)
		}
		if done {
			if pos != n1 || !bytes.Equal(out, in[:pos]) || !bytes.Equal(whole, in[:n1]) || !bytes.HasSuffix(out, []byte(".\r\n")) {
				t.Fatalf("done: forwarded %q of %q", out, in)
			}
			if d.size != int64(pos-3) {
				t.Fatalf("size %d, want %d", d.size, pos-3)
			}
			for _, seq := range []string{"\r.\r", "\r.\n", "\n.\n"} {
				if bytes.Contains(out, []byte(seq)) {
					t.Fatalf("forwarded %q, which holds the smuggling sequence %q", out, seq)
				}
			}
			return
		}
		if !bytes.HasPrefix(in, out) || !bytes.HasPrefix(in, whole) {
			t.Fatalf("forwarded %q, not a prefix of %q", out, in)
		}
	})
}
