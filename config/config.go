// Package config is relaygate's configuration file: a strict YAML schema
// (unknown keys are an error), defaults set in one place, validation that
// names the offending key and its line, and atomic saving.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

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
	// ReverseDNS looks up hosts' names with the system resolver (default true).
	ReverseDNS *bool `yaml:"reverse_dns" json:"reverse_dns"`
	// Labels name subnets, e.g. [{prefix: 10.20.0.0/16, label: Koror office}].
	Labels []Label `yaml:"labels" json:"labels"`
}

// Label names a subnet for the admin.
type Label struct {
	// Prefix is an IPv4 or IPv6 prefix, e.g. 10.20.0.0/16.
	Prefix string `yaml:"prefix" json:"prefix"`
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
	BridgeAddresses []string `yaml:"bridge_addresses" json:"bridge_addresses"`
	// BridgeGateways are the next hops toward the internet (the router),
	// e.g. [10.0.255.1, "2001:db8:ff::1"].
	BridgeGateways []string `yaml:"bridge_gateways" json:"bridge_gateways"`
	// InsideGateways are the next hops toward the LAN (the L3 switch), e.g.
	// [10.0.255.2, "2001:db8:ff::2"]. The proxy's answers to LAN clients are
	// routed through them; leave empty when clients share the bridge's subnet.
	InsideGateways []string `yaml:"inside_gateways" json:"inside_gateways"`
	// BridgeMAC pins the bridge's MAC address, e.g. 02:52:47:00:00:01.
	// Default: derived from the inside port's MAC.
	BridgeMAC string `yaml:"bridge_mac" json:"bridge_mac"`
}

// Relay is an approved mail relay.
type Relay struct {
	// Name labels the relay in events and the UI, e.g. mail-relay.
	Name string `yaml:"name" json:"name"`
	// Address is an IPv4 or IPv6 prefix (or a single address), e.g. 10.10.0.25/32.
	Address string `yaml:"address" json:"address"`
	// TLS is the STARTTLS policy: passthrough (default: encrypted bytes are
	// spliced end to end) or inspect (the box terminates TLS with its own CA).
	TLS string `yaml:"tls" json:"tls"`
	// PublicAddress is the address the internet sees this relay's mail
	// from (after NAT), e.g. 198.51.100.25; with Domain, SPF is checked.
	PublicAddress string `yaml:"public_address" json:"public_address"`
	// Domain is the relay's sending domain, e.g. corp.example.
	Domain string `yaml:"domain" json:"domain"`
}

// Reputation configures the reputation watch.
type Reputation struct {
	// Addresses are the organisation's public sending addresses, IPv4 and
	// IPv6, e.g. [198.51.100.25, "2001:db8::25"].
	Addresses []string `yaml:"addresses" json:"addresses"`
	// Zones are the DNS blocklist zones to query, e.g. [zen.spamhaus.org];
	// default: a set of current, widely used lists (see DefaultZones).
	Zones []string `yaml:"zones" json:"zones"`
	// Resolvers are DNS resolvers as ip:port, e.g. ["10.0.0.53:53"];
	// default: the system's resolvers. Lists such as Spamhaus refuse
	// queries from large public resolvers.
	Resolvers []string `yaml:"resolvers" json:"resolvers"`
	// Interval is how often the lists are queried, e.g. 1h.
	Interval Duration `yaml:"interval" json:"interval"`
	// RelayTestDomain is the third-party domain the open-relay self-test
	// tries to relay to (no mail is ever sent), e.g. relay-test.example.net.
	RelayTestDomain string `yaml:"relay_test_domain" json:"relay_test_domain"`
}

// DefaultZones are queried when reputation.zones is not set.
var DefaultZones = []string{
	"zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org",
	"psbl.surriel.com", "bl.mailspike.net", "dnsbl-1.uceprotect.net",
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
}

// Log configures the daemon's log output.
type Log struct {
	// Format is text or json.
	Format string `yaml:"format" json:"format"`
	// Level is debug, info, warn or error.
	Level string `yaml:"level" json:"level"`
}

// Duration is a time.Duration written as "30s", "5m", "2160h".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (e.g. 30s, 5m, 720h): %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return d.UnmarshalText([]byte(n.Value))
}

// Default values, in one place.
const (
	DefaultPort               = 25
	DefaultRejectText         = "Direct SMTP from this host is not permitted. Send mail through the company mail server."
	DefaultListen             = "0.0.0.0:8443"
	DefaultDataDir            = "/var/lib/relaygate"
	DefaultProxyPort          = 10025
	DefaultMaxConnsPerSource  = 4
	DefaultMaxConns           = 4096
	DefaultIdleTimeout        = 5 * time.Minute
	DefaultRefusalTimeout     = 60 * time.Second
	DefaultConnectTimeout     = 30 * time.Second
	DefaultMaxRecipients      = 100
	DefaultNewConnsPerSource  = 20
	DefaultRetention          = 90 * 24 * time.Hour
	DefaultMaxEvents          = 1_000_000
	DefaultBurstFactor        = 10
	DefaultBurstMinMessages   = 30
	DefaultBurstHoldFor       = 15 * time.Minute
	DefaultRingMB             = 8
	DefaultPcapFlowsPerHost   = 5
	DefaultPcapPacketsPerFlow = 200
	DefaultPcapMaxMB          = 256
	DefaultReputationInterval = time.Hour
	DefaultRelayTestDomain    = "relay-test.example.net"
	DefaultDigestAfter        = 5
	DefaultAlertWindow        = 10 * time.Minute
)

// Default returns a configuration with every default set and no interfaces
// or relays.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Mode == "" {
		c.Mode = Monitor
	}
	if c.Interfaces.Bridge == "" {
		c.Interfaces.Bridge = "br0"
	}
	if len(c.Ports) == 0 {
		c.Ports = []int{DefaultPort}
	}
	if c.RejectText == "" {
		c.RejectText = DefaultRejectText
	}
	if c.Web.Listen == "" {
		c.Web.Listen = DefaultListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	p := &c.Proxy
	if p.Port == 0 {
		p.Port = DefaultProxyPort
	}
	if p.MaxConnsPerSource == 0 {
		p.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if p.MaxConns == 0 {
		p.MaxConns = DefaultMaxConns
	}
	if p.IdleTimeout == 0 {
		p.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if p.RefusalTimeout == 0 {
		p.RefusalTimeout = Duration(DefaultRefusalTimeout)
	}
	if p.ConnectTimeout == 0 {
		p.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	if p.MaxRecipients == 0 {
		p.MaxRecipients = DefaultMaxRecipients
	}
	if p.NewConnsPerSource == 0 {
		p.NewConnsPerSource = DefaultNewConnsPerSource
	}
	for i := range c.Relays {
		if c.Relays[i].TLS == "" {
			c.Relays[i].TLS = TLSPassthrough
		}
	}
	b := &c.Limits.Burst
	if b.Factor == 0 {
		b.Factor = DefaultBurstFactor
	}
	if b.MinMessages == 0 {
		b.MinMessages = DefaultBurstMinMessages
	}
	if b.HoldFor == 0 {
		b.HoldFor = Duration(DefaultBurstHoldFor)
	}
	in := &c.Inspect
	if in.RingMB == 0 {
		in.RingMB = DefaultRingMB
	}
	if in.PcapFlowsPerHost == 0 {
		in.PcapFlowsPerHost = DefaultPcapFlowsPerHost
	}
	if in.PcapPacketsPerFlow == 0 {
		in.PcapPacketsPerFlow = DefaultPcapPacketsPerFlow
	}
	if in.PcapMaxMB == 0 {
		in.PcapMaxMB = DefaultPcapMaxMB
	}
	r := &c.Reputation
	if len(r.Zones) == 0 {
		r.Zones = append([]string(nil), DefaultZones...)
	}
	if r.Interval == 0 {
		r.Interval = Duration(DefaultReputationInterval)
	}
	if r.RelayTestDomain == "" {
		r.RelayTestDomain = DefaultRelayTestDomain
	}
	if c.Alerts.Syslog.Address != "" && c.Alerts.Syslog.Transport == "" {
		c.Alerts.Syslog.Transport = "udp"
	}
	if c.Alerts.DigestAfter == 0 {
		c.Alerts.DigestAfter = DefaultDigestAfter
	}
	if c.Alerts.Window == 0 {
		c.Alerts.Window = Duration(DefaultAlertWindow)
	}
	if c.Store.Retention == 0 {
		c.Store.Retention = Duration(DefaultRetention)
	}
	if c.Store.MaxEvents == 0 {
		c.Store.MaxEvents = DefaultMaxEvents
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
}

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
	for i, s := range c.Interfaces.BridgeAddresses {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return fe(fmt.Sprintf("interfaces.bridge_addresses[%d]", i), "invalid address/prefix %q (e.g. 10.0.255.3/29)", s)
		}
	}
	for _, k := range []struct {
		key  string
		list []string
	}{{"interfaces.bridge_gateways", c.Interfaces.BridgeGateways}, {"interfaces.inside_gateways", c.Interfaces.InsideGateways}} {
		fams := map[bool]bool{}
		for i, s := range k.list {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return fe(fmt.Sprintf("%s[%d]", k.key, i), "invalid address %q (e.g. 10.0.255.1)", s)
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
		if _, err := ParseRelayPrefix(r.Address); err != nil {
			return fe(key+".address", "%v", err)
		}
		switch r.TLS {
		case "", TLSPassthrough, TLSInspect:
		default:
			return fe(key+".tls", "unknown TLS policy %q (want passthrough or inspect)", r.TLS)
		}
		if r.PublicAddress != "" {
			if a, err := netip.ParseAddr(r.PublicAddress); err != nil || a.Zone() != "" {
				return fe(key+".public_address", "invalid address %q (e.g. 198.51.100.25)", r.PublicAddress)
			}
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
	if err := c.validateInspect(); err != nil {
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

// ParseRelayPrefix parses a relay address: a prefix, or a single address
// taken as /32 or /128. The prefix is masked; IPv4-mapped forms are unmapped.
func ParseRelayPrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Zone() == "" {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("invalid CIDR %q (e.g. 10.10.0.25/32 or 2001:db8::25/128)", s)
}

// RelayPrefixes returns the parsed relay prefixes, in order. Call after Validate.
func (c *Config) RelayPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.Relays))
	for _, r := range c.Relays {
		if p, err := ParseRelayPrefix(r.Address); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// BridgePrefixes returns the parsed bridge addresses. Call after Validate.
func (i *Interfaces) BridgePrefixes() []netip.Prefix { return parsePrefixes(i.BridgeAddresses) }

// Gateways returns the parsed bridge gateways. Call after Validate.
func (i *Interfaces) Gateways() []netip.Addr { return parseAddrs(i.BridgeGateways) }

// LANGateways returns the parsed inside gateways. Call after Validate.
func (i *Interfaces) LANGateways() []netip.Addr { return parseAddrs(i.InsideGateways) }

func parsePrefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parseAddrs(ss []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
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

// Parse reads a configuration from YAML (JSON is YAML too), rejects unknown
// keys, sets defaults and validates. Errors are one line and name the key
// and, where known, the line.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, oneLine(err)
	}
	if len(root.Content) == 0 {
		return nil, errors.New("config is empty")
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: config must be a mapping of keys", doc.Line)
	}
	if err := checkKnown(doc, reflect.TypeOf(Config{}), "", doc.Line); err != nil {
		return nil, err
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, oneLine(err)
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Line = lineOf(doc, fe.Key)
		}
		return nil, err
	}
	return &c, nil
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Marshal renders the configuration as YAML.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// Save writes the configuration atomically (temporary file in the same
// directory, fsync, rename); the previous file, if any, is kept as path+".prev".
func (c *Config) Save(path string) error {
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data, true)
}

// WriteFileAtomic replaces path with data so that a crash leaves either the
// old or the new content. With keepPrev, the old file is kept as path+".prev".
func WriteFileAtomic(path string, data []byte, keepPrev bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if keepPrev {
		if old, err := os.ReadFile(path); err == nil {
			if err := os.WriteFile(path+".prev", old, 0o600); err != nil {
				return fmt.Errorf("save %s.prev: %w", path, err)
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`\s*\n\s*`)

// oneLine flattens yaml's multi-line errors.
func oneLine(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimSpace(strings.TrimPrefix(msg, "unmarshal errors:"))
	msg = yamlLineRE.ReplaceAllString(msg, "; ")
	return errors.New(msg)
}

// checkKnown walks the YAML mapping against the struct's yaml tags and
// reports the first unknown key, or value of the wrong type, with its full
// name and line (yaml's own decoding errors name only the line).
func checkKnown(n *yaml.Node, t reflect.Type, prefix string, line int) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return nil
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				return &FieldError{Key: key, Line: k.Line, Msg: "unknown key"}
			}
			if err := checkKnown(v, ft, key, k.Line); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice {
			for i, v := range n.Content {
				if err := checkKnown(v, t.Elem(), fmt.Sprintf("%s[%d]", prefix, i), v.Line); err != nil {
					return err
				}
			}
		}
	}
	if prefix == "" {
		return nil
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		return &FieldError{Key: prefix, Line: line, Msg: decodeMsg(err)}
	}
	return nil
}

var yamlLinePrefixRE = regexp.MustCompile(`^line \d+: `)

// decodeMsg is the first message of a decoding error, without yaml's line
// prefix (FieldError adds the line).
func decodeMsg(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return yamlLinePrefixRE.ReplaceAllString(te.Errors[0], "")
	}
	return yamlLinePrefixRE.ReplaceAllString(oneLine(err).Error(), "")
}

var keyPartRE = regexp.MustCompile(`^([a-z_]+)(?:\[(\d+)\])?$`)

// lineOf finds the line of a key such as "relays[1].address" in the document,
// or of the nearest ancestor present; 0 when nothing matches.
func lineOf(doc *yaml.Node, key string) int {
	n, line := doc, 0
	for _, part := range strings.Split(key, ".") {
		m := keyPartRE.FindStringSubmatch(part)
		if m == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == m[1] {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		if m[2] != "" {
			var idx int
			fmt.Sscanf(m[2], "%d", &idx)
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	if n.Kind == yaml.ScalarNode || line == 0 {
		line = n.Line
	}
	return line
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
	} {
		if v.n < 1 {
			return &FieldError{Key: v.key, Msg: fmt.Sprintf("must be at least 1, got %d", v.n)}
		}
	}
	if in.RingMB > 1024 {
		return &FieldError{Key: "inspect.ring_mb", Msg: fmt.Sprintf("at most 1024, got %d", in.RingMB)}
	}
	for i, l := range in.Labels {
		key := fmt.Sprintf("inspect.labels[%d]", i)
		if _, err := netip.ParsePrefix(l.Prefix); err != nil {
			return &FieldError{Key: key + ".prefix", Msg: fmt.Sprintf("invalid prefix %q (e.g. 10.20.0.0/16)", l.Prefix)}
		}
		if strings.TrimSpace(l.Label) == "" || len(l.Label) > 100 || strings.ContainsAny(l.Label, "\r\n") {
			return &FieldError{Key: key + ".label", Msg: "must be one non-empty line of at most 100 characters"}
		}
	}
	return nil
}

func (c *Config) validateReputation() error {
	r := c.Reputation
	for i, s := range r.Addresses {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			return &FieldError{Key: fmt.Sprintf("reputation.addresses[%d]", i), Msg: fmt.Sprintf("invalid address %q (e.g. 198.51.100.25)", s)}
		}
	}
	for i, z := range r.Zones {
		if !domainRE.MatchString(z) {
			return &FieldError{Key: fmt.Sprintf("reputation.zones[%d]", i), Msg: fmt.Sprintf("invalid zone %q (e.g. zen.spamhaus.org)", z)}
		}
	}
	for i, s := range r.Resolvers {
		if ap, err := netip.ParseAddrPort(s); err != nil || ap.Port() == 0 {
			return &FieldError{Key: fmt.Sprintf("reputation.resolvers[%d]", i), Msg: fmt.Sprintf("invalid resolver %q (want ip:port, e.g. 10.0.0.53:53)", s)}
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
