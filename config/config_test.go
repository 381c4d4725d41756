package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// netipOpts compares netip values by ==, which is what they are made for.
var netipOpts = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{})

// head is the start of most test documents: lines 1-5. Keys appended with
// two spaces of indentation continue the interfaces mapping at line 6;
// unindented keys start at line 6 at the top level.
const head = `mode: monitor
interfaces:
  inside: eth1
  outside: eth2
  management: eth0
`

// enforceHead is head in enforce mode with one relay: lines 1-8.
const enforceHead = `mode: enforce
interfaces:
  inside: eth1
  outside: eth2
  management: eth0
relays:
  - name: mail-relay
    address: 10.10.0.25/32
`

// withDefaults returns the configuration that head+extra is expected to
// parse to: every default spelled out literally, so that a changed default
// shows up here.
func withDefaults(mode Mode, relays ...Relay) *Config {
	for i := range relays {
		if relays[i].TLS == "" {
			relays[i].TLS = TLSPassthrough
		}
	}
	return &Config{
		Mode: mode,
		Interfaces: Interfaces{
			Bridge:     "br0",
			Inside:     "eth1",
			Outside:    "eth2",
			Management: "eth0",
		},
		Relays:     relays,
		Ports:      []int{25},
		RejectText: "Direct SMTP from this host is not permitted. Send mail through the company mail server.",
		Web:        Web{Listen: "0.0.0.0:8443"},
		DataDir:    "/var/lib/relaygate",
		Proxy: Proxy{
			Port:              10025,
			MaxConnsPerSource: 4,
			MaxConns:          4096,
			IdleTimeout:       Duration(5 * time.Minute),
			RefusalTimeout:    Duration(60 * time.Second),
			ConnectTimeout:    Duration(30 * time.Second),
			MaxRecipients:     100,
			NewConnsPerSource: 20,
		},
		Limits:  Limits{Burst: Burst{Factor: 10, MinMessages: 30, HoldFor: Duration(15 * time.Minute)}},
		Inspect: Inspect{RingMB: 8, PcapFlowsPerHost: 5, PcapPacketsPerFlow: 200, PcapMaxMB: 256, MemoryMB: 64},
		Reputation: Reputation{
			Zones:           []string{"zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "psbl.surriel.com", "bl.mailspike.net", "dnsbl-1.uceprotect.net"},
			Interval:        Duration(time.Hour),
			RelayTestDomain: "relay-test.example.net",
		},
		Alerts: Alerts{DigestAfter: 5, Window: Duration(10 * time.Minute)},
		Store: Store{
			Retention:                Duration(90 * 24 * time.Hour),
			MaxEvents:                1_000_000,
			EventsPerSourcePerMinute: 60,
		},
		Log:    Log{Format: "text", Level: "info"},
		Locate: Locate{Refresh: Duration(5 * time.Minute), Timeout: Duration(2 * time.Second)},
		Export: Export{SpoolMB: 64},
	}
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func addrPorts(ss ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

// exampleConfig is what testdata/example.yaml (the DESIGN.md example) parses to.
func exampleConfig() *Config {
	c := withDefaults(Enforce, Relay{Name: "mail-relay", Address: MustParsePrefix("10.10.0.25/32")})
	c.Interfaces.BridgeAddresses = prefixes("10.0.255.3/29", "2001:db8:ff::3/64")
	c.Interfaces.BridgeGateways = addrs("10.0.255.1", "2001:db8:ff::1")
	return c
}

// fullConfig sets every key to a value other than its default.
func fullConfig() *Config {
	return &Config{
		Mode: Enforce,
		Interfaces: Interfaces{
			Bridge:          "rg0",
			Inside:          "enp1s0",
			Outside:         "enp2s0",
			Management:      "eth0.100",
			BridgeAddresses: prefixes("192.0.2.3/29", "2001:db8:ff::3/64"),
			BridgeGateways:  addrs("2001:db8:ff::1", "192.0.2.1"),
			InsideGateways:  addrs("192.0.2.2", "2001:db8:ff::2"),
			BridgeMAC:       "02:52:47:00:00:01",
		},
		Relays: []Relay{
			{Name: "relay-v4", Address: MustParsePrefix("10.10.0.0/24"), TLS: TLSInspect, PublicAddress: netip.MustParseAddr("198.51.100.25"), Domain: "corp.example"},
			{Name: "relay-v6", Address: MustParsePrefix("2001:db8:25::/48"), TLS: TLSPassthrough},
			{Name: "relay host", Address: MustParsePrefix("10.10.0.25"), TLS: TLSPassthrough},
		},
		Ports:      []int{25, 2525},
		RejectText: `Blocked: "direct" SMTP: use relay.example.com # not a comment`,
		Web: Web{
			Listen:  "[2001:db8::1]:443",
			TLSCert: "/etc/relaygate/cert.pem",
			TLSKey:  "/etc/relaygate/key.pem",
		},
		DataDir: "/srv/relaygate",
		Proxy: Proxy{
			Port:              10026,
			MaxConnsPerSource: 2,
			MaxConns:          100,
			IdleTimeout:       Duration(90 * time.Second),
			RefusalTimeout:    Duration(1500 * time.Millisecond),
			ConnectTimeout:    Duration(time.Second),
			MaxRecipients:     1,
			NewConnsPerSource: -1,
		},
		Limits: Limits{
			RelayMessagesPerMinute:  600,
			SenderMessagesPerMinute: 60,
			DomainMessagesPerMinute: map[string]int{"docomo.ne.jp": 30, "ezweb.ne.jp": 20},
			RecipientsPerMessage:    50,
			RelaySessions:           20,
			RelaySessionsPerMinute:  300,
			RemoteMXPerMinute:       100,
			Burst:                   Burst{Factor: 5, MinMessages: 10, Hold: true, HoldFor: Duration(30 * time.Minute)},
		},
		Inspect: Inspect{
			Enabled: new(false), RingMB: 4, PcapFlowsPerHost: 2, PcapPacketsPerFlow: 50, PcapMaxMB: 16, MemoryMB: 32,
			ReverseDNS: new(false), Labels: []Label{{Prefix: MustParsePrefix("10.20.0.0/16"), Label: "Koror office"}},
		},
		Reputation: Reputation{
			Addresses:       addrs("198.51.100.25", "2001:db8::25"),
			Zones:           []string{"zen.spamhaus.org"},
			Resolvers:       addrPorts("10.0.0.53:53", "[2001:db8::53]:53"),
			Interval:        Duration(30 * time.Minute),
			RelayTestDomain: "probe.example.org",
		},
		Alerts: Alerts{
			Email:       EmailAlert{To: []string{"noc@corp.example"}, From: "relaygate@corp.example", Relay: "10.10.0.25:25"},
			Syslog:      SyslogAlert{Address: "10.0.0.5:6514", Transport: "tls"},
			Webhook:     WebhookAlert{URL: "https://chat.corp.example/hooks/relaygate"},
			DigestAfter: 3,
			Window:      Duration(5 * time.Minute),
		},
		Store:  Store{Retention: Duration(720 * time.Hour), MaxEvents: 10, MaxMB: 64, EventsPerSourcePerMinute: -1},
		Log:    Log{Format: "json", Level: "debug"},
		Locate: Locate{Refresh: Duration(5 * time.Minute), Timeout: Duration(2 * time.Second)},
		Export: Export{SpoolMB: 16, Syslog: []ExportCollector{{Name: "siem", Address: "10.0.0.5:6514", Transport: "tls",
			Format: "json", CAFile: "/etc/relaygate/siem-ca.pem", ServerName: "siem.corp.example",
			CertFile: "/etc/relaygate/box.pem", KeyFile: "/etc/relaygate/box.key", Facility: "mail", Rate: 50, MaxLineBytes: 4096}}},
	}
}

func readExample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonIndent(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want *Config
	}{
		{
			name: "design example",
			in:   readExample(t),
			want: exampleConfig(),
		},
		{
			name: "required keys only get every default",
			in:   []byte(head),
			want: withDefaults(Monitor),
		},
		{
			name: "enforce with one relay",
			in:   []byte(enforceHead),
			want: withDefaults(Enforce, Relay{Name: "mail-relay", Address: MustParsePrefix("10.10.0.25/32")}),
		},
		{
			name: "monitor with an empty relay list",
			in:   []byte(head + "relays: []\n"),
			want: withDefaults(Monitor, []Relay{}...),
		},
		{
			name: "bare relay addresses (taken as /32 and /128)",
			in: []byte(head + `relays:
  - {name: v4, address: 10.10.0.25}
  - {name: v6, address: "2001:db8::25"}
`),
			want: withDefaults(Monitor, Relay{Name: "v4", Address: MustParsePrefix("10.10.0.25")}, Relay{Name: "v6", Address: MustParsePrefix("2001:db8::25")}),
		},
		{
			name: "null values take defaults",
			in:   []byte(head + "proxy:\n  port:\n  idle_timeout:\nlog:\nports:\n"),
			want: withDefaults(Monitor),
		},
		{
			name: "JSON on one line",
			in:   []byte(`{"mode":"monitor","interfaces":{"inside":"eth1","outside":"eth2","management":"eth0"}}`),
			want: withDefaults(Monitor),
		},
		{
			name: "JSON indented with tabs (encoding/json)",
			in:   jsonIndent(t, exampleConfig()),
			want: exampleConfig(),
		},
		{
			name: "JSON of a config with every key set",
			in:   jsonIndent(t, fullConfig()),
			want: fullConfig(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse() = %v, want nil error", err)
			}
			if diff := cmp.Diff(tt.want, got, netipOpts); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseRelayNets checks the networks relay addresses stand for, and
// that each keeps its spelling.
func TestParseRelayNets(t *testing.T) {
	c, err := Parse([]byte(head + `relays:
  - {name: v4, address: 10.10.0.25}
  - {name: v6, address: "2001:db8::25"}
  - {name: mapped, address: "::ffff:192.0.2.7"}
  - {name: net, address: 10.20.0.9/16}
  - {name: v6net, address: "2001:DB8:25::/48"}
`))
	if err != nil {
		t.Fatal(err)
	}
	type relay struct {
		Net     netip.Prefix
		Written string
	}
	want := []relay{
		{netip.MustParsePrefix("10.10.0.25/32"), "10.10.0.25"},
		{netip.MustParsePrefix("2001:db8::25/128"), "2001:db8::25"},
		{netip.MustParsePrefix("192.0.2.7/32"), "::ffff:192.0.2.7"},
		{netip.MustParsePrefix("10.20.0.0/16"), "10.20.0.9/16"},
		{netip.MustParsePrefix("2001:db8:25::/48"), "2001:db8:25::/48"},
	}
	var got []relay
	for _, r := range c.Relays {
		got = append(got, relay{r.Address.Net(), r.Address.String()})
	}
	if diff := cmp.Diff(want, got, netipOpts); diff != "" {
		t.Errorf("relay addresses mismatch (-want +got):\n%s", diff)
	}
}

// TestParseErrors checks that every error is one line, names the key and,
// where the key is in the file, its line.
func TestParseErrors(t *testing.T) {
	long := strings.Repeat("x", 401)
	tests := []struct {
		name string
		in   string
		key  string // "" for errors without a key (syntax, empty file)
		line int    // 0: the message must not mention a line; -1: not checked
		msg  string // a further substring of the message, optional
	}{
		// Schema.
		{name: "unknown top-level key", in: head + "colour: blue\n", key: "colour", line: 6, msg: "unknown key"},
		{name: "unknown nested key", in: head + "  foo: bar\n", key: "interfaces.foo", line: 6, msg: "unknown key"},
		{name: "misspelt relay key", in: head + "relays:\n  - name: a\n    adress: 10.0.0.1\n", key: "relays[0].adress", line: 8, msg: "unknown key"},
		{name: "unknown key in second relay", in: enforceHead + "  - name: b\n    address: 10.0.0.2\n    port: 25\n", key: "relays[1].port", line: 11},
		{name: "unknown key under web", in: head + "web:\n  listen: 0.0.0.0:8443\n  tls: true\n", key: "web.tls", line: 8},
		{name: "unknown key in JSON", in: `{"mode": "monitor",` + "\n" + `"modus": "x"}`, key: "modus", line: 2},
		{name: "first error in document order", in: head + "proxy:\n  idle_timeout: soon\n  bogus: 1\n", key: "proxy.idle_timeout", line: 7},

		// Limits and inspection.
		{name: "unknown relay tls policy", in: enforceHead + "    tls: strip\n", key: "relays[0].tls", line: 9, msg: `"strip"`},
		{name: "negative limit", in: head + "limits:\n  relay_messages_per_minute: -1\n", key: "limits.relay_messages_per_minute", line: 7},
		{name: "bad limit domain", in: head + "limits:\n  domain_messages_per_minute:\n    \"not a domain\": 5\n", key: "limits.domain_messages_per_minute.not a domain", line: 7},
		{name: "zero domain limit", in: head + "limits:\n  domain_messages_per_minute:\n    docomo.ne.jp: 0\n", key: "limits.domain_messages_per_minute.docomo.ne.jp", line: 7},
		{name: "burst factor too small", in: head + "limits:\n  burst:\n    factor: 1.1\n", key: "limits.burst.factor", line: 8},
		{name: "unknown limit key", in: head + "limits:\n  messages: 5\n", key: "limits.messages", line: 7, msg: "unknown key"},
		{name: "bad label prefix", in: head + "inspect:\n  labels:\n    - {prefix: 10.20.0.0/33, label: Koror office}\n", key: "inspect.labels[0].prefix", line: 8},
		{name: "empty label", in: head + "inspect:\n  labels:\n    - {prefix: 10.20.0.0/16, label: \"\"}\n", key: "inspect.labels[0].label", line: 8},
		{name: "ring too large", in: head + "inspect:\n  ring_mb: 4096\n", key: "inspect.ring_mb", line: 7},
		{name: "inspection memory negative", in: head + "inspect:\n  memory_mb: -1\n", key: "inspect.memory_mb", line: 7},
		{name: "inspection memory too large", in: head + "inspect:\n  memory_mb: 100000\n", key: "inspect.memory_mb", line: 7},
		{name: "enabled not a bool", in: head + "inspect:\n  enabled: sometimes\n", key: "inspect.enabled", line: 7},

		// Reputation and alerts.
		{name: "bad reputation address", in: head + "reputation:\n  addresses: [198.51.100.300]\n", key: "reputation.addresses[0]", line: 7},
		{name: "bad zone", in: head + "reputation:\n  zones: [\"spam haus\"]\n", key: "reputation.zones[0]", line: 7},
		{name: "resolver without port", in: head + "reputation:\n  resolvers: [10.0.0.53]\n", key: "reputation.resolvers[0]", line: 7},
		{name: "interval too short", in: head + "reputation:\n  interval: 10s\n", key: "reputation.interval", line: 7},
		{name: "bad public address", in: enforceHead + "    public_address: nope\n", key: "relays[0].public_address", line: 9},
		{name: "bad relay domain", in: enforceHead + "    domain: -corp\n", key: "relays[0].domain", line: 9},
		{name: "email alert without recipients", in: head + "alerts:\n  email:\n    from: a@b.example\n    relay: 10.0.0.1:25\n", key: "alerts.email.to", line: 7},
		{name: "email alert bad relay", in: head + "alerts:\n  email:\n    to: [noc@corp.example]\n    from: a@b.example\n    relay: 10.0.0.1\n", key: "alerts.email.relay", line: 10},
		{name: "syslog bad transport", in: head + "alerts:\n  syslog:\n    address: 10.0.0.5:514\n    transport: carrier-pigeon\n", key: "alerts.syslog.transport", line: 9},
		{name: "webhook not http", in: head + "alerts:\n  webhook:\n    url: ftp://x.example/\n", key: "alerts.webhook.url", line: 8},

		// Types.
		{name: "bad duration", in: head + "proxy:\n  idle_timeout: soon\n", key: "proxy.idle_timeout", line: 7, msg: `"soon"`},
		{name: "duration without unit", in: head + "store:\n  retention: 30\n", key: "store.retention", line: 7},
		{name: "duration as a list", in: head + "proxy:\n  connect_timeout: [1s]\n", key: "proxy.connect_timeout", line: 7},
		{name: "port not a number", in: head + "ports: [25, smtp]\n", key: "ports[1]", line: 6, msg: "smtp"},
		{name: "ports not a list", in: head + "ports: 25\n", key: "ports", line: 6},
		{name: "proxy port not a number", in: head + "proxy:\n  port: high\n", key: "proxy.port", line: 7},
		{name: "mode a list", in: "mode: [enforce]\n" + head[len("mode: monitor\n"):], key: "mode", line: 1},
		{name: "interfaces a string", in: "mode: monitor\ninterfaces: eth0\n", key: "interfaces", line: 2},
		{name: "relay a string", in: head + "relays:\n  - mail-relay\n", key: "relays[0]", line: 7},
		{name: "nested duplicate key", in: head + "  inside: eth3\n", key: "interfaces", line: 2, msg: "already defined"},
		{name: "top-level duplicate key", in: head + "mode: enforce\n", line: 6, msg: `"mode" already defined`},

		// Typed values (addresses and prefixes) word a bad value as Validate does.
		{name: "bad label prefix wording", in: head + "inspect:\n  labels:\n    - {prefix: 10.20.0.0/33, label: x}\n", key: "inspect.labels[0].prefix", line: 8, msg: `invalid prefix "10.20.0.0/33" (e.g. 10.20.0.0/16)`},
		{name: "single address as label", in: head + "inspect:\n  labels:\n    - {prefix: 10.20.0.1, label: x}\n", key: "inspect.labels[0].prefix", line: 8, msg: `invalid prefix "10.20.0.1"`},
		{name: "zoned gateway", in: head + "  bridge_gateways: [\"fe80::1%br0\"]\n", key: "interfaces.bridge_gateways[0]", line: 6, msg: `invalid address "fe80::1%br0" (e.g. 10.0.255.1)`},
		{name: "zoned public address", in: enforceHead + "    public_address: \"fe80::1%eth0\"\n", key: "relays[0].public_address", line: 9, msg: `invalid address "fe80::1%eth0" (e.g. 198.51.100.25)`},
		{name: "public address a mapping", in: enforceHead + "    public_address: {a: 1}\n", key: "relays[0].public_address", line: 9, msg: "cannot unmarshal !!map"},
		{name: "relay address a list", in: enforceHead + "  - name: b\n    address: [10.0.0.1]\n", key: "relays[1].address", line: 10, msg: "cannot unmarshal !!seq"},
		{name: "relay address wording", in: enforceHead + "  - name: b\n    address: 10.0.0.300\n", key: "relays[1].address", line: 10, msg: `invalid CIDR "10.0.0.300" (e.g. 10.10.0.25/32 or 2001:db8::25/128)`},
		{name: "resolver port 0", in: head + "reputation:\n  resolvers: [\"10.0.0.53:0\"]\n", key: "reputation.resolvers[0]", line: 7, msg: `invalid resolver "10.0.0.53:0"`},
		{name: "bridge address wording", in: head + "  bridge_addresses: [10.0.255.3]\n", key: "interfaces.bridge_addresses[0]", line: 6, msg: `invalid address/prefix "10.0.255.3" (e.g. 10.0.255.3/29)`},

		// Mode and relays.
		{name: "unknown mode", in: "mode: block\n" + head[len("mode: monitor\n"):], key: "mode", line: 1, msg: `"block"`},
		{name: "mode in wrong case", in: "mode: Enforce\n" + head[len("mode: monitor\n"):], key: "mode", line: 1},
		{name: "enforce without relays key", in: "mode: enforce\n" + head[len("mode: monitor\n"):], key: "relays", msg: "empty"},
		{name: "enforce with empty relays", in: "mode: enforce\n" + head[len("mode: monitor\n"):] + "relays: []\n", key: "relays", line: 6, msg: "empty"},
		{name: "bad CIDR in second relay", in: enforceHead + "  - name: b\n    address: 10.0.0.300/24\n", key: "relays[1].address", line: 10, msg: "10.0.0.300/24"},
		{name: "prefix too long", in: enforceHead + "  - name: b\n    address: 10.0.0.0/33\n", key: "relays[1].address", line: 10},
		{name: "host name as relay", in: enforceHead + "  - name: b\n    address: mail.example.com\n", key: "relays[1].address", line: 10},
		{name: "relay with zone", in: enforceHead + "  - name: b\n    address: \"fe80::1%eth0\"\n", key: "relays[1].address", line: 10},
		{name: "relay without address", in: enforceHead + "  - name: b\n", key: "relays[1].address", line: 9},
		{name: "duplicate relay names", in: enforceHead + "  - name: mail-relay\n    address: 10.0.0.2\n", key: "relays[1].name", line: 9, msg: "duplicate"},
		{name: "relay without name", in: enforceHead + "  - address: 10.0.0.2\n", key: "relays[1].name", line: 9},
		{name: "blank relay name", in: enforceHead + "  - name: \" \"\n    address: 10.0.0.2\n", key: "relays[1].name", line: 9},

		// Interfaces.
		{name: "interface name too long", in: "mode: monitor\ninterfaces:\n  inside: eth1234567890abc\n  outside: eth2\n  management: eth0\n", key: "interfaces.inside", line: 3, msg: "eth1234567890abc"},
		{name: "interface name with slash", in: "mode: monitor\ninterfaces:\n  inside: eth1\n  outside: eth/2\n  management: eth0\n", key: "interfaces.outside", line: 4},
		{name: "interface name with space", in: "mode: monitor\ninterfaces:\n  inside: eth1\n  outside: eth2\n  management: \"eth 0\"\n", key: "interfaces.management", line: 5},
		{name: "interface name with colon", in: "mode: monitor\ninterfaces:\n  inside: \"eth1:0\"\n  outside: eth2\n  management: eth0\n", key: "interfaces.inside", line: 3},
		{name: "interface name dot", in: head + "  bridge: \".\"\n", key: "interfaces.bridge", line: 6},
		{name: "interface missing", in: "mode: monitor\ninterfaces:\n  inside: eth1\n  outside: eth2\n", key: "interfaces.management", line: 2, msg: "missing"},
		{name: "interfaces missing", in: "mode: monitor\n", key: "interfaces.inside", line: 0, msg: "missing"},
		{name: "interface used twice", in: "mode: monitor\ninterfaces:\n  inside: eth1\n  outside: eth1\n  management: eth0\n", key: "interfaces.outside", line: 4, msg: "interfaces.inside"},
		{name: "bridge named like a port", in: head + "  bridge: eth0\n", key: "interfaces.management", line: 5, msg: "interfaces.bridge"},
		{name: "bad bridge address", in: head + "  bridge_addresses: [10.0.255.3/29, 10.0.255.999/29]\n", key: "interfaces.bridge_addresses[1]", line: 6, msg: "10.0.255.999/29"},
		{name: "bridge address without prefix length", in: head + "  bridge_addresses:\n    - 10.0.255.3\n", key: "interfaces.bridge_addresses[0]", line: 7},
		{name: "bad gateway", in: head + "  bridge_gateways: [10.0.255.1, gw.example]\n", key: "interfaces.bridge_gateways[1]", line: 6, msg: "gw.example"},
		{name: "gateway with prefix", in: head + "  bridge_gateways: [10.0.255.1/29]\n", key: "interfaces.bridge_gateways[0]", line: 6},
		{name: "two IPv4 gateways", in: head + "  bridge_gateways:\n    - 10.0.255.1\n    - 10.0.255.2\n", key: "interfaces.bridge_gateways[1]", line: 8, msg: "one gateway per address family"},
		{name: "two IPv6 gateways", in: head + "  bridge_gateways: [\"2001:db8::1\", 10.0.0.1, \"2001:db8::2\"]\n", key: "interfaces.bridge_gateways[2]", line: 6},
		{name: "two inside gateways", in: head + "  inside_gateways: [10.0.255.2, 10.0.255.4]\n", key: "interfaces.inside_gateways[1]", line: 6},
		{name: "bad inside gateway", in: head + "  inside_gateways: [switch]\n", key: "interfaces.inside_gateways[0]", line: 6},
		{name: "multicast bridge MAC", in: head + "  bridge_mac: 01:00:5e:00:00:01\n", key: "interfaces.bridge_mac", line: 6, msg: "multicast"},
		{name: "short bridge MAC", in: head + "  bridge_mac: 02:52:47:00:00\n", key: "interfaces.bridge_mac", line: 6},
		{name: "bridge MAC with non-hex octet", in: head + "  bridge_mac: 02:52:47:00:00:0g\n", key: "interfaces.bridge_mac", line: 6},
		{name: "bridge MAC with signed octet", in: head + "  bridge_mac: 02:52:47:00:00:+1\n", key: "interfaces.bridge_mac", line: 6},

		// Ports.
		{name: "port 0", in: head + "ports: [0]\n", key: "ports[0]", line: 6, msg: "range"},
		{name: "port 70000", in: head + "ports:\n  - 25\n  - 70000\n", key: "ports[1]", line: 8, msg: "range"},
		{name: "negative port", in: head + "ports: [-25]\n", key: "ports[0]", line: 6},
		{name: "duplicate port", in: head + "ports: [25, 587, 25]\n", key: "ports[2]", line: 6, msg: "duplicate"},
		{name: "proxy port is a diverted port", in: head + "ports: [25, 2525]\nproxy:\n  port: 2525\n", key: "proxy.port", line: 8, msg: "diverted"},
		{name: "proxy port 70000", in: head + "proxy:\n  port: 70000\n", key: "proxy.port", line: 7},
		{name: "proxy port negative", in: head + "proxy:\n  port: -1\n", key: "proxy.port", line: 7},

		// Limits and durations.
		{name: "max_conns negative", in: head + "proxy:\n  max_conns: -1\n", key: "proxy.max_conns", line: 7},
		{name: "max_conns_per_source negative", in: head + "proxy:\n  max_conns_per_source: -4\n", key: "proxy.max_conns_per_source", line: 7},
		{name: "max_recipients negative", in: head + "proxy:\n  max_recipients: -1\n", key: "proxy.max_recipients", line: 7},
		{name: "max_events negative", in: head + "store:\n  max_events: -1\n", key: "store.max_events", line: 7},
		{name: "idle_timeout below 1s", in: head + "proxy:\n  idle_timeout: 500ms\n", key: "proxy.idle_timeout", line: 7, msg: "at least 1s"},
		{name: "refusal_timeout below 1s", in: head + "proxy:\n  refusal_timeout: 999ms\n", key: "proxy.refusal_timeout", line: 7},
		{name: "connect_timeout negative", in: head + "proxy:\n  connect_timeout: -30s\n", key: "proxy.connect_timeout", line: 7},
		{name: "retention below 1s", in: head + "store:\n  retention: 1ns\n", key: "store.retention", line: 7},

		// Texts, listen address, paths, logging.
		{name: "reject_text with newline", in: head + "reject_text: \"Go away.\\nNow.\"\n", key: "reject_text", line: 6, msg: "one line"},
		{name: "reject_text with CR", in: head + "reject_text: \"Go away.\\r\"\n", key: "reject_text", line: 6},
		{name: "reject_text block scalar", in: head + "reject_text: |\n  Go away.\n  Now.\n", key: "reject_text", line: 6},
		{name: "reject_text too long", in: head + "reject_text: " + long + "\n", key: "reject_text", line: 6, msg: "400"},
		{name: "reject_text blank", in: head + "reject_text: \"   \"\n", key: "reject_text", line: 6},
		{name: "reject_text with tab", in: head + "reject_text: \"a\\tb\"\n", key: "reject_text", line: 6, msg: "control"},
		{name: "web.listen without port", in: head + "web:\n  listen: 0.0.0.0\n", key: "web.listen", line: 7},
		{name: "web.listen host name", in: head + "web:\n  listen: localhost:8443\n", key: "web.listen", line: 7},
		{name: "web.listen port 0", in: head + "web:\n  listen: 0.0.0.0:0\n", key: "web.listen", line: 7},
		{name: "web.listen port too big", in: head + "web:\n  listen: \"[::]:99999\"\n", key: "web.listen", line: 7},
		{name: "web.listen IPv6 without brackets", in: head + "web:\n  listen: \"::1:8443\"\n", key: "web.listen", line: 7},
		{name: "tls_cert without tls_key", in: head + "web:\n  tls_cert: /etc/relaygate/cert.pem\n", key: "web.tls_cert", line: 7, msg: "tls_key"},
		{name: "tls_key without tls_cert", in: head + "web:\n  tls_key: /etc/relaygate/key.pem\n", key: "web.tls_cert", line: 6},
		{name: "relative data_dir", in: head + "data_dir: var/lib/relaygate\n", key: "data_dir", line: 6, msg: "absolute"},
		{name: "log.format unknown", in: head + "log:\n  format: xml\n", key: "log.format", line: 7, msg: `"xml"`},
		{name: "log.level unknown", in: head + "log:\n  level: verbose\n", key: "log.level", line: 7},

		// Not a configuration at all.
		{name: "tab indentation", in: "mode: monitor\ninterfaces:\n\tinside: eth1\n", line: 3},
		{name: "bad indentation", in: "mode: monitor\ninterfaces:\n  inside: eth1\n   outside: eth2\n", line: 4},
		{name: "unclosed flow sequence", in: head + "ports: [25\n", line: -1},
		{name: "unclosed quote", in: head + "reject_text: \"no end\n", line: 6},
		{name: "empty file", in: "", msg: "empty"},
		{name: "comments only", in: "# nothing here\n\n", msg: "empty"},
		{name: "top-level list", in: "- mode: monitor\n- interfaces: {}\n", line: 1, msg: "mapping"},
		{name: "top-level scalar", in: "enforce\n", line: 1, msg: "mapping"},
		{name: "top-level JSON array", in: `[{"mode": "monitor"}]`, line: 1, msg: "mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, nil; want an error", tt.in, c)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("Parse() error = %q, want one line", msg)
			}
			if tt.key != "" && !strings.Contains(msg, tt.key+": ") {
				t.Errorf("Parse() error = %q, want it to name key %q", msg, tt.key)
			}
			if tt.line > 0 {
				if want := "line " + strconv.Itoa(tt.line) + ": "; !strings.HasPrefix(msg, want) {
					t.Errorf("Parse() error = %q, want prefix %q", msg, want)
				}
			} else if tt.line == 0 && strings.Contains(msg, "line ") {
				t.Errorf("Parse() error = %q, want no line number", msg)
			}
			if tt.msg != "" && !strings.Contains(msg, tt.msg) {
				t.Errorf("Parse() error = %q, want it to contain %q", msg, tt.msg)
			}
			if tt.key != "" {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("Parse() error = %q (%T), want a *FieldError", msg, err)
				}
				if diff := cmp.Diff(FieldError{Key: tt.key, Line: tt.line}, *fe, cmpopts.IgnoreFields(FieldError{}, "Msg"), netipOpts); diff != "" {
					t.Errorf("Parse() FieldError mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestParseAccepts covers values at the edge of what is valid.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		check func(*Config) (got, want any)
	}{
		{"empty bridge name takes the default", "  bridge: \"\"\n", func(c *Config) (any, any) { return c.Interfaces.Bridge, "br0" }},
		{"15-character interface name", "  bridge: br0123456789abc\n", func(c *Config) (any, any) { return c.Interfaces.Bridge, "br0123456789abc" }},
		{"VLAN interface name", "  bridge: eth0.100\n", nil},
		{"one gateway per family", "  bridge_gateways: [10.0.255.1, \"2001:db8::1\"]\n  inside_gateways: [\"2001:db8::2\", 10.0.255.2]\n", nil},
		{"unicast bridge MAC", "  bridge_mac: 02:52:47:AB:cd:01\n", nil},
		{"port 1 and 65535", "ports: [1, 65535]\n", func(c *Config) (any, any) { return c.Ports, []int{1, 65535} }},
		{"proxy port 65535", "proxy:\n  port: 65535\n", func(c *Config) (any, any) { return c.Proxy.Port, 65535 }},
		{"durations of exactly 1s", "proxy:\n  idle_timeout: 1s\n  refusal_timeout: 1000ms\n  connect_timeout: 1s\nstore:\n  retention: 1s\n", func(c *Config) (any, any) { return c.Proxy.RefusalTimeout, Duration(time.Second) }},
		{"reject_text of 400 characters", "reject_text: " + strings.Repeat("y", 400) + "\n", func(c *Config) (any, any) { return len(c.RejectText), 400 }},
		{"reject_text with UTF-8", "reject_text: \"Direkter SMTP-Versand ist nicht erlaubt – bitte über den Mailserver.\"\n", nil},
		{"web.listen IPv6", "web:\n  listen: \"[::]:8443\"\n", nil},
		{"tls_cert with tls_key", "web:\n  tls_cert: /c.pem\n  tls_key: /k.pem\n", nil},
		{"log json debug", "log:\n  format: json\n  level: debug\n", nil},
		{"all log levels", "log:\n  level: error\n", nil},
		{"mapped relay address", "relays:\n  - {name: a, address: \"::ffff:10.0.0.1\"}\n", nil},
		{"empty ports list takes the default", "ports: []\n", func(c *Config) (any, any) { return c.Ports, []int{25} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(head + tt.extra))
			if err != nil {
				t.Fatalf("Parse() = %v, want nil error", err)
			}
			if tt.check != nil {
				got, want := tt.check(c)
				if diff := cmp.Diff(want, got, netipOpts); diff != "" {
					t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestDefault(t *testing.T) {
	want := withDefaults(Monitor)
	want.Interfaces = Interfaces{Bridge: "br0"}
	if diff := cmp.Diff(want, Default(), netipOpts); diff != "" {
		t.Errorf("Default() mismatch (-want +got):\n%s", diff)
	}
	// Default has no interfaces, so it is not a valid configuration alone.
	var fe *FieldError
	if err := Default().Validate(); !errors.As(err, &fe) || fe.Key != "interfaces.inside" {
		t.Errorf("Default().Validate() = %v, want a FieldError for interfaces.inside", err)
	}
}

// TestValidate runs Validate on values that Parse never produces (defaults
// fill them in), as the PUT /api/v1/config handler may.
func TestValidate(t *testing.T) {
	valid := func() *Config {
		c := withDefaults(Enforce, Relay{Name: "mail-relay", Address: MustParsePrefix("10.10.0.25/32")})
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		key    string // "" for no error
	}{
		{"valid", func(*Config) {}, ""},
		{"empty mode", func(c *Config) { c.Mode = "" }, "mode"},
		{"empty bridge", func(c *Config) { c.Interfaces.Bridge = "" }, "interfaces.bridge"},
		{"no ports", func(c *Config) { c.Ports = nil }, "ports"},
		{"empty reject_text", func(c *Config) { c.RejectText = "" }, "reject_text"},
		{"reject_text with NUL", func(c *Config) { c.RejectText = "a\x00b" }, "reject_text"},
		{"reject_text with DEL", func(c *Config) { c.RejectText = "a\x7fb" }, "reject_text"},
		{"empty web.listen", func(c *Config) { c.Web.Listen = "" }, "web.listen"},
		{"empty data_dir", func(c *Config) { c.DataDir = "" }, "data_dir"},
		{"proxy port 0", func(c *Config) { c.Proxy.Port = 0 }, "proxy.port"},
		{"max_conns 0", func(c *Config) { c.Proxy.MaxConns = 0 }, "proxy.max_conns"},
		{"max_events 0", func(c *Config) { c.Store.MaxEvents = 0 }, "store.max_events"},
		{"max_mb below the minimum", func(c *Config) { c.Store.MaxMB = 4 }, "store.max_mb"},
		{"max_mb negative", func(c *Config) { c.Store.MaxMB = -1 }, "store.max_mb"},
		{"events_per_source_per_minute huge", func(c *Config) { c.Store.EventsPerSourcePerMinute = 2000000 }, "store.events_per_source_per_minute"},
		{"idle_timeout 0", func(c *Config) { c.Proxy.IdleTimeout = 0 }, "proxy.idle_timeout"},
		{"retention 0", func(c *Config) { c.Store.Retention = 0 }, "store.retention"},
		{"empty log format", func(c *Config) { c.Log.Format = "" }, "log.format"},
		{"empty log level", func(c *Config) { c.Log.Level = "" }, "log.level"},
		{"unset bridge address", func(c *Config) { c.Interfaces.BridgeAddresses = []netip.Prefix{{}} }, "interfaces.bridge_addresses[0]"},
		{"unset gateway", func(c *Config) { c.Interfaces.InsideGateways = []netip.Addr{{}} }, "interfaces.inside_gateways[0]"},
		{"unset relay address", func(c *Config) { c.Relays[0].Address = Prefix{} }, "relays[0].address"},
		{"zoned public address", func(c *Config) { c.Relays[0].PublicAddress = netip.MustParseAddr("fe80::25%br0") }, "relays[0].public_address"},
		{"single-address label", func(c *Config) { c.Inspect.Labels = []Label{{Prefix: MustParsePrefix("10.20.0.1"), Label: "x"}} }, "inspect.labels[0].prefix"},
		{"zoned reputation address", func(c *Config) { c.Reputation.Addresses = addrs("fe80::25%br0") }, "reputation.addresses[0]"},
		{"resolver without port", func(c *Config) {
			c.Reputation.Resolvers = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("10.0.0.53"), 0)}
		}, "reputation.resolvers[0]"},
		{"zoned gateway", func(c *Config) { c.Interfaces.BridgeGateways = addrs("fe80::1%br0") }, "interfaces.bridge_gateways[0]"},
		{"nil relays in monitor", func(c *Config) { c.Mode = Monitor; c.Relays = nil }, ""},
		{"nil relays in enforce", func(c *Config) { c.Relays = nil }, "relays"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(c)
			err := c.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, tt.key)
			}
			if fe.Key != tt.key || fe.Line != 0 {
				t.Errorf("Validate() = FieldError{Key: %q, Line: %d}, want {Key: %q, Line: 0}", fe.Key, fe.Line, tt.key)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || strings.Contains(msg, "line ") || !strings.HasPrefix(msg, tt.key+": ") {
				t.Errorf("Validate() error = %q, want one line starting with %q", msg, tt.key+": ")
			}
		})
	}
}

func TestFieldErrorError(t *testing.T) {
	tests := []struct {
		fe   FieldError
		want string
	}{
		{FieldError{Key: "relays[1].address", Line: 12, Msg: "bad"}, "line 12: relays[1].address: bad"},
		{FieldError{Key: "relays", Msg: "empty"}, "relays: empty"},
	}
	for _, tt := range tests {
		if got := tt.fe.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.fe, got, tt.want)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    netip.Prefix
		wantErr bool
	}{
		{in: "10.10.0.25/32", want: netip.MustParsePrefix("10.10.0.25/32")},
		{in: "10.10.0.25", want: netip.MustParsePrefix("10.10.0.25/32")},
		{in: "2001:db8::25", want: netip.MustParsePrefix("2001:db8::25/128")},
		{in: "2001:db8::25/128", want: netip.MustParsePrefix("2001:db8::25/128")},
		{in: "2001:DB8::/32", want: netip.MustParsePrefix("2001:db8::/32")},
		{in: "10.10.0.25/24", want: netip.MustParsePrefix("10.10.0.0/24")},
		{in: "2001:db8::25/64", want: netip.MustParsePrefix("2001:db8::/64")},
		{in: "0.0.0.0/0", want: netip.MustParsePrefix("0.0.0.0/0")},
		{in: "::/0", want: netip.MustParsePrefix("::/0")},
		{in: "::ffff:10.0.0.1", want: netip.MustParsePrefix("10.0.0.1/32")},
		{in: "::ffff:10.0.0.1/128", want: netip.MustParsePrefix("10.0.0.1/32")},
		{in: "::ffff:10.1.2.3/104", want: netip.MustParsePrefix("10.0.0.0/8")},
		{in: "", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "2001:db8::/129", wantErr: true},
		{in: "10.0.0.256", wantErr: true},
		{in: "10.0.0/24", wantErr: true},
		{in: "10.0.0.1/", wantErr: true},
		{in: "10.0.0.1/-1", wantErr: true},
		{in: " 10.0.0.1", wantErr: true},
		{in: "mail.example.com", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "fe80::1%eth0/64", wantErr: true},
		{in: "10.0.0.1-10.0.0.9", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePrefix(%q) = %v, nil; want an error", tt.in, got)
				}
				if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, `"`+tt.in+`"`) {
					t.Errorf("ParsePrefix(%q) error = %q, want one line quoting the input", tt.in, msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrefix(%q) = %v, want nil error", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got.Net(), netipOpts); diff != "" {
				t.Errorf("ParsePrefix(%q).Net() mismatch (-want +got):\n%s", tt.in, diff)
			}
			// The text round-trips, in canonical address form.
			text, _ := got.MarshalText()
			var back Prefix
			if err := back.UnmarshalText(text); err != nil || back != got {
				t.Errorf("UnmarshalText(MarshalText(%v)) = %v, %v; want %v, nil", got, back, err, got)
			}
			if single := !strings.Contains(tt.in, "/"); got.IsSingle() != single || (single && got.Net().Bits() != got.Net().Addr().BitLen()) {
				t.Errorf("ParsePrefix(%q) = %v, IsSingle() = %t; want %t", tt.in, got, got.IsSingle(), single)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    Duration
		wantErr bool
	}{
		{in: "30s", want: Duration(30 * time.Second)},
		{in: "5m", want: Duration(5 * time.Minute)},
		{in: "2160h", want: Duration(2160 * time.Hour)},
		{in: "1h30m", want: Duration(90 * time.Minute)},
		{in: "soon", wantErr: true},
		{in: "30", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got Duration
			err := got.UnmarshalText([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("UnmarshalText(%q) = %v, nil; want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalText(%q) = %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, got, tt.want)
			}
			text, _ := got.MarshalText()
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back != got {
				t.Errorf("UnmarshalText(MarshalText(%v)) = %v, %v; want %v, nil", got, back, err, got)
			}
			if got.D() != time.Duration(tt.want) {
				t.Errorf("%v.D() = %v, want %v", got, got.D(), time.Duration(tt.want))
			}
		})
	}
}

// TestMarshalRoundTrip checks Parse(Marshal(c)) == c, and the same through
// JSON, as the config API does. Nil and empty lists are the same list.
func TestMarshalRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    *Config
	}{
		{"design example", exampleConfig()},
		{"defaults", withDefaults(Monitor)},
		{"every key set", fullConfig()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.Validate(); err != nil {
				t.Fatalf("test config invalid: %v", err)
			}
			b, err := tt.c.Marshal()
			if err != nil {
				t.Fatalf("Marshal() = %v", err)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(Marshal()) = %v\n%s", err, b)
			}
			if diff := cmp.Diff(tt.c, got, cmpopts.EquateEmpty(), netipOpts); diff != "" {
				t.Errorf("Parse(Marshal()) mismatch (-want +got):\n%s\nYAML:\n%s", diff, b)
			}
			// Marshal is stable: the parsed copy renders the same bytes.
			b2, err := got.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(b), string(b2), netipOpts); diff != "" {
				t.Errorf("Marshal(Parse(Marshal())) mismatch (-want +got):\n%s", diff)
			}

			j, err := json.Marshal(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			got, err = Parse(j)
			if err != nil {
				t.Fatalf("Parse(json.Marshal()) = %v\n%s", err, j)
			}
			if diff := cmp.Diff(tt.c, got, cmpopts.EquateEmpty(), netipOpts); diff != "" {
				t.Errorf("Parse(json.Marshal()) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMarshalDurationsAsStrings(t *testing.T) {
	b, err := exampleConfig().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"idle_timeout: 5m0s\n", "retention: 2160h0m0s\n", "mode: enforce\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Marshal() = %s\nwant it to contain %q", b, want)
		}
	}
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relaygate.yaml")

	// An existing, world-readable file written by hand.
	orig := readExample(t)
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}

	first := fullConfig()
	if err := first.Save(path); err != nil {
		t.Fatalf("Save(%s) = %v", path, err)
	}
	if diff := cmp.Diff([]string{"relaygate.yaml", "relaygate.yaml.prev"}, dirNames(t, dir), netipOpts); diff != "" {
		t.Errorf("directory after Save() mismatch (-want +got):\n%s", diff)
	}
	if got := fileMode(t, path); got != 0o600 {
		t.Errorf("mode of %s = %v, want 0600", path, got)
	}
	if got := fileMode(t, path+".prev"); got&0o077 != 0 {
		t.Errorf("mode of %s.prev = %v, want no group or other access", path, got)
	}
	prev, err := os.ReadFile(path + ".prev")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(orig), string(prev), netipOpts); diff != "" {
		t.Errorf(".prev after first Save() mismatch (-want +got):\n%s", diff)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s) = %v", path, err)
	}
	if diff := cmp.Diff(first, got, cmpopts.EquateEmpty(), netipOpts); diff != "" {
		t.Errorf("Load(Save(c)) mismatch (-want +got):\n%s", diff)
	}

	// Saving again keeps the first save as .prev.
	firstBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	second := exampleConfig()
	if err := second.Save(path); err != nil {
		t.Fatalf("second Save(%s) = %v", path, err)
	}
	prev, err = os.ReadFile(path + ".prev")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(firstBytes), string(prev), netipOpts); diff != "" {
		t.Errorf(".prev after second Save() mismatch (-want +got):\n%s", diff)
	}
	got, err = Load(path)
	if err != nil {
		t.Fatalf("Load(%s) = %v", path, err)
	}
	if diff := cmp.Diff(second, got, cmpopts.EquateEmpty(), netipOpts); diff != "" {
		t.Errorf("Load(Save(c)) mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"relaygate.yaml", "relaygate.yaml.prev"}, dirNames(t, dir), netipOpts); diff != "" {
		t.Errorf("directory after second Save() mismatch (-want +got):\n%s", diff)
	}
}

func TestSaveNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relaygate.yaml")
	c := exampleConfig()
	if err := c.Save(path); err != nil {
		t.Fatalf("Save(%s) = %v", path, err)
	}
	if diff := cmp.Diff([]string{"relaygate.yaml"}, dirNames(t, dir), netipOpts); diff != "" {
		t.Errorf("directory after Save() mismatch (-want +got):\n%s", diff)
	}
	if got := fileMode(t, path); got != 0o600 {
		t.Errorf("mode of %s = %v, want 0600", path, got)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s) = %v", path, err)
	}
	if diff := cmp.Diff(c, got, cmpopts.EquateEmpty(), netipOpts); diff != "" {
		t.Errorf("Load(Save(c)) mismatch (-want +got):\n%s", diff)
	}
}

func TestSaveMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonexistent", "relaygate.yaml")
	err := exampleConfig().Save(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Save(%s) = %v, want an error wrapping fs.ErrNotExist", path, err)
	}
	if err != nil && !strings.Contains(err.Error(), path) {
		t.Errorf("Save(%s) = %q, want it to name the path", path, err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%s) = %v, want an error wrapping fs.ErrNotExist", missing, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(head+"ports: [0]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "ports[0]" {
		t.Fatalf("Load(%s) = %v, want a FieldError for ports[0]", bad, err)
	}
	want := regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `: line 6: ports\[0\]: [^\n]+$`)
	if !want.MatchString(err.Error()) {
		t.Errorf("Load(%s) = %q, want it to match %s", bad, err, want)
	}
}
