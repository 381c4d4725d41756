package fakemx

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestFakeMX(t *testing.T) {
	body := "Subject: hi\r\n\r\nline one\r\n..leading dot\r\n"
	tests := []struct {
		name     string
		script   func(*Server)
		opts     Options
		rcpt     []string
		wantRcpt []string // errors of Rcpt, "" for accepted
		wantData string   // error of the end of DATA, "" for accepted
		wantMsgs []Message
	}{
		{
			name:     "accepts any mail",
			rcpt:     []string{"a@example.net", "b@example.org"},
			wantRcpt: []string{"", ""},
			wantMsgs: []Message{{
				ClientAddr: netip.MustParseAddr("127.0.0.1"), Helo: "client.example", From: "sender@example.org",
				To: []string{"a@example.net", "b@example.org"}, Data: []byte(body),
			}},
		},
		{
			name: "scripted RCPT refusal passes its code",
			script: func(s *Server) {
				s.RejectRcpt("Nobody@Example.net", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"})
			},
			rcpt:     []string{"nobody@example.net", "a@example.net"},
			wantRcpt: []string{"SMTP error 550: No such user", ""},
			wantMsgs: []Message{{
				ClientAddr: netip.MustParseAddr("127.0.0.1"), Helo: "client.example", From: "sender@example.org",
				To: []string{"a@example.net"}, Data: []byte(body),
			}},
		},
		{
			name: "scripted DATA failure keeps nothing",
			script: func(s *Server) {
				s.FailData(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try later"})
			},
			rcpt:     []string{"a@example.net"},
			wantRcpt: []string{""},
			wantData: "SMTP error 451: Try later",
		},
		{
			name:     "Deliver error refuses with 451",
			opts:     Options{Deliver: func(Message) error { return errors.New("disk full") }},
			rcpt:     []string{"a@example.net"},
			wantRcpt: []string{""},
			wantData: "SMTP error 451: Local error, try again later",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, "127.0.0.1:0", tt.opts)
			if tt.script != nil {
				tt.script(s)
			}
			c, err := smtp.Dial(s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("client.example"); err != nil {
				t.Fatal(err)
			}
			if err := c.Mail("sender@example.org", nil); err != nil {
				t.Fatal(err)
			}
			var gotRcpt []string
			for _, r := range tt.rcpt {
				msg := ""
				if err := c.Rcpt(r, nil); err != nil {
					msg = err.Error()
				}
				gotRcpt = append(gotRcpt, msg)
			}
			if diff := cmp.Diff(tt.wantRcpt, gotRcpt); diff != "" {
				t.Errorf("RCPT replies (-want +got):\n%s", diff)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(body))
			gotData := ""
			if err := w.Close(); err != nil {
				gotData = err.Error()
			}
			if gotData != tt.wantData {
				t.Errorf("end of DATA = %q, want %q", gotData, tt.wantData)
			}
			c.Quit()

			var msgs []Message
			if len(tt.wantMsgs) > 0 {
				msgs, err = s.WaitFor(len(tt.wantMsgs), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				msgs = s.Messages()
			}
			if diff := cmp.Diff(tt.wantMsgs, msgs, cmpopts.EquateComparable(netip.Addr{}), cmpopts.IgnoreFields(Message{}, "Time")); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWaitForTimeout(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	start := time.Now()
	msgs, err := s.WaitFor(1, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "0 of 1") || len(msgs) != 0 {
		t.Errorf("WaitFor = %v, %v; want no messages and an error", msgs, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("WaitFor returned after %s, want the timeout", d)
	}
}

func TestSTARTTLSAndGreeting(t *testing.T) {
	cfg, pool := SelfSigned(t, "mx.example.net", "127.0.0.1")
	s := Start(t, "127.0.0.1:0", Options{TLSConfig: cfg})
	c, err := smtp.DialStartTLS(s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "mx.example.net"})
	if err != nil {
		t.Fatalf("DialStartTLS: %v", err)
	}
	defer c.Close()
	if err := c.SendMail("a@example.org", []string{"b@example.net"}, strings.NewReader("Subject: tls\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	msgs, err := s.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].TLS == nil {
		t.Errorf("Message.TLS = nil, want the TLS state")
	}

	r := Start(t, "127.0.0.1:0", Options{Greeting: "554 5.3.2 Go away"})
	rc, err := smtp.Dial(r.Addr().String())
	if err == nil {
		err = rc.Hello("client.example") // the greeting is read here
		rc.Close()
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 {
		t.Errorf("Dial to a refusing server = %v, want a 554", err)
	}
}
