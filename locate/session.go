package locate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/relaygate/relaygate/config"
)

// oid is an object identifier as sub-identifiers, e.g. 1.3.6.1.2.1.17.1.1.0.
type oid []uint32

// String is the dotted form with a leading dot, as gosnmp writes names.
func (o oid) String() string {
	var b strings.Builder
	for _, n := range o {
		b.WriteByte('.')
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return b.String()
}

// child is o followed by sub, in a new slice.
func (o oid) child(sub ...uint32) oid {
	c := make(oid, 0, len(o)+len(sub))
	return append(append(c, o...), sub...)
}

// under says whether o is strictly below root.
func (o oid) under(root oid) bool {
	if len(o) <= len(root) {
		return false
	}
	for i, n := range root {
		if o[i] != n {
			return false
		}
	}
	return true
}

// cmpOID orders OIDs lexicographically, as GETNEXT does.
func cmpOID(a, b oid) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		switch {
		case a[i] < b[i]:
			return -1
		case a[i] > b[i]:
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// pred is an OID whose GETNEXT answers t itself when t exists, for a
// table whose rows under t's parent all have t's length (every index this
// package seeks has a fixed length once its first sub-identifiers are
// fixed).
func pred(t oid) oid {
	p := t.child()
	if p[len(p)-1] > 0 {
		p[len(p)-1]--
		return p
	}
	return p[:len(p)-1]
}

func parseOID(s string) (oid, bool) {
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return nil, false
	}
	parts := strings.Split(s, ".")
	o := make(oid, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, false
		}
		o[i] = uint32(n)
	}
	return o, true
}

// errGarbled is an answer that breaks the protocol or the MIB: OIDs not
// increasing, values of the wrong type, fewer bindings than asked.
var errGarbled = errors.New("garbled answer")

// errFatal marks an error after which the switch is not asked again in the
// same lookup: it would only cost another timeout.
type errFatal struct{ msg string }

func (e *errFatal) Error() string { return e.msg }

// switchState is one configured switch, shared by all lookups: one request
// at a time, at least minInterval apart, and the facts that change rarely.
type switchState struct {
	cfg  config.Switch
	host string
	port uint16
	// addrErr is an address that does not parse (Validate refuses it).
	addrErr error
	// turn is held for the time of one request: concurrency 1 per switch.
	turn chan struct{}
	// last is when the previous request ended; only the holder of turn
	// touches it.
	last time.Time

	cache factCache
}

// session is one lookup's conversation with one switch, used by one
// goroutine at a time.
type session struct {
	loc    *SNMP
	sw     *switchState
	client *gosnmp.GoSNMP
	// fatal, once set, answers every further request of this lookup.
	fatal error
	// notes are the non-fatal problems worth reporting (first few).
	notes []string
	// deadVLANs did not answer in this lookup: not asked again.
	deadVLANs map[int]error
}

func (s *session) note(format string, a ...any) {
	if n := fmt.Sprintf(format, a...); len(s.notes) < 3 && !slices.Contains(s.notes, n) {
		s.notes = append(s.notes, n)
	}
}

// failed is the error to report for this switch, "" when it answered well.
func (s *session) failed() string {
	var parts []string
	if s.fatal != nil {
		parts = append(parts, s.fatal.Error())
	}
	parts = append(parts, s.notes...)
	return strings.Join(parts, ", ")
}

func (s *session) close() {
	if s.client != nil {
		s.client.Close()
	}
}

func (s *session) connect(ctx context.Context) error {
	if s.client != nil {
		return nil
	}
	c := &gosnmp.GoSNMP{
		Target:         s.sw.host,
		Port:           s.sw.port,
		Transport:      "udp",
		Timeout:        s.loc.timeout,
		Retries:        s.loc.retries,
		MaxRepetitions: s.loc.maxRepetitions,
		MaxOids:        maxGetOIDs,
		Context:        ctx,
	}
	sw := s.sw.cfg
	switch sw.Version {
	case "3":
		auth, ok1 := authProtos[strings.ToUpper(sw.AuthProto)]
		priv, ok2 := privProtos[strings.ToUpper(sw.PrivProto)]
		if !ok1 || !ok2 {
			return &errFatal{fmt.Sprintf("unknown SNMPv3 protocols %q/%q", sw.AuthProto, sw.PrivProto)}
		}
		c.Version = gosnmp.Version3
		c.SecurityModel = gosnmp.UserSecurityModel
		c.MsgFlags = gosnmp.AuthPriv
		c.ContextName = sw.Context
		c.SecurityParameters = &gosnmp.UsmSecurityParameters{
			UserName:                 sw.User,
			AuthenticationProtocol:   auth,
			AuthenticationPassphrase: sw.AuthPass,
			PrivacyProtocol:          priv,
			PrivacyPassphrase:        sw.PrivPass,
		}
	default:
		c.Version = gosnmp.Version2c
		c.Community = sw.Community
	}
	if err := c.Connect(); err != nil {
		return &errFatal{fmt.Sprintf("cannot reach %s: %v", net.JoinHostPort(s.sw.host, strconv.Itoa(int(s.sw.port))), unwrapAll(err))}
	}
	s.client = c
	return nil
}

// authProtos and privProtos map the configuration's names (upper case) to
// gosnmp's. gosnmp's AES192/AES256 extend the key as Blumenthal's draft
// (net-snmp); AES192C/AES256C as Reeder's (Cisco).
var (
	authProtos = map[string]gosnmp.SnmpV3AuthProtocol{
		"SHA": gosnmp.SHA, "SHA-224": gosnmp.SHA224, "SHA-256": gosnmp.SHA256,
		"SHA-384": gosnmp.SHA384, "SHA-512": gosnmp.SHA512,
	}
	privProtos = map[string]gosnmp.SnmpV3PrivProtocol{
		"AES": gosnmp.AES, "AES-192": gosnmp.AES192, "AES-256": gosnmp.AES256,
		"AES-192-C": gosnmp.AES192C, "AES-256-C": gosnmp.AES256C,
	}
)

// do sends one request to the switch, in its turn and no sooner than
// minInterval after the previous one; vlan > 0 asks the per-VLAN instance
// of the bridge tables (Cisco: community@vlan, v3 context vlan-N).
func (s *session) do(ctx context.Context, vlan int, op string, send func(*gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error)) (*gosnmp.SnmpPacket, error) {
	if s.fatal != nil {
		return nil, s.fatal
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail(err)
	}
	if err := s.deadVLANs[vlan]; err != nil {
		return nil, err
	}
	select {
	case s.sw.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, s.fail(ctx.Err())
	}
	defer func() { <-s.sw.turn }()
	if wait := time.Until(s.sw.last.Add(s.loc.minInterval)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, s.fail(ctx.Err())
		}
	}
	defer func() { s.sw.last = time.Now() }()
	if err := s.connect(ctx); err != nil {
		return nil, s.fail(err)
	}
	c := s.client
	c.Context = ctx
	c.Community = s.sw.cfg.Community
	c.ContextName = s.sw.cfg.Context
	if vlan > 0 {
		if c.Version == gosnmp.Version3 {
			c.ContextName = "vlan-" + strconv.Itoa(vlan)
		} else {
			c.Community = s.sw.cfg.Community + "@" + strconv.Itoa(vlan)
		}
	}
	p, err := send(c)
	if err != nil && vlan > 0 && ctx.Err() == nil {
		// A per-VLAN community or context the switch does not know is
		// not answered at all (Cisco, snmpsim), or answered with a
		// report (snmpUnknownContexts): that VLAN only, not the switch.
		var verr error
		switch {
		case errors.Is(err, gosnmp.ErrMaxRetriesExceeded) || isTimeout(err):
			verr = fmt.Errorf("VLAN %d: no answer within %s (is VLAN %d on the switch?)", vlan, s.loc.timeout, vlan)
		case errors.Is(err, gosnmp.ErrUnknownReportPDU):
			verr = fmt.Errorf("VLAN %d: the switch refused context vlan-%d", vlan, vlan)
		}
		if verr != nil {
			if s.deadVLANs == nil {
				s.deadVLANs = map[int]error{}
			}
			s.deadVLANs[vlan] = verr
			return nil, verr
		}
	}
	if err != nil && authFailed(err) && s.unknownUser(ctx) {
		err = gosnmp.ErrUnknownUsername
	}
	if err != nil {
		return nil, s.fail(err)
	}
	if p == nil {
		return nil, fmt.Errorf("%s: %w: no answer", op, errGarbled)
	}
	return p, nil
}

// fail classifies a transport error; those that would repeat (timeouts,
// credentials) become the session's fatal error.
func (s *session) fail(err error) error {
	var fe *errFatal
	switch {
	case errors.As(err, &fe):
	case errors.Is(err, context.Canceled):
		fe = &errFatal{"lookup cancelled"}
	case errors.Is(err, context.DeadlineExceeded):
		fe = &errFatal{"lookup time ran out"}
	case errors.Is(err, gosnmp.ErrUnknownUsername):
		fe = &errFatal{fmt.Sprintf("SNMPv3 user %q unknown to the switch", s.sw.cfg.User)}
	case authFailed(err):
		fe = &errFatal{"SNMPv3 authentication failed: wrong auth_pass or auth_proto"}
	case strings.Contains(err.Error(), "msgAuthenticationParameters length"):
		fe = &errFatal{"SNMPv3 authentication failed: wrong auth_proto (the switch's digest has another length)"}
	case errors.Is(err, gosnmp.ErrDecryption):
		fe = &errFatal{"SNMPv3 decryption failed: wrong priv_pass or priv_proto"}
	case errors.Is(err, gosnmp.ErrUnknownSecurityLevel):
		fe = &errFatal{"SNMPv3 user not allowed authPriv on the switch"}
	case errors.Is(err, gosnmp.ErrNotInTimeWindow), errors.Is(err, gosnmp.ErrUnknownEngineID):
		fe = &errFatal{"SNMPv3 engine discovery failed (" + unwrapAll(err).Error() + ")"}
	case errors.Is(err, syscall.ECONNREFUSED):
		fe = &errFatal{fmt.Sprintf("connection refused: nothing answers SNMP on %s", net.JoinHostPort(s.sw.host, strconv.Itoa(int(s.sw.port))))}
	case errors.Is(err, gosnmp.ErrMaxRetriesExceeded) || isTimeout(err):
		why := "unreachable, or wrong community"
		if s.sw.cfg.Version == "3" {
			why = "unreachable, or wrong user, passwords or protocols"
		}
		fe = &errFatal{fmt.Sprintf("no answer within %s, %d tries (%s)", s.loc.timeout, s.loc.retries+1, why)}
	default:
		// A malformed answer, or a Report this package does not expect:
		// asking again would get the same.
		fe = &errFatal{fmt.Sprintf("%v: %v", errGarbled, unwrapAll(err))}
	}
	s.fatal = fe
	return fe
}

// authFailed is an SNMPv3 answer that does not verify with our key:
// gosnmp says "not authentic" for an authenticated answer whose digest
// differs, and for a report sent without authentication (net-snmp's
// usmStatsUnknownUserNames and usmStatsWrongDigests are).
func authFailed(err error) bool {
	return errors.Is(err, gosnmp.ErrWrongDigest) || strings.Contains(err.Error(), "not authentic") ||
		strings.Contains(err.Error(), "requires authentication")
}

// unknownUser asks the switch once more, without authentication, which
// an agent answers with a usmStatsUnknownUserNames report when the user
// does not exist (and with usmStatsUnsupportedSecLevels when it does):
// the one way to tell a wrong user from a wrong password.
func (s *session) unknownUser(ctx context.Context) bool {
	c := &gosnmp.GoSNMP{
		Target: s.sw.host, Port: s.sw.port, Transport: "udp", Version: gosnmp.Version3,
		Timeout: s.loc.timeout, Context: ctx,
		SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.NoAuthNoPriv,
		SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: s.sw.cfg.User, AuthenticationProtocol: gosnmp.NoAuth, PrivacyProtocol: gosnmp.NoPriv},
	}
	if err := c.Connect(); err != nil {
		return false
	}
	defer c.Close()
	_, err := c.Get([]string{oidDot1dBaseBridgeAddress.String()})
	return errors.Is(err, gosnmp.ErrUnknownUsername)
}

func isTimeout(err error) bool {
	var ne net.Error
	return (errors.As(err, &ne) && ne.Timeout()) || strings.Contains(err.Error(), "timeout")
}

// unwrapAll is the innermost error, whose text is the one worth showing
// (gosnmp wraps with long prefixes).
func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// maxGetOIDs is the most OIDs in one GET: small enough for any agent's
// buffers (a tooBig answer is handled all the same).
const maxGetOIDs = 12

// get reads the given OIDs, in batches; NoSuchObject and NoSuchInstance
// come back as such, a v1-style noSuchName as NoSuchObject.
func (s *session) get(ctx context.Context, vlan int, oids ...oid) ([]gosnmp.SnmpPDU, error) {
	out := make([]gosnmp.SnmpPDU, 0, len(oids))
	for len(oids) > 0 {
		n := min(len(oids), maxGetOIDs)
		batch := oids[:n]
		names := make([]string, n)
		for i, o := range batch {
			names[i] = o.String()
		}
		p, err := s.do(ctx, vlan, "GET", func(c *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) { return c.Get(names) })
		if err != nil {
			return nil, err
		}
		switch {
		case p.Error == gosnmp.NoSuchName:
			for _, o := range batch {
				out = append(out, gosnmp.SnmpPDU{Name: o.String(), Type: gosnmp.NoSuchObject})
			}
		case p.Error == gosnmp.TooBig && n > 1:
			// One at a time.
			for _, o := range batch {
				r, err := s.get(ctx, vlan, o)
				if err != nil {
					return nil, err
				}
				out = append(out, r...)
			}
		case p.Error != gosnmp.NoError:
			return nil, fmt.Errorf("GET %s: the switch answered %s", batch[0], p.Error)
		case len(p.Variables) != n:
			return nil, fmt.Errorf("GET %s: %w: %d bindings for %d OIDs", batch[0], errGarbled, len(p.Variables), n)
		default:
			for i, v := range p.Variables {
				if o, ok := parseOID(v.Name); !ok || cmpOID(o, batch[i]) != 0 {
					return nil, fmt.Errorf("GET %s: %w: answered %s", batch[i], errGarbled, v.Name)
				}
			}
			out = append(out, p.Variables...)
		}
		oids = oids[n:]
	}
	return out, nil
}

// next is one GETNEXT: the first object after o, its OID, or ok false at
// the end of the agent's view.
func (s *session) next(ctx context.Context, vlan int, o oid) (gosnmp.SnmpPDU, oid, bool, error) {
	p, err := s.do(ctx, vlan, "GETNEXT", func(c *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) { return c.GetNext([]string{o.String()}) })
	if err != nil {
		return gosnmp.SnmpPDU{}, nil, false, err
	}
	if p.Error == gosnmp.NoSuchName {
		return gosnmp.SnmpPDU{}, nil, false, nil
	}
	if p.Error != gosnmp.NoError {
		return gosnmp.SnmpPDU{}, nil, false, fmt.Errorf("GETNEXT %s: the switch answered %s", o, p.Error)
	}
	if len(p.Variables) != 1 {
		return gosnmp.SnmpPDU{}, nil, false, fmt.Errorf("GETNEXT %s: %w: %d bindings", o, errGarbled, len(p.Variables))
	}
	v := p.Variables[0]
	if v.Type == gosnmp.EndOfMibView || v.Type == gosnmp.NoSuchObject || v.Type == gosnmp.NoSuchInstance {
		return v, nil, false, nil
	}
	got, ok := parseOID(v.Name)
	if !ok || cmpOID(got, o) <= 0 {
		return v, nil, false, fmt.Errorf("GETNEXT %s: %w: answered %s, not after it", o, errGarbled, v.Name)
	}
	return v, got, true, nil
}

// walk reads the objects under root with GETBULK, in order, and hands each
// to fn with its index (the sub-identifiers after root) until fn returns
// false. It is bounded: at most maxRows objects and maxWalk of time; an
// agent that answers out of order ends it with errGarbled.
func (s *session) walk(ctx context.Context, vlan int, root oid, fn func(idx oid, v gosnmp.SnmpPDU) bool) error {
	cur, rows := root, 0
	reps := s.loc.maxRepetitions
	// Time is checked between requests, each bounded by the timeout: a
	// deadline on ctx would end the whole lookup's session instead.
	start := time.Now()
	for {
		if time.Since(start) > s.loc.maxWalk {
			return fmt.Errorf("walk %s: longer than %s, stopped", root, s.loc.maxWalk)
		}
		p, err := s.do(ctx, vlan, "GETBULK", func(c *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) {
			return c.GetBulk([]string{cur.String()}, 0, reps)
		})
		if err != nil {
			return err
		}
		switch {
		case p.Error == gosnmp.TooBig && reps > 1:
			reps /= 2
			continue
		case p.Error == gosnmp.NoSuchName:
			return nil
		case p.Error != gosnmp.NoError:
			return fmt.Errorf("walk %s: the switch answered %s", root, p.Error)
		case len(p.Variables) == 0:
			return nil
		}
		for _, v := range p.Variables {
			if v.Type == gosnmp.EndOfMibView || v.Type == gosnmp.NoSuchObject || v.Type == gosnmp.NoSuchInstance {
				return nil
			}
			o, ok := parseOID(v.Name)
			if !ok {
				return fmt.Errorf("walk %s: %w: OID %q", root, errGarbled, v.Name)
			}
			if !o.under(root) {
				return nil
			}
			if cmpOID(o, cur) <= 0 {
				return fmt.Errorf("walk %s: %w: %s after %s", root, errGarbled, o, cur)
			}
			cur = o
			if rows++; rows > s.loc.maxRows {
				return fmt.Errorf("walk %s: more than %d rows, stopped", root, s.loc.maxRows)
			}
			if !fn(o[len(root):], v) {
				return nil
			}
		}
	}
}

// seek finds one row of the column col whose index starts with a number
// that is not known in advance (an ifIndex, an FDB id) and goes on with a
// known part: target(k) is the whole index for first number k. It asks
// GETNEXT just before target(k) for each k the column has, so it reads one
// or two objects per k, never the whole column; bounded by maxSeek steps.
func (s *session) seek(ctx context.Context, vlan int, col oid, target func(k uint32) oid) (gosnmp.SnmpPDU, oid, bool, error) {
	cur := col
	for range s.loc.maxSeek {
		v, o, ok, err := s.next(ctx, vlan, cur)
		if err != nil || !ok || !o.under(col) {
			return gosnmp.SnmpPDU{}, nil, false, err
		}
		k := o[len(col)]
		t := col.child(target(k)...)
		switch c := cmpOID(o, t); {
		case c == 0:
			return v, o[len(col):], true, nil
		case c < 0:
			cur = pred(t)
			if cmpOID(cur, o) < 0 {
				cur = o
			}
		default:
			if k == ^uint32(0) {
				return gosnmp.SnmpPDU{}, nil, false, nil
			}
			cur = pred(col.child(target(k + 1)...))
		}
	}
	return gosnmp.SnmpPDU{}, nil, false, fmt.Errorf("seek in %s: gave up after %d steps", col, s.loc.maxSeek)
}

// intOf is an INTEGER-like value.
func intOf(v gosnmp.SnmpPDU) (int64, bool) {
	switch v.Type {
	case gosnmp.Integer, gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Uinteger32:
		return gosnmp.ToBigInt(v.Value).Int64(), true
	}
	return 0, false
}

// bytesOf is an OCTET STRING value.
func bytesOf(v gosnmp.SnmpPDU) ([]byte, bool) {
	if v.Type != gosnmp.OctetString {
		return nil, false
	}
	b, ok := v.Value.([]byte)
	return b, ok
}

// textOf is a DisplayString, trimmed, at most 255 octets of printable
// text; control characters are dropped.
func textOf(v gosnmp.SnmpPDU) string {
	b, ok := bytesOf(v)
	if !ok {
		return ""
	}
	if len(b) > 255 {
		b = b[:255]
	}
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return -1
		}
		return r
	}, strings.ToValidUTF8(string(b), ""))
	return strings.TrimSpace(s)
}
