package smtpproxy

import (
	"bufio"
	"bytes"
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

// BenchmarkDataScan runs a 1 MB message body through the DATA scanner.
func BenchmarkDataScan(b *testing.B) {
	body := []byte(strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n..leading dot\r\n", 11000) + ".\r\n")
	b.SetBytes(int64(len(body)))
	out := make([]byte, 0, 64*1024)
	for b.Loop() {
		var d dataScanner
		rest := body
		for len(rest) > 0 {
			chunk := rest[:min(len(rest), 32*1024)]
			var n int
			var done bool
			var err error
			out, n, done, err = d.scan(out[:0], chunk)
			if err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
			if done {
				break
			}
		}
		if !bytes.HasSuffix(out, []byte(".\r\n")) {
			b.Fatal("end of DATA not found")
		}
	}
}
