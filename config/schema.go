// Package config is relaygate's configuration file: a strict YAML schema
// (unknown keys are an error), defaults set in one place, validation that
// names the offending key and its line, and atomic saving.
//
// One job per file: schema.go (the types, whose field names are the keys),
// values.go (typed values that parse once: Duration, Prefix), defaults.go,
// validate.go, yaml.go (strict decoding, line numbers) and file.go (Load,
// Save, Marshal).
package config

import "net/netip"

// Mode is the operating mode of the appliance.
type Mode string

const (
	// Monitor diverts nothing; inspection reports who would be blocked.
	Monitor Mode = "monitor"
	// Enforce diverts port-25 traffic to the proxy; non-relays are refused.
	Enforce Mode = "enforce"
)

// Config is the whole configuration file. Field names are the YAML keys;
// they are a contract that admins and outside test suites script against.
type Config struct {
	// Mode is monitor or enforce.
	Mode       Mode       `yaml:"mode" json:"mode"`
	Interfaces Interfaces `yaml:"interfaces" json:"interfaces"`
	// Relays are the only sources allowed to send SMTP out.
	Relays []Relay `yaml:"relays" json:"relays"`
	// Ports are the TCP destination ports treated as SMTP, e.g. [25].
	Ports []int `yaml:"ports" json:"ports"`
	// RejectText follows "554 5.7.1 " in the refusal dialogue.
	RejectText string `yaml:"reject_text" json:"reject_text"`
	Web        Web    `yaml:"web" json:"web"`
	// DataDir holds the store, tokens and generated keys, e.g. /var/lib/relaygate.
	DataDir string `yaml:"data_dir" json:"data_dir"`
	Proxy   Proxy  `yaml:"proxy" json:"proxy"`
	// Limits bound what relays may send; a limit answers 451 4.7.1.
	Limits  Limits  `yaml:"limits" json:"limits"`
	Inspect Inspect `yaml:"inspect" json:"inspect"`
	// Reputation watches the organisation's public addresses on DNS
	// blocklists, the relays' SPF and whether a relay is an open relay.
	Reputation Reputation `yaml:"reputation" json:"reputation"`
	// Alerts are sent by email, syslog and webhook.
	Alerts Alerts `yaml:"alerts" json:"alerts"`
	Store  Store  `yaml:"store" json:"store"`
	Log    Log    `yaml:"log" json:"log"`
	// Locate asks the LAN's switches, read-only over SNMP, where an
	// offending host is plugged in.
	Locate Locate `yaml:"locate" json:"locate"`
	// Export streams every event and audit entry to syslog collectors.
	Export Export `yaml:"export" json:"export"`
}

// Export streams every recorded event and audit entry to syslog
// collectors (a SIEM), through a bounded on-disk spool per collector.
type Export struct {
	// SpoolMB bounds each collector's spool in data_dir/export/<name>/ in
	// MiB, e.g. 64; when full, the oldest records are dropped and counted.
	SpoolMB int `yaml:"spool_mb" json:"spool_mb"`
	// Syslog are the collectors; empty: nothing is exported.
	Syslog []ExportCollector `yaml:"syslog" json:"syslog"`
}

// ExportCollector is one syslog collector.
type ExportCollector struct {
	// Name names the collector in metrics and its spool directory
	// (letters, digits, '.', '_', '-'), e.g. siem; default: the address.
	Name string `yaml:"name" json:"name"`
	// Address is host:port, e.g. 10.0.0.5:6514.
	Address string `yaml:"address" json:"address"`
	// Transport is udp, tcp (RFC 6587 octet counting) or tls (default tcp).
	Transport string `yaml:"transport" json:"transport"`
	// Format is rfc5424 (structured data) or json (JSON lines); default rfc5424.
	Format string `yaml:"format" json:"format"`
	// CAFile verifies the collector's certificate (tls), e.g.
	// /etc/relaygate/siem-ca.pem; default: the system's roots.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// ServerName is the name the certificate must carry (tls), e.g.
	// siem.corp.example; default: the address's host.
	ServerName string `yaml:"server_name" json:"server_name"`
	// CertFile and KeyFile are an optional client certificate (tls), PEM.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// Facility is the syslog facility, e.g. local0 (default).
	Facility string `yaml:"facility" json:"facility"`
	// Rate bounds the lines sent per second, e.g. 1000; the rest wait in
	// the spool.
	Rate int `yaml:"rate" json:"rate"`
	// MaxLineBytes bounds one line (framing excluded), at least 480, e.g.
	// 2048; longer lines are clipped.
	MaxLineBytes int `yaml:"max_line_bytes" json:"max_line_bytes"`
}

// Locate configures switch-port location of hosts over SNMP.
type Locate struct {
	// Switches are queried read-only; the first that knows the address's
	// MAC (the routing switch) resolves IP to MAC, every switch is asked
	// for the MAC's port. Empty: location is off.
	Switches []Switch `yaml:"switches" json:"switches"`
	// Refresh is the least time between two lookups of the same active
	// host, e.g. 5m.
	Refresh Duration `yaml:"refresh" json:"refresh"`
	// Timeout bounds one SNMP request, e.g. 2s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// Switch is one switch answering SNMP. Secrets (Community, AuthPass,
// PrivPass) are write-only: the API never shows them back.
type Switch struct {
	// Name is how the admin knows the switch, e.g. access-2.
	Name string `yaml:"name" json:"name"`
	// Address is host or host:port (default port 161), e.g. 10.0.0.2.
	Address string `yaml:"address" json:"address"`
	// Version is 2c or 3.
	Version string `yaml:"version" json:"version"`
	// Community is the v2c read community, e.g. public.
	Community string `yaml:"community" json:"community,omitempty"`
	// User is the v3 user name (authPriv only).
	User string `yaml:"user" json:"user,omitempty"`
	// AuthProto is SHA, SHA-224, SHA-256, SHA-384 or SHA-512 (default SHA-256).
	AuthProto string `yaml:"auth_proto" json:"auth_proto,omitempty"`
	// AuthPass is the v3 authentication passphrase.
	AuthPass string `yaml:"auth_pass" json:"auth_pass,omitempty"`
	// PrivProto is AES, AES-192, AES-256 (Blumenthal key extension, net-snmp)
	// or AES-192-C, AES-256-C (Reeder key extension, Cisco) (default AES).
	PrivProto string `yaml:"priv_proto" json:"priv_proto,omitempty"`
	// PrivPass is the v3 privacy passphrase.
	PrivPass string `yaml:"priv_pass" json:"priv_pass,omitempty"`
	// Context is the v3 context name, e.g. vlan-20 on Cisco; empty by default.
	Context string `yaml:"context" json:"context,omitempty"`
	// VLANs are asked one by one on switches with a per-VLAN forwarding
	// table (Cisco: community@vlan, v3 context vlan-N), e.g. [10, 20].
	VLANs []int `yaml:"vlans" json:"vlans,omitempty"`
}

// Limits bound relays' mail. Zero means unlimited.
type Limits struct {
	// RelayMessagesPerMinute caps messages per relay per minute, e.g. 600.
	RelayMessagesPerMinute int `yaml:"relay_messages_per_minute" json:"relay_messages_per_minute"`
	// SenderMessagesPerMinute caps messages per envelope sender per minute, e.g. 60.
	SenderMessagesPerMinute int `yaml:"sender_messages_per_minute" json:"sender_messages_per_minute"`
	// DomainMessagesPerMinute caps messages per recipient domain per minute,
	// e.g. {docomo.ne.jp: 30}.
	DomainMessagesPerMinute map[string]int `yaml:"domain_messages_per_minute" json:"domain_messages_per_minute"`
	// RecipientsPerMessage caps RCPT TO per message, e.g. 100.
	RecipientsPerMessage int `yaml:"recipients_per_message" json:"recipients_per_message"`
	// RelaySessions caps concurrent sessions per relay, e.g. 50.
	RelaySessions int `yaml:"relay_sessions" json:"relay_sessions"`
	// RelaySessionsPerMinute caps new sessions per relay per minute (the
	// connection-level limit that also covers TLS passthrough), e.g. 300.
	RelaySessionsPerMinute int `yaml:"relay_sessions_per_minute" json:"relay_sessions_per_minute"`
	// RemoteMXPerMinute caps distinct destination addresses per relay per
	// minute (fan-out), e.g. 200.
	RemoteMXPerMinute int   `yaml:"remote_mx_per_minute" json:"remote_mx_per_minute"`
	Burst             Burst `yaml:"burst" json:"burst"`
}

// Burst configures the detector for an envelope sender that suddenly sends
// far above its own recent baseline (a stolen account).
type Burst struct {
	// Factor: alert when a sender's last minute exceeds Factor times its
	// baseline, e.g. 10. Zero turns the detector off.
	Factor float64 `yaml:"factor" json:"factor"`
	// MinMessages: and at least this many messages in that minute, e.g. 30.
	MinMessages int `yaml:"min_messages" json:"min_messages"`
	// Hold defers (451 4.7.1) that sender alone while it bursts.
	Hold bool `yaml:"hold" json:"hold"`
	// HoldFor is how long a held sender stays held, e.g. 15m.
	HoldFor Duration `yaml:"hold_for" json:"hold_for"`
}

// Inspect configures passive inspection of SMTP on the bridge ports.
type Inspect struct {
	// Enabled turns capture on (default true).
	Enabled *bool `yaml:"enabled" json:"enabled"`
	// RingMB is the capture ring size per port in MiB, e.g. 8.
	RingMB int `yaml:"ring_mb" json:"ring_mb"`
	// PcapFlowsPerHost: evidence keeps the first M flows of each offending host, e.g. 5.
	PcapFlowsPerHost int `yaml:"pcap_flows_per_host" json:"pcap_flows_per_host"`
	// PcapPacketsPerFlow: and the first K packets of each, e.g. 200.
	PcapPacketsPerFlow int `yaml:"pcap_packets_per_flow" json:"pcap_packets_per_flow"`
	// PcapMaxMB bounds the disk used by all evidence, e.g. 256.
	PcapMaxMB int `yaml:"pcap_max_mb" json:"pcap_max_mb"`
	// MemoryMB bounds the memory all tracked flows hold together
	// (reassembly, line buffers, DATA hold, envelopes) in MiB, e.g. 64;
	// beyond it flows are shed, those of the source holding the most first.
	MemoryMB int `yaml:"memory_mb" json:"memory_mb"`
	// ReverseDNS looks up hosts' names with the system resolver (default true).
	ReverseDNS *bool `yaml:"reverse_dns" json:"reverse_dns"`
	// Labels name subnets, e.g. [{prefix: 10.20.0.0/16, label: Koror office}].
	Labels []Label `yaml:"labels" json:"labels"`
}

// Label names a subnet for the admin.
type Label struct {
	// Prefix is an IPv4 or IPv6 prefix, e.g. 10.20.0.0/16.
	Prefix Prefix `yaml:"prefix" json:"prefix"`
	// Label is shown beside hosts in it, e.g. "Koror office".
	Label string `yaml:"label" json:"label"`
}

// On reports whether inspection is enabled.
func (i Inspect) On() bool { return i.Enabled == nil || *i.Enabled }

// ReverseDNSOn reports whether reverse DNS lookups are enabled.
func (i Inspect) ReverseDNSOn() bool { return i.ReverseDNS == nil || *i.ReverseDNS }

// Interfaces names the links the appliance uses and its own addressing on
// the bridge.
type Interfaces struct {
	// Bridge is the kernel bridge to create or adopt, e.g. br0.
	Bridge string `yaml:"bridge" json:"bridge"`
	// Inside is the port toward the L3 switch, e.g. eth1.
	Inside string `yaml:"inside" json:"inside"`
	// Outside is the port toward the router, e.g. eth2.
	Outside string `yaml:"outside" json:"outside"`
	// Management is the only interface the UI and API listen on, e.g. eth0.
	Management string `yaml:"management" json:"management"`
	// BridgeAddresses are the box's own addresses on the bridge, e.g.
	// [10.0.255.3/29, "2001:db8:ff::3/64"]; needed for onward connections.
	BridgeAddresses []netip.Prefix `yaml:"bridge_addresses" json:"bridge_addresses"`
	// BridgeGateways are the next hops toward the internet (the router),
	// e.g. [10.0.255.1, "2001:db8:ff::1"].
	BridgeGateways []netip.Addr `yaml:"bridge_gateways" json:"bridge_gateways"`
	// InsideGateways are the next hops toward the LAN (the L3 switch), e.g.
	// [10.0.255.2, "2001:db8:ff::2"]. The proxy's answers to LAN clients are
	// routed through them; leave empty when clients share the bridge's subnet.
	InsideGateways []netip.Addr `yaml:"inside_gateways" json:"inside_gateways"`
	// BridgeMAC pins the bridge's MAC address, e.g. 02:52:47:00:00:01.
	// Default: derived from the inside port's MAC.
	BridgeMAC string `yaml:"bridge_mac" json:"bridge_mac"`
	// BridgeAcceptRA lets the bridge take IPv6 router advertisements
	// (SLAAC addresses, a default route) from the wire, e.g. true. Default
	// false: the box's addressing on the bridge is BridgeAddresses and
	// BridgeGateways, and a LAN host must not be able to add to it.
	BridgeAcceptRA bool `yaml:"bridge_accept_ra" json:"bridge_accept_ra"`
}

// Relay is an approved mail relay.
type Relay struct {
	// Name labels the relay in events and the UI, e.g. mail-relay.
	Name string `yaml:"name" json:"name"`
	// Address is an IPv4 or IPv6 prefix (or a single address), e.g. 10.10.0.25/32.
	Address Prefix `yaml:"address" json:"address"`
	// TLS is the STARTTLS policy: passthrough (default: encrypted bytes are
	// spliced end to end) or inspect (the box terminates TLS with its own CA).
	TLS string `yaml:"tls" json:"tls"`
	// PublicAddress is the address the internet sees this relay's mail
	// from (after NAT), e.g. 198.51.100.25; with Domain, SPF is checked.
	PublicAddress netip.Addr `yaml:"public_address" json:"public_address"`
	// Domain is the relay's sending domain, e.g. corp.example.
	Domain string `yaml:"domain" json:"domain"`
}

// Reputation configures the reputation watch.
type Reputation struct {
	// Addresses are the organisation's public sending addresses, IPv4 and
	// IPv6, e.g. [198.51.100.25, "2001:db8::25"].
	Addresses []netip.Addr `yaml:"addresses" json:"addresses"`
	// Zones are the DNS blocklist zones to query, e.g. [zen.spamhaus.org];
	// default: a set of current, widely used lists (see DefaultZones).
	Zones []string `yaml:"zones" json:"zones"`
	// Resolvers are DNS resolvers as ip:port, e.g. ["10.0.0.53:53"];
	// default: the system's resolvers. Lists such as Spamhaus refuse
	// queries from large public resolvers.
	Resolvers []netip.AddrPort `yaml:"resolvers" json:"resolvers"`
	// Interval is how often the lists are queried, e.g. 1h.
	Interval Duration `yaml:"interval" json:"interval"`
	// RelayTestDomain is the third-party domain the open-relay self-test
	// tries to relay to (no mail is ever sent), e.g. relay-test.example.net.
	RelayTestDomain string `yaml:"relay_test_domain" json:"relay_test_domain"`
}

// Alerts configures where alerts go. Each channel is off while unset.
type Alerts struct {
	Email   EmailAlert   `yaml:"email" json:"email"`
	Syslog  SyslogAlert  `yaml:"syslog" json:"syslog"`
	Webhook WebhookAlert `yaml:"webhook" json:"webhook"`
	// DigestAfter: more than this many alerts within Window are sent as one
	// digest at the end of the window, e.g. 5.
	DigestAfter int `yaml:"digest_after" json:"digest_after"`
	// Window is the digest window, e.g. 10m.
	Window Duration `yaml:"window" json:"window"`
}

// EmailAlert sends alerts through a mail relay.
type EmailAlert struct {
	// To are the recipients, e.g. [noc@corp.example].
	To []string `yaml:"to" json:"to"`
	// From is the sender, e.g. relaygate@corp.example.
	From string `yaml:"from" json:"from"`
	// Relay is the SMTP server as host:port, e.g. 10.10.0.25:25.
	Relay string `yaml:"relay" json:"relay"`
}

// SyslogAlert sends RFC 5424 messages.
type SyslogAlert struct {
	// Address is host:port, e.g. 10.0.0.5:514.
	Address string `yaml:"address" json:"address"`
	// Transport is udp, tcp or tls (default udp).
	Transport string `yaml:"transport" json:"transport"`
}

// WebhookAlert posts JSON.
type WebhookAlert struct {
	// URL is an http or https URL, e.g. https://chat.corp.example/hooks/relaygate.
	URL string `yaml:"url" json:"url"`
}

// TLS policies of a relay.
const (
	TLSPassthrough = "passthrough"
	TLSInspect     = "inspect"
)

// Web configures the management UI and API.
type Web struct {
	// Listen is the address:port to serve HTTPS on, e.g. "0.0.0.0:8443".
	// The socket is bound to the management interface as well.
	Listen string `yaml:"listen" json:"listen"`
	// TLSCert and TLSKey are PEM files; default: generated in data_dir.
	TLSCert string `yaml:"tls_cert" json:"tls_cert"`
	TLSKey  string `yaml:"tls_key" json:"tls_key"`
}

// Proxy tunes the transparent SMTP proxy.
type Proxy struct {
	// Port is the local TPROXY listener port, e.g. 10025.
	Port int `yaml:"port" json:"port"`
	// MaxConnsPerSource caps concurrent connections from one non-relay
	// source, so that a bot cannot starve the relays, e.g. 4.
	MaxConnsPerSource int `yaml:"max_conns_per_source" json:"max_conns_per_source"`
	// MaxConns caps all concurrent proxied connections, e.g. 4096. Relays
	// are always admitted while below it.
	MaxConns int `yaml:"max_conns" json:"max_conns"`
	// IdleTimeout closes a connection with no traffic in either direction, e.g. 5m.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// RefusalTimeout bounds a whole refusal dialogue, e.g. 60s.
	RefusalTimeout Duration `yaml:"refusal_timeout" json:"refusal_timeout"`
	// ConnectTimeout bounds the onward connection to the original destination, e.g. 30s.
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// MaxRecipients bounds how many RCPT TO a refused session records, e.g. 100.
	MaxRecipients int `yaml:"max_recipients" json:"max_recipients"`
	// NewConnsPerSource sheds connection floods in the kernel: new SMTP
	// connections per second (burst twice that) from one non-relay source
	// (an IPv4 address, an IPv6 /64) above it are dropped before they reach
	// the proxy, in enforce mode, e.g. 20. Negative turns it off.
	NewConnsPerSource int `yaml:"new_conns_per_source" json:"new_conns_per_source"`
}

// Store configures event retention.
type Store struct {
	// Retention deletes events older than this, e.g. 2160h (90 days).
	Retention Duration `yaml:"retention" json:"retention"`
	// MaxEvents keeps at most this many events (oldest deleted first), e.g. 1000000.
	MaxEvents int `yaml:"max_events" json:"max_events"`
	// MaxMB is the byte quota of the stored events in MiB, e.g. 1024: above
	// it the biggest producers lose their oldest events first, each host
	// keeping its first and latest. 0 means 40% of the data partition, at
	// most 1024.
	MaxMB int `yaml:"max_mb" json:"max_mb"`
	// EventsPerSourcePerMinute is how many events one non-relay source (an
	// IPv4 address, an IPv6 /64) may store per minute, e.g. 60; the others
	// are counted in the series but not stored. Negative: no budget.
	EventsPerSourcePerMinute int `yaml:"events_per_source_per_minute" json:"events_per_source_per_minute"`
}

// Log configures the daemon's log output.
type Log struct {
	// Format is text or json.
	Format string `yaml:"format" json:"format"`
	// Level is debug, info, warn or error.
	Level string `yaml:"level" json:"level"`
}
