package smtpproxy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// BenchmarkReadCommand reads and parses SMTP command lines as a session
// does (readLine + parseCommand).
func BenchmarkReadCommand(b *testing.B) {
	lines := strings.Repeat("MAIL FROM:<alice@corp.example> SIZE=10240 BODY=8BITMIME\r\nRCPT TO:<bob@remote.example> NOTIFY=NEVER\r\nNOOP\r\n", 1000)
	b.SetBytes(int64(len(lines)))
	for b.Loop() {
		r := bufio.NewReaderSize(strings.NewReader(lines), 4096)
		for {
			line, err := readLine(r, 2048)
			if err != nil {
				break
			}
			if _, ok := parseCommand(line); !ok {
				b.Fatalf("parseCommand(%q) failed", line)
			}
		}
	}
}

// BenchmarkDataScan runs 1 MB message bodies through the DATA scanner in
// 32 KiB chunks, as a session reads them: text with a "." on every line,
// and a base64 attachment.
func BenchmarkDataScan(b *testing.B) {
	b64 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("attachment\x00\xff"), 60000))
	var lines strings.Builder
	for len(b64) > 76 {
		lines.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	for _, bc := range []struct{ name, body string }{
		{"text", strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n..leading dot\r\n", 11000) + ".\r\n"},
		{"base64", lines.String() + ".\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var d dataScanner
				pos, end := 0, 0
				for {
					end = min(end+32*1024, len(body))
					n, done, err := d.scan(body[pos:end])
					if err != nil {
						b.Fatal(err)
					}
					pos += n
					if done {
						break
					}
					if end == len(body) {
						b.Fatal("end of DATA not found")
					}
				}
			}
		})
	}
}
