package inspect

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/relaygate/relaygate/event"
)

// Bounds of the SMTP conversation parser. They keep a hostile or broken
// flow from growing memory: everything beyond is dropped and counted.
const (
	maxLine       = 4096       // longest command or reply line kept (RFC 5321 4.5.3.1.4 says 512; be lenient)
	maxPending    = 256        // commands awaiting a reply (pipelining, RFC 2920)
	maxHold       = 64 << 10   // client bytes held while the reply to DATA/STARTTLS is unknown
	maxRcpt       = 100        // recipients kept per flow
	maxAuthMechs  = 8          // AUTH mechanisms kept per flow
	maxHoldNoPeer = 512        // held bytes after which a one-sided flow is resolved
	tlsHandshake  = byte(0x16) // first byte of a TLS record carrying a handshake
)

type cmdKind uint8

const (
	cmdOther cmdKind = iota
	cmdHelo
	cmdMail
	cmdRcpt
	cmdData
	cmdEndData // the body's final "." (one reply)
	cmdBdat
	cmdBdatLast
	cmdStartTLS
	cmdAuth
	cmdRset
	cmdQuit
)

type clientState uint8

const (
	stCommand clientState = iota
	stHold                // after DATA or STARTTLS, until the reply tells what follows
	stData                // inside a DATA body, looking for CRLF.CRLF
	stBdat                // skipping a BDAT chunk
	stResync              // after a gap: discard up to the next line end
	stTLS                 // the conversation switched to TLS: nothing more to parse
	stShed                // the memory budget ran out: nothing more to parse
)

// Conversation is what the passive parser learned from one SMTP flow. The
// client stream and the server stream are fed separately (Client, Server);
// replies are matched to commands in order, as pipelining requires.
type Conversation struct {
	Helo      string
	MailFrom  string // the first MAIL FROM of the flow
	Rcpt      []string
	RcptTotal int // recipients seen, also those beyond the kept list
	// Messages counts messages attempted: DATA bodies ended by CRLF.CRLF and
	// BDAT ... LAST chunks.
	Messages int
	// Accepted counts messages the server answered 2xx.
	Accepted  int
	AuthMechs []string
	AuthOK    bool
	Encrypted bool
	// LastCode is the last reply code seen, FinalCode the reply to the last
	// end of message (0 when unknown).
	LastCode  int
	FinalCode int
	// Gaps counts holes in either stream (lost segments, mid-flow start).
	Gaps int

	st        clientState
	line      []byte
	lineOver  bool
	dataDFA   uint8 // CRLF.CRLF matcher state, see scanData
	bdatLeft  int64
	bdatLast  bool
	hold      []byte
	holdKind  cmdKind
	pending   []cmdKind
	early     []int // replies seen before their command (capture reordering)
	pendDrops int
	greeted   bool
	peerSeen  bool // any server bytes seen

	rline    []byte
	rlineOvr bool
	onMsg    func() // called when a message ends (for per-minute counters)

	// mem charges the buffers above to the memory budget (nil: unbounded);
	// the *Cap fields are what each list's array is charged.
	mem                                  meter
	pendCap, earlyCap, rcptCap, authsCap int
}

// newConversation returns a parser; onMsg, if not nil, is called at every
// message end.
func newConversation(onMsg func()) *Conversation {
	return &Conversation{onMsg: onMsg, dataDFA: 2}
}

// Client feeds bytes the client sent, in stream order.
func (c *Conversation) Client(p []byte) {
	for len(p) > 0 {
		switch c.st {
		case stTLS, stShed:
			return
		case stCommand:
			p = c.readLine(p)
		case stResync:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				return
			}
			p = p[i+1:]
			c.st = stCommand
		case stHold:
			room := maxHold - len(c.hold)
			n := min(room, len(p))
			hold, ok := growBytes(c.mem, c.hold, n, maxHold)
			if !ok {
				c.stop()
				return
			}
			c.hold = append(hold, p[:n]...)
			p = p[n:]
			// Without the server's side (one-sided capture, enforce mode
			// where the proxy answers) the first held line decides.
			if !c.peerSeen && (len(c.hold) >= maxHoldNoPeer || bytes.IndexByte(c.hold, '\n') >= 0) || len(c.hold) >= maxHold {
				c.resolveHold(false, 0)
			} else if c.holdKind == cmdStartTLS && len(c.hold) > 0 && c.hold[0] == tlsHandshake {
				// The client only sends a TLS record after the server's 220.
				c.resolveHold(true, 220)
			}
			if n == 0 && c.st == stHold {
				return // hold is full and unresolved: drop
			}
		case stData:
			p = c.scanData(p)
		case stBdat:
			n := int64(len(p))
			if n > c.bdatLeft {
				n = c.bdatLeft
			}
			c.bdatLeft -= n
			p = p[n:]
			if c.bdatLeft == 0 {
				if c.bdatLast {
					c.messageEnd()
				}
				c.st = stCommand
			}
		}
	}
}

// readLine accumulates one command line and handles it at CRLF (a bare LF
// is accepted too, as many servers do).
func (c *Conversation) readLine(p []byte) []byte {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		c.appendLine(p)
		return nil
	}
	c.appendLine(p[:i])
	if c.st == stShed {
		return nil
	}
	line := bytes.TrimSuffix(c.line, []byte{'\r'})
	over := c.lineOver
	c.line, c.lineOver = c.line[:0], false
	if !over {
		c.command(line)
	} else {
		c.push(cmdOther)
	}
	return p[i+1:]
}

func (c *Conversation) appendLine(p []byte) {
	if room := maxLine - len(c.line); room < len(p) {
		p = p[:max(room, 0)]
		c.lineOver = true
	}
	line, ok := growBytes(c.mem, c.line, len(p), maxLine)
	if !ok {
		c.stop()
		return
	}
	c.line = append(line, p...)
}

// stop ends parsing when the memory budget has no room for the flow (it
// is being shed) and lets its buffers go.
func (c *Conversation) stop() {
	c.st = stShed
	give(c.mem, cap(c.line)+cap(c.rline)+cap(c.hold))
	c.line, c.rline, c.hold = nil, nil, nil
}

// keepString charges s to the budget and returns a copy that holds only
// its own bytes (s may point into a longer line); false: no memory.
func (c *Conversation) keepString(s string) (string, bool) {
	if !take(c.mem, len(s)) {
		c.stop()
		return "", false
	}
	return strings.Clone(s), true
}

// appendString appends s to list (at most limit entries), charged.
func (c *Conversation) appendString(list []string, s string, limit int, charged *int) []string {
	s, ok := c.keepString(s)
	if !ok {
		return list
	}
	out, ok := appendCharged(c.mem, list, s, limit, charged)
	if !ok {
		give(c.mem, len(s))
		c.stop()
		return list
	}
	return out
}

// command handles one client line in command state.
func (c *Conversation) command(line []byte) {
	verb, arg, _ := bytes.Cut(line, []byte{' '})
	switch strings.ToUpper(string(verb)) {
	case "HELO", "EHLO", "LHLO":
		if c.Helo == "" {
			c.Helo, _ = c.keepString(event.Clip(string(bytes.TrimSpace(arg)), event.MaxHelo))
		}
		c.push(cmdHelo)
	case "MAIL":
		if c.MailFrom == "" {
			c.MailFrom, _ = c.keepString(pathArg(arg, "FROM:"))
		}
		c.push(cmdMail)
	case "RCPT":
		c.RcptTotal++
		if len(c.Rcpt) < maxRcpt {
			c.Rcpt = c.appendString(c.Rcpt, pathArg(arg, "TO:"), maxRcpt, &c.rcptCap)
		}
		c.push(cmdRcpt)
	case "DATA":
		c.st, c.holdKind, c.hold = stHold, cmdData, c.hold[:0]
		c.push(cmdData)
	case "BDAT":
		f := strings.Fields(string(arg))
		n, err := strconv.ParseInt(firstOr(f, ""), 10, 64)
		if err != nil || n < 0 {
			c.push(cmdOther)
			return
		}
		c.bdatLast = len(f) > 1 && strings.EqualFold(f[1], "LAST")
		c.bdatLeft = n
		if n > 0 {
			c.st = stBdat
		} else if c.bdatLast {
			c.messageEnd()
		}
		if c.bdatLast {
			c.push(cmdBdatLast)
		} else {
			c.push(cmdBdat)
		}
	case "STARTTLS":
		c.st, c.holdKind, c.hold = stHold, cmdStartTLS, c.hold[:0]
		c.push(cmdStartTLS)
	case "AUTH":
		mech := strings.ToUpper(firstOr(strings.Fields(string(arg)), ""))
		if mech != "" && len(c.AuthMechs) < maxAuthMechs && !contains(c.AuthMechs, mech) {
			c.AuthMechs = c.appendString(c.AuthMechs, event.Clip(mech, 32), maxAuthMechs, &c.authsCap)
		}
		c.push(cmdAuth)
	case "RSET":
		c.push(cmdRset)
	case "QUIT":
		c.push(cmdQuit)
	default:
		// NOOP, VRFY, SASL responses after 334: each line still gets one reply.
		c.push(cmdOther)
	}
}

// scanData looks for the end of a DATA body (CRLF "." CRLF, RFC 5321
// 4.1.1.4) across segment boundaries. dataDFA: 0 in a line, 1 after CR,
// 2 at the start of a line, 3 after "." at the start of a line, 4 after
// ".\r" there.
func (c *Conversation) scanData(p []byte) []byte {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch c.dataDFA {
		case 0:
			j := bytes.IndexByte(p[i:], '\r')
			if j < 0 {
				return nil
			}
			i += j
			c.dataDFA = 1
		case 1:
			switch b {
			case '\n':
				c.dataDFA = 2
			case '\r':
			default:
				c.dataDFA = 0
			}
		case 2:
			switch b {
			case '.':
				c.dataDFA = 3
			case '\r':
				c.dataDFA = 1
			default:
				c.dataDFA = 0
			}
		case 3:
			if b == '\r' {
				c.dataDFA = 4
			} else {
				c.dataDFA = 0 // dot-stuffed line
			}
		case 4:
			if b == '\n' {
				c.dataDFA = 2
				c.st = stCommand
				c.messageEnd()
				c.push(cmdEndData)
				return p[i+1:]
			}
			c.dataDFA = 0
			if b == '\r' {
				c.dataDFA = 1
			}
		}
	}
	return nil
}

func (c *Conversation) messageEnd() {
	c.Messages++
	if c.onMsg != nil {
		c.onMsg()
	}
}

// resolveHold ends the hold after DATA or STARTTLS: ok says the server
// agreed (354, 220). Without a reply (one-sided capture, end of flow) the
// held bytes decide: a TLS record after STARTTLS, anything but a command
// after DATA.
func (c *Conversation) resolveHold(known bool, code int) {
	held := c.hold
	c.hold = nil
	defer give(c.mem, cap(held))
	kind := c.holdKind
	var proceed bool
	if known {
		proceed = (kind == cmdData && code == 354) || (kind == cmdStartTLS && code == 220)
	} else if kind == cmdStartTLS {
		proceed = len(held) > 0 && held[0] == tlsHandshake
	} else {
		proceed = len(held) > 0 && !looksLikeCommand(held)
	}
	c.st = stCommand
	if proceed {
		if kind == cmdStartTLS {
			c.Encrypted = true
			c.st = stTLS
			return
		}
		c.st, c.dataDFA = stData, 2
	}
	c.Client(held)
}

// Server feeds bytes the server sent, in stream order.
func (c *Conversation) Server(p []byte) {
	c.peerSeen = true
	for len(p) > 0 && c.st != stTLS && c.st != stShed {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.appendReply(p)
			return
		}
		c.appendReply(p[:i])
		line := bytes.TrimSuffix(c.rline, []byte{'\r'})
		c.rline, c.rlineOvr = c.rline[:0], false
		p = p[i+1:]
		// "250-..." continues a multi-line reply; "250 ..." or "250" ends it.
		if len(line) < 3 || (len(line) > 3 && line[3] == '-') {
			continue
		}
		code, err := strconv.Atoi(string(line[:3]))
		if err != nil || code < 200 || code > 599 {
			continue
		}
		c.reply(code)
	}
}

func (c *Conversation) appendReply(p []byte) {
	if room := maxLine - len(c.rline); room < len(p) {
		p = p[:max(room, 0)]
		c.rlineOvr = true
	}
	rline, ok := growBytes(c.mem, c.rline, len(p), maxLine)
	if !ok {
		c.stop()
		return
	}
	c.rline = append(rline, p...)
}

// reply matches one complete reply to the oldest command awaiting one.
func (c *Conversation) reply(code int) {
	c.LastCode = code
	if c.st == stHold && (c.holdKind == cmdData && code == 354 || c.holdKind == cmdStartTLS && code == 220 && c.greeted) {
		// These codes answer only DATA and STARTTLS: realign the queue of
		// commands awaiting replies (it drifts after a capture gap).
		for i, k := range c.pending {
			if k == c.holdKind {
				c.pending = c.pending[i+1:]
				break
			}
		}
		c.resolveHold(true, code)
		return
	}
	if !c.greeted {
		c.greeted = true
		return
	}
	if len(c.pending) == 0 {
		// The reply was captured before its command (two capture rings
		// are not ordered with each other): match it when the command comes.
		if len(c.early) < maxPending {
			var ok bool
			if c.early, ok = appendCharged(c.mem, c.early, code, maxPending, &c.earlyCap); !ok {
				c.stop()
			}
		}
		return
	}
	cmd := c.pending[0]
	c.pending = c.pending[1:]
	c.apply(cmd, code)
}

// apply acts on the reply code to cmd.
func (c *Conversation) apply(cmd cmdKind, code int) {
	switch cmd {
	case cmdEndData, cmdBdatLast:
		c.FinalCode = code
		if code/100 == 2 {
			c.Accepted++
		}
	case cmdAuth, cmdOther:
		if code == 235 {
			c.AuthOK = true
		}
	case cmdData, cmdStartTLS:
		if code < 400 && code != 354 && code != 220 {
			return // a 2xx cannot answer DATA or STARTTLS: the queue drifted
		}
		if c.st == stHold && c.holdKind == cmd {
			c.resolveHold(true, code)
		} else if cmd == cmdStartTLS && code == 220 {
			c.Encrypted = true
			c.st = stTLS
		}
	}
}

func (c *Conversation) push(k cmdKind) {
	if len(c.pending) >= maxPending {
		c.pendDrops++
		return
	}
	if len(c.early) > 0 {
		code := c.early[0]
		c.early = c.early[1:]
		c.apply(k, code)
		return
	}
	var ok bool
	if c.pending, ok = appendCharged(c.mem, c.pending, k, maxPending, &c.pendCap); !ok {
		c.stop()
	}
}

// gap tells the parser that bytes of the client stream were lost.
func (c *Conversation) gapClient() {
	c.Gaps++
	switch c.st {
	case stCommand:
		c.line, c.lineOver = c.line[:0], false
		c.st = stResync
	case stBdat:
		// The chunk length is known only for the lost part: give up on it.
		c.st = stResync
	case stData:
		c.dataDFA = 0 // keep looking for the end of the body
	}
}

// gapServer tells the parser that bytes of the server stream were lost:
// replies can no longer be matched to commands.
func (c *Conversation) gapServer() {
	c.Gaps++
	c.pending, c.early = c.pending[:0], c.early[:0]
	c.rline = c.rline[:0]
	c.greeted = true
}

// finish resolves a pending hold at the end of the flow.
func (c *Conversation) finish() {
	if c.st == stHold {
		c.resolveHold(false, 0)
	}
}

var commandVerbs = []string{"QUIT", "RSET", "NOOP", "MAIL", "HELO", "EHLO", "HELP", "VRFY"}

func looksLikeCommand(p []byte) bool {
	if len(p) < 4 {
		return bytes.HasPrefix([]byte("QUIT\r\n"), p) || bytes.HasPrefix([]byte("RSET\r\n"), p)
	}
	v := strings.ToUpper(string(p[:4]))
	return contains(commandVerbs, v) && (len(p) == 4 || p[4] == ' ' || p[4] == '\r' || p[4] == '\n')
}

// pathArg extracts the address of "FROM:<a@b> SIZE=1" or "TO:<a@b>".
func pathArg(arg []byte, prefix string) string {
	s := strings.TrimSpace(string(arg))
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		s = strings.TrimSpace(s[len(prefix):])
	}
	if strings.HasPrefix(s, "<") {
		if i := strings.IndexByte(s, '>'); i >= 0 {
			s = s[1:i]
		} else {
			s = s[1:]
		}
	} else if i := strings.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	return event.Clip(s, event.MaxPath)
}

func firstOr(f []string, def string) string {
	if len(f) == 0 {
		return def
	}
	return f[0]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// rcptDomain returns the lower-case domain of an address, or "".
func rcptDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || i == len(addr)-1 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}
