package reputation

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// RelayProbe is one form of third-party relaying that relay testers try:
// a sender and a recipient. Placeholders: {ext} the third-party domain,
// {host} the relay's name, {ip} its address literal ([10.0.0.25]).
type RelayProbe struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// RelayProbes is the classic open-relay test set.
var RelayProbes = []RelayProbe{
	{"plain third party", "relaytest@{ext}", "victim@{ext}"},
	{"empty sender", "", "victim@{ext}"},
	{"postmaster sender", "postmaster@{host}", "victim@{ext}"},
	{"spoofed local sender", "relaytest@{host}", "victim@{ext}"},
	{"spoofed local sender (address literal)", "relaytest@{ip}", "victim@{ext}"},
	{"unqualified sender", "relaytest", "victim@{ext}"},
	{"localhost sender", "relaytest@localhost", "victim@{ext}"},
	{"percent hack", "relaytest@{ext}", "victim%{ext}@{host}"},
	{"percent hack (address literal)", "relaytest@{ext}", "victim%{ext}@{ip}"},
	{"unqualified percent hack", "relaytest@{ext}", "victim%{ext}"},
	{"quoted recipient", "relaytest@{ext}", "\"victim@{ext}\""},
	{"quoted percent", "relaytest@{ext}", "\"victim%{ext}\""},
	{"quoted recipient at relay", "relaytest@{ext}", "\"victim@{ext}\"@{host}"},
	{"quoted recipient at address literal", "relaytest@{ext}", "\"victim@{ext}\"@{ip}"},
	{"quoted percent at relay", "relaytest@{ext}", "\"victim%{ext}\"@{host}"},
	{"double at", "relaytest@{ext}", "victim@{ext}@{host}"},
	{"source route", "relaytest@{ext}", "@{host}:victim@{ext}"},
	{"source route (address literal)", "relaytest@{ext}", "@{ip}:victim@{ext}"},
	{"bang path", "relaytest@{ext}", "{ext}!victim"},
	{"bang path at relay", "relaytest@{ext}", "{ext}!victim@{host}"},
	{"bang path at address literal", "relaytest@{ext}", "{ext}!victim@{ip}"},
	{"trailing dot", "relaytest@{ext}", "victim@{ext}."},
	{"upper case", "RELAYTEST@{ext}", "VICTIM@{ext}"},
	{"spoofed local sender, percent hack", "relaytest@{host}", "victim%{ext}@{host}"},
}

// ProbeResult is the outcome of one probe.
type ProbeResult struct {
	Probe    RelayProbe `json:"probe"`
	From     string     `json:"from"`
	To       string     `json:"to"`
	Reply    string     `json:"reply"`    // the relay's answer to RCPT TO (or MAIL FROM)
	Accepted bool       `json:"accepted"` // RCPT TO answered 2xx: the relay would relay
}

// RelayTest is the self-test of one relay.
type RelayTest struct {
	Relay     string        `json:"relay"`
	Address   string        `json:"address"` // host:port tested
	Open      bool          `json:"open"`    // any probe accepted
	Results   []ProbeResult `json:"results"`
	Error     string        `json:"error,omitempty"`
	CheckedAt time.Time     `json:"checked_at"`
}

// Dialer opens the test connection (the daemon routes it toward the LAN).
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// TestRelay runs every probe against the SMTP server at addr (host:port)
// in one session with RSET between probes. DATA is never sent.
func TestRelay(ctx context.Context, d Dialer, relay, addr, extDomain string, now time.Time) RelayTest {
	rt := RelayTest{Relay: relay, Address: addr, CheckedAt: now.UTC()}
	host, _, _ := net.SplitHostPort(addr)
	ipLit := "[" + host + "]"
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		ipLit = "[IPv6:" + host + "]"
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		rt.Error = fmt.Sprintf("connect %s: %v", addr, err)
		return rt
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(2 * time.Minute))
	}
	c := &smtpConn{r: bufio.NewReader(conn), w: conn}
	greet, err := c.reply()
	if err != nil || !strings.HasPrefix(greet, "2") {
		rt.Error = fmt.Sprintf("greeting: %q %v", greet, err)
		return rt
	}
	// The relay's own name from its greeting, for the {host} forms.
	relayHost := ipLit
	if f := strings.Fields(strings.TrimPrefix(greet, "220")); len(f) > 0 && strings.Contains(f[0], ".") {
		relayHost = strings.Trim(f[0], "-")
	}
	if r, err := c.cmd("EHLO relaygate-selftest.invalid"); err != nil || !strings.HasPrefix(r, "2") {
		if r, err = c.cmd("HELO relaygate-selftest.invalid"); err != nil || !strings.HasPrefix(r, "2") {
			rt.Error = fmt.Sprintf("HELO: %q %v", r, err)
			return rt
		}
	}
	expand := func(s string) string {
		return strings.NewReplacer("{ext}", extDomain, "{host}", relayHost, "{ip}", ipLit).Replace(s)
	}
	for _, p := range RelayProbes {
		pr := ProbeResult{Probe: p, From: expand(p.From), To: expand(p.To)}
		r, err := c.cmd("MAIL FROM:<" + pr.From + ">")
		if err != nil {
			rt.Error = fmt.Sprintf("MAIL FROM: %v", err)
			break
		}
		if !strings.HasPrefix(r, "2") {
			pr.Reply = r
		} else {
			r, err = c.cmd("RCPT TO:<" + pr.To + ">")
			if err != nil {
				rt.Error = fmt.Sprintf("RCPT TO: %v", err)
				break
			}
			pr.Reply = r
			pr.Accepted = strings.HasPrefix(r, "2")
		}
		rt.Open = rt.Open || pr.Accepted
		rt.Results = append(rt.Results, pr)
		if _, err := c.cmd("RSET"); err != nil {
			rt.Error = fmt.Sprintf("RSET: %v", err)
			break
		}
	}
	c.cmd("QUIT")
	return rt
}

// smtpConn is the client side of a minimal SMTP dialogue.
type smtpConn struct {
	r *bufio.Reader
	w net.Conn
}

func (c *smtpConn) cmd(line string) (string, error) {
	if _, err := c.w.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	return c.reply()
}

// reply reads a possibly multi-line reply and returns its last line.
func (c *smtpConn) reply() (string, error) {
	for range 100 {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return strings.TrimSpace(line), err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 || line[3] != '-' {
			return line, nil
		}
	}
	return "", fmt.Errorf("reply of more than 100 lines")
}
