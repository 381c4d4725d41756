package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FieldError is a validation error for one key. Line is 0 when unknown.
type FieldError struct {
	Key  string // e.g. relays[1].address
	Line int
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

// valueMsgs word a value that does not parse, or is not allowed, by key
// without list indices; decoding (checkKnown) and Validate share them, so a
// bad address reads the same whichever of the two finds it.
var valueMsgs = map[string]string{
	"interfaces.bridge_addresses": "invalid address/prefix %q (e.g. 10.0.255.3/29)",
	"interfaces.bridge_gateways":  "invalid address %q (e.g. 10.0.255.1)",
	"interfaces.inside_gateways":  "invalid address %q (e.g. 10.0.255.1)",
	"relays.address":              "invalid CIDR %q (e.g. 10.10.0.25/32 or 2001:db8::25/128)",
	"relays.public_address":       "invalid address %q (e.g. 198.51.100.25)",
	"inspect.labels.prefix":       "invalid prefix %q (e.g. 10.20.0.0/16)",
	"reputation.addresses":        "invalid address %q (e.g. 198.51.100.25)",
	"reputation.resolvers":        "invalid resolver %q (want ip:port, e.g. 10.0.0.53:53)",
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// valueMsg returns the message for the bad value text of key, and whether
// key has one.
func valueMsg(key, text string) (string, bool) {
	f, ok := valueMsgs[indexRE.ReplaceAllString(key, "")]
	if !ok {
		return "", false
	}
	return fmt.Sprintf(f, text), true
}

// badValue is the FieldError for the bad value text of a key in valueMsgs.
func badValue(key, text string) *FieldError {
	msg, ok := valueMsg(key, text)
	if !ok {
		msg = fmt.Sprintf("invalid value %q", text)
	}
	return &FieldError{Key: key, Msg: msg}
}

// addrText is a as the file would show it: "" when unset.
func addrText(a netip.Addr) string {
	b, _ := a.MarshalText()
	return string(b)
}

func addrPortText(a netip.AddrPort) string {
	b, _ := a.MarshalText()
	return string(b)
}

// ifNameRE is what Linux accepts as an interface name (IFNAMSIZ-1 octets,
// no '/', ':' or white space).
var ifNameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-@]{1,15}$`)

// Validate checks every key and returns the first error, naming the key.
func (c *Config) Validate() error {
	fe := func(key, format string, a ...any) error {
		return &FieldError{Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	switch c.Mode {
	case Monitor, Enforce:
	default:
		return fe("mode", "unknown mode %q (want monitor or enforce)", c.Mode)
	}
	ifs := []struct{ key, val string }{
		{"interfaces.bridge", c.Interfaces.Bridge},
		{"interfaces.inside", c.Interfaces.Inside},
		{"interfaces.outside", c.Interfaces.Outside},
		{"interfaces.management", c.Interfaces.Management},
	}
	seen := map[string]string{}
	for _, f := range ifs {
		if f.val == "" {
			return fe(f.key, "missing interface name")
		}
		if !ifNameRE.MatchString(f.val) || f.val == "." || f.val == ".." {
			return fe(f.key, "invalid interface name %q (1-15 characters of letters, digits, '_', '-', '.', '@')", f.val)
		}
		if other, ok := seen[f.val]; ok {
			return fe(f.key, "interface %q is already used as %s", f.val, other)
		}
		seen[f.val] = f.key
	}
	for i, p := range c.Interfaces.BridgeAddresses {
		if !p.IsValid() {
			return badValue(fmt.Sprintf("interfaces.bridge_addresses[%d]", i), "")
		}
	}
	for _, k := range []struct {
		key  string
		list []netip.Addr
	}{{"interfaces.bridge_gateways", c.Interfaces.BridgeGateways}, {"interfaces.inside_gateways", c.Interfaces.InsideGateways}} {
		fams := map[bool]bool{}
		for i, a := range k.list {
			if !a.IsValid() || a.Zone() != "" {
				return badValue(fmt.Sprintf("%s[%d]", k.key, i), addrText(a))
			}
			if fams[a.Is4()] {
				return fe(fmt.Sprintf("%s[%d]", k.key, i), "only one gateway per address family")
			}
			fams[a.Is4()] = true
		}
	}
	if s := c.Interfaces.BridgeMAC; s != "" {
		if _, err := parseMAC(s); err != nil {
			return fe("interfaces.bridge_mac", "%v", err)
		}
	}
	if c.Mode == Enforce && len(c.Relays) == 0 {
		return fe("relays", "the relay list is empty: in enforce mode that would block all outgoing mail")
	}
	names := map[string]bool{}
	for i, r := range c.Relays {
		key := fmt.Sprintf("relays[%d]", i)
		if strings.TrimSpace(r.Name) == "" {
			return fe(key+".name", "missing relay name")
		}
		if names[r.Name] {
			return fe(key+".name", "duplicate relay name %q", r.Name)
		}
		names[r.Name] = true
		if !r.Address.IsValid() {
			return badValue(key+".address", "")
		}
		switch r.TLS {
		case "", TLSPassthrough, TLSInspect:
		default:
			return fe(key+".tls", "unknown TLS policy %q (want passthrough or inspect)", r.TLS)
		}
		if r.PublicAddress.Zone() != "" {
			return badValue(key+".public_address", addrText(r.PublicAddress))
		}
		if r.Domain != "" && !domainRE.MatchString(r.Domain) {
			return fe(key+".domain", "invalid domain %q (e.g. corp.example)", r.Domain)
		}
	}
	if err := c.validateReputation(); err != nil {
		return err
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if err := c.validateExport(); err != nil {
		return err
	}
	if err := c.validateInspect(); err != nil {
		return err
	}
	if err := c.validateLocate(); err != nil {
		return err
	}
	if len(c.Ports) == 0 {
		return fe("ports", "at least one port is needed")
	}
	ports := map[int]bool{}
	for i, p := range c.Ports {
		if p < 1 || p > 65535 {
			return fe(fmt.Sprintf("ports[%d]", i), "port %d out of range 1-65535", p)
		}
		if ports[p] {
			return fe(fmt.Sprintf("ports[%d]", i), "duplicate port %d", p)
		}
		ports[p] = true
	}
	if strings.TrimSpace(c.RejectText) == "" {
		return fe("reject_text", "must not be empty")
	}
	if strings.ContainsAny(c.RejectText, "\r\n") || len(c.RejectText) > 400 {
		return fe("reject_text", "must be one line of at most 400 characters")
	}
	for _, r := range c.RejectText {
		if r < 0x20 || r == 0x7f {
			return fe("reject_text", "must not contain control characters")
		}
	}
	if ap, err := netip.ParseAddrPort(c.Web.Listen); err != nil || ap.Port() == 0 {
		return fe("web.listen", "invalid listen address %q (e.g. \"0.0.0.0:8443\")", c.Web.Listen)
	}
	if (c.Web.TLSCert == "") != (c.Web.TLSKey == "") {
		return fe("web.tls_cert", "tls_cert and tls_key go together")
	}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		return fe("data_dir", "must be an absolute path, got %q", c.DataDir)
	}
	if c.Proxy.Port < 1 || c.Proxy.Port > 65535 {
		return fe("proxy.port", "port %d out of range 1-65535", c.Proxy.Port)
	}
	if c.Proxy.NewConnsPerSource > 100000 {
		return fe("proxy.new_conns_per_source", "at most 100000 per second, got %d (negative: off)", c.Proxy.NewConnsPerSource)
	}
	if ports[c.Proxy.Port] {
		return fe("proxy.port", "port %d is also a diverted SMTP port", c.Proxy.Port)
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"proxy.max_conns_per_source", c.Proxy.MaxConnsPerSource}, {"proxy.max_conns", c.Proxy.MaxConns}, {"proxy.max_recipients", c.Proxy.MaxRecipients}, {"store.max_events", c.Store.MaxEvents}} {
		if v.n < 1 {
			return fe(v.key, "must be at least 1, got %d", v.n)
		}
	}
	if m := c.Store.MaxMB; m != 0 && (m < MinStoreMB || m > 1<<30) {
		return fe("store.max_mb", "must be 0 (40%% of the data partition, at most 1024) or %d to %d MiB, got %d", MinStoreMB, 1<<30, m)
	}
	if c.Store.EventsPerSourcePerMinute > 1000000 {
		return fe("store.events_per_source_per_minute", "at most 1000000, got %d (negative: no budget)", c.Store.EventsPerSourcePerMinute)
	}
	for _, v := range []struct {
		key string
		d   Duration
	}{{"proxy.idle_timeout", c.Proxy.IdleTimeout}, {"proxy.refusal_timeout", c.Proxy.RefusalTimeout}, {"proxy.connect_timeout", c.Proxy.ConnectTimeout}, {"store.retention", c.Store.Retention}} {
		if v.d.D() < time.Second {
			return fe(v.key, "must be at least 1s, got %s", v.d)
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fe("log.format", "unknown format %q (want text or json)", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fe("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	return nil
}

func parseMAC(s string) ([6]byte, error) {
	var m [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, fmt.Errorf("invalid MAC address %q (e.g. 02:52:47:00:00:01)", s)
	}
	for i, p := range parts {
		b, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return m, fmt.Errorf("invalid MAC address %q (e.g. 02:52:47:00:00:01)", s)
		}
		m[i] = byte(b)
	}
	if m[0]&1 == 1 {
		return m, fmt.Errorf("MAC address %q is a multicast address", s)
	}
	return m, nil
}

func (c *Config) validateLimits() error {
	l := c.Limits
	for _, v := range []struct {
		key string
		n   int
	}{
		{"limits.relay_messages_per_minute", l.RelayMessagesPerMinute},
		{"limits.sender_messages_per_minute", l.SenderMessagesPerMinute},
		{"limits.recipients_per_message", l.RecipientsPerMessage},
		{"limits.relay_sessions", l.RelaySessions},
		{"limits.relay_sessions_per_minute", l.RelaySessionsPerMinute},
		{"limits.remote_mx_per_minute", l.RemoteMXPerMinute},
		{"limits.burst.min_messages", l.Burst.MinMessages},
	} {
		if v.n < 0 {
			return &FieldError{Key: v.key, Msg: fmt.Sprintf("must not be negative, got %d (0 means unlimited)", v.n)}
		}
	}
	for dom, n := range l.DomainMessagesPerMinute {
		key := "limits.domain_messages_per_minute." + dom
		if !domainRE.MatchString(dom) {
			return &FieldError{Key: key, Msg: fmt.Sprintf("invalid domain %q (e.g. docomo.ne.jp)", dom)}
		}
		if n < 1 {
			return &FieldError{Key: key, Msg: fmt.Sprintf("must be at least 1, got %d", n)}
		}
	}
	if l.Burst.Factor < 0 || (l.Burst.Factor > 0 && l.Burst.Factor < 1.5) {
		return &FieldError{Key: "limits.burst.factor", Msg: fmt.Sprintf("must be 0 (off) or at least 1.5, got %g", l.Burst.Factor)}
	}
	if l.Burst.HoldFor.D() < time.Second {
		return &FieldError{Key: "limits.burst.hold_for", Msg: fmt.Sprintf("must be at least 1s, got %s", l.Burst.HoldFor)}
	}
	return nil
}

var domainRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)

func (c *Config) validateInspect() error {
	in := c.Inspect
	for _, v := range []struct {
		key string
		n   int
	}{
		{"inspect.ring_mb", in.RingMB},
		{"inspect.pcap_flows_per_host", in.PcapFlowsPerHost},
		{"inspect.pcap_packets_per_flow", in.PcapPacketsPerFlow},
		{"inspect.pcap_max_mb", in.PcapMaxMB},
		{"inspect.memory_mb", in.MemoryMB},
	} {
		if v.n < 1 {
			return &FieldError{Key: v.key, Msg: fmt.Sprintf("must be at least 1, got %d", v.n)}
		}
	}
	if in.RingMB > 1024 {
		return &FieldError{Key: "inspect.ring_mb", Msg: fmt.Sprintf("at most 1024, got %d", in.RingMB)}
	}
	if in.MemoryMB > 16384 {
		return &FieldError{Key: "inspect.memory_mb", Msg: fmt.Sprintf("at most 16384, got %d", in.MemoryMB)}
	}
	for i, l := range in.Labels {
		key := fmt.Sprintf("inspect.labels[%d]", i)
		if !l.Prefix.IsValid() || l.Prefix.IsSingle() {
			return badValue(key+".prefix", l.Prefix.String())
		}
		if strings.TrimSpace(l.Label) == "" || len(l.Label) > 100 || strings.ContainsAny(l.Label, "\r\n") {
			return &FieldError{Key: key + ".label", Msg: "must be one non-empty line of at most 100 characters"}
		}
	}
	return nil
}

func (c *Config) validateReputation() error {
	r := c.Reputation
	for i, a := range r.Addresses {
		if !a.IsValid() || a.Zone() != "" {
			return badValue(fmt.Sprintf("reputation.addresses[%d]", i), addrText(a))
		}
	}
	for i, z := range r.Zones {
		if !domainRE.MatchString(z) {
			return &FieldError{Key: fmt.Sprintf("reputation.zones[%d]", i), Msg: fmt.Sprintf("invalid zone %q (e.g. zen.spamhaus.org)", z)}
		}
	}
	for i, ap := range r.Resolvers {
		if !ap.IsValid() || ap.Port() == 0 {
			return badValue(fmt.Sprintf("reputation.resolvers[%d]", i), addrPortText(ap))
		}
	}
	if r.Interval.D() < time.Minute {
		return &FieldError{Key: "reputation.interval", Msg: fmt.Sprintf("must be at least 1m, got %s", r.Interval)}
	}
	if !domainRE.MatchString(r.RelayTestDomain) {
		return &FieldError{Key: "reputation.relay_test_domain", Msg: fmt.Sprintf("invalid domain %q", r.RelayTestDomain)}
	}
	a := c.Alerts
	if len(a.Email.To) > 0 || a.Email.From != "" || a.Email.Relay != "" {
		if len(a.Email.To) == 0 {
			return &FieldError{Key: "alerts.email.to", Msg: "at least one recipient is needed"}
		}
		for i, to := range a.Email.To {
			if !mailboxRE.MatchString(to) {
				return &FieldError{Key: fmt.Sprintf("alerts.email.to[%d]", i), Msg: fmt.Sprintf("invalid address %q (e.g. noc@corp.example)", to)}
			}
		}
		if !mailboxRE.MatchString(a.Email.From) {
			return &FieldError{Key: "alerts.email.from", Msg: fmt.Sprintf("invalid address %q (e.g. relaygate@corp.example)", a.Email.From)}
		}
		if _, _, err := net.SplitHostPort(a.Email.Relay); err != nil {
			return &FieldError{Key: "alerts.email.relay", Msg: fmt.Sprintf("want host:port, e.g. 10.10.0.25:25, got %q", a.Email.Relay)}
		}
	}
	if a.Syslog.Address != "" {
		if _, _, err := net.SplitHostPort(a.Syslog.Address); err != nil {
			return &FieldError{Key: "alerts.syslog.address", Msg: fmt.Sprintf("want host:port, e.g. 10.0.0.5:514, got %q", a.Syslog.Address)}
		}
		switch a.Syslog.Transport {
		case "udp", "tcp", "tls":
		default:
			return &FieldError{Key: "alerts.syslog.transport", Msg: fmt.Sprintf("unknown transport %q (want udp, tcp or tls)", a.Syslog.Transport)}
		}
	}
	if a.Webhook.URL != "" {
		u, err := url.Parse(a.Webhook.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{Key: "alerts.webhook.url", Msg: fmt.Sprintf("want an http or https URL, got %q", a.Webhook.URL)}
		}
	}
	if a.DigestAfter < 1 {
		return &FieldError{Key: "alerts.digest_after", Msg: fmt.Sprintf("must be at least 1, got %d", a.DigestAfter)}
	}
	if a.Window.D() < time.Second {
		return &FieldError{Key: "alerts.window", Msg: fmt.Sprintf("must be at least 1s, got %s", a.Window)}
	}
	return nil
}

var mailboxRE = regexp.MustCompile(`^[^@\s<>]+@[^@\s<>]+$`)

// DefaultSNMPPort is the port of a switch address written without one.
const DefaultSNMPPort = 161

// HostPort splits the switch's address, host or host:port (an IPv6
// address with a port in brackets, e.g. [2001:db8::2]:161), into host and
// port; the port is 161 when the address has none.
func (s Switch) HostPort() (string, uint16, error) {
	a := strings.TrimSpace(s.Address)
	bad := fmt.Errorf("invalid address %q (want host or host:port, e.g. 10.0.0.2 or core-1.corp.example:161)", s.Address)
	if a == "" {
		return "", 0, fmt.Errorf("missing address (host or host:port, e.g. 10.0.0.2)")
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		if ip.Zone() != "" {
			return "", 0, bad
		}
		return ip.String(), DefaultSNMPPort, nil
	}
	host, port := a, uint16(DefaultSNMPPort)
	if strings.Contains(a, ":") || strings.HasPrefix(a, "[") {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			return "", 0, bad
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", 0, bad
		}
		host, port = h, uint16(n)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", 0, bad
		}
		return ip.String(), port, nil
	}
	if !hostnameRE.MatchString(host) {
		return "", 0, bad
	}
	return host, port, nil
}

// hostnameRE is a DNS host name: one label or more, letters, digits and '-'.
var hostnameRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$`)

// SNMPv3 protocols as the configuration names them, case-insensitive.
// AES-192 and AES-256 extend the key as RFC draft-blumenthal-aes-usm
// (net-snmp); AES-192-C and AES-256-C as draft-reeder-snmpv3-usm-3desede,
// which Cisco uses.
var (
	snmpAuthProtos = []string{"SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"}
	snmpPrivProtos = []string{"AES", "AES-192", "AES-256", "AES-192-C", "AES-256-C"}
)

func knownProto(list []string, p string) bool {
	for _, k := range list {
		if strings.EqualFold(k, p) {
			return true
		}
	}
	return false
}

func (c *Config) validateLocate() error {
	l := c.Locate
	fe := func(key, format string, a ...any) error {
		return &FieldError{Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	if d := l.Timeout.D(); d < 100*time.Millisecond || d > time.Minute {
		return fe("locate.timeout", "must be 100ms to 1m, got %s", l.Timeout)
	}
	if l.Refresh.D() < 10*time.Second {
		return fe("locate.refresh", "must be at least 10s, got %s", l.Refresh)
	}
	names := map[string]int{}
	for i, s := range l.Switches {
		key := fmt.Sprintf("locate.switches[%d]", i)
		if strings.TrimSpace(s.Name) == "" {
			return fe(key+".name", "missing switch name (e.g. core)")
		}
		if len(s.Name) > 64 || strings.ContainsFunc(s.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fe(key+".name", "must be one line of at most 64 characters")
		}
		if j, ok := names[strings.ToLower(s.Name)]; ok {
			return fe(key+".name", "duplicate switch name %q (also locate.switches[%d])", s.Name, j)
		}
		names[strings.ToLower(s.Name)] = i
		if _, _, err := s.HostPort(); err != nil {
			return fe(key+".address", "%v", err)
		}
		secret := func(k, v string) error {
			if v == "" {
				return fe(key+"."+k, "missing (version %s needs it)", s.Version)
			}
			if len(v) > 256 || strings.ContainsAny(v, "\r\n\x00") {
				return fe(key+"."+k, "must be one line of at most 256 characters")
			}
			return nil
		}
		switch s.Version {
		case "2c":
			if err := secret("community", s.Community); err != nil {
				return err
			}
			if s.User != "" || s.AuthPass != "" || s.PrivPass != "" || s.Context != "" {
				return fe(key+".version", "version 2c takes a community; user, auth_pass, priv_pass and context are for version 3")
			}
		case "3":
			if s.Community != "" {
				return fe(key+".community", "a community is for version 2c; version 3 takes user, auth_pass and priv_pass")
			}
			for _, f := range []struct{ k, v string }{{"user", s.User}, {"auth_pass", s.AuthPass}, {"priv_pass", s.PrivPass}} {
				if err := secret(f.k, f.v); err != nil {
					return err
				}
			}
			// RFC 3414 section 11.2: passphrases of fewer than 8 octets
			// are refused by agents (net-snmp, Cisco), and by gosnmp.
			if len(s.AuthPass) < 8 {
				return fe(key+".auth_pass", "must be at least 8 characters (RFC 3414)")
			}
			if len(s.PrivPass) < 8 {
				return fe(key+".priv_pass", "must be at least 8 characters (RFC 3414)")
			}
			if !knownProto(snmpAuthProtos, s.AuthProto) {
				return fe(key+".auth_proto", "unknown authentication protocol %q (want %s)", s.AuthProto, strings.Join(snmpAuthProtos, ", "))
			}
			if !knownProto(snmpPrivProtos, s.PrivProto) {
				return fe(key+".priv_proto", "unknown privacy protocol %q (want %s)", s.PrivProto, strings.Join(snmpPrivProtos, ", "))
			}
			if len(s.Context) > 32 {
				return fe(key+".context", "at most 32 characters, got %d", len(s.Context))
			}
		case "":
			return fe(key+".version", "missing version (want 2c or 3)")
		default:
			return fe(key+".version", "unknown version %q (want 2c or 3; v1 is not supported)", s.Version)
		}
		if s.Version == "2c" && (s.AuthProto != "" || s.PrivProto != "") {
			return fe(key+".version", "version 2c takes a community; auth_proto and priv_proto are for version 3")
		}
		seen := map[int]bool{}
		for j, v := range s.VLANs {
			if v < 1 || v > 4094 {
				return fe(fmt.Sprintf("%s.vlans[%d]", key, j), "VLAN %d out of range 1-4094", v)
			}
			if seen[v] {
				return fe(fmt.Sprintf("%s.vlans[%d]", key, j), "duplicate VLAN %d", v)
			}
			seen[v] = true
		}
	}
	return nil
}

// SyslogFacilities maps the names export.syslog[].facility accepts to
// their RFC 5424 codes.
var SyslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// MinExportLineBytes is the least export.syslog[].max_line_bytes: every
// RFC 5424 receiver must accept 480 octets (RFC 5424 section 6.1).
const MinExportLineBytes = 480

var collectorNameRE = regexp.MustCompile(`^[A-Za-z0-9._:\[\]-]{1,64}$`)

func (c *Config) validateExport() error {
	x := c.Export
	if x.SpoolMB < 1 {
		return &FieldError{Key: "export.spool_mb", Msg: fmt.Sprintf("must be at least 1, got %d", x.SpoolMB)}
	}
	names := map[string]bool{}
	for i, col := range x.Syslog {
		key := fmt.Sprintf("export.syslog[%d]", i)
		if _, _, err := net.SplitHostPort(col.Address); err != nil {
			return &FieldError{Key: key + ".address", Msg: fmt.Sprintf("want host:port, e.g. 10.0.0.5:6514, got %q", col.Address)}
		}
		if !collectorNameRE.MatchString(col.Name) || col.Name == "." || col.Name == ".." {
			return &FieldError{Key: key + ".name", Msg: fmt.Sprintf("invalid name %q (1-64 letters, digits, '.', '_', '-', ':')", col.Name)}
		}
		if names[col.Name] {
			return &FieldError{Key: key + ".name", Msg: fmt.Sprintf("duplicate collector name %q", col.Name)}
		}
		names[col.Name] = true
		switch col.Transport {
		case "udp", "tcp", "tls":
		default:
			return &FieldError{Key: key + ".transport", Msg: fmt.Sprintf("unknown transport %q (want udp, tcp or tls)", col.Transport)}
		}
		switch col.Format {
		case "rfc5424", "json":
		default:
			return &FieldError{Key: key + ".format", Msg: fmt.Sprintf("unknown format %q (want rfc5424 or json)", col.Format)}
		}
		if _, ok := SyslogFacilities[col.Facility]; !ok {
			return &FieldError{Key: key + ".facility", Msg: fmt.Sprintf("unknown facility %q (e.g. local0, daemon, mail)", col.Facility)}
		}
		if col.Rate < 1 {
			return &FieldError{Key: key + ".rate", Msg: fmt.Sprintf("must be at least 1 line per second, got %d", col.Rate)}
		}
		if col.MaxLineBytes < MinExportLineBytes || col.MaxLineBytes > 64<<10 {
			return &FieldError{Key: key + ".max_line_bytes", Msg: fmt.Sprintf("must be between %d and 65536, got %d", MinExportLineBytes, col.MaxLineBytes)}
		}
		if col.Transport != "tls" && (col.CAFile != "" || col.ServerName != "" || col.CertFile != "" || col.KeyFile != "") {
			return &FieldError{Key: key + ".ca_file", Msg: "ca_file, server_name, cert_file and key_file need transport tls"}
		}
		if (col.CertFile == "") != (col.KeyFile == "") {
			return &FieldError{Key: key + ".cert_file", Msg: "cert_file and key_file go together"}
		}
	}
	return nil
}
