package config

import "time"

// DefaultZones are queried when reputation.zones is not set.
var DefaultZones = []string{
	"zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org",
	"psbl.surriel.com", "bl.mailspike.net", "dnsbl-1.uceprotect.net",
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
	DefaultEventsPerSource    = 60 // store.events_per_source_per_minute
	MinStoreMB                = 8  // the smallest store.max_mb
	DefaultBurstFactor        = 10
	DefaultBurstMinMessages   = 30
	DefaultBurstHoldFor       = 15 * time.Minute
	DefaultRingMB             = 8
	DefaultPcapFlowsPerHost   = 5
	DefaultPcapPacketsPerFlow = 200
	DefaultPcapMaxMB          = 256
	DefaultInspectMemoryMB    = 64
	DefaultReputationInterval = time.Hour
	DefaultRelayTestDomain    = "relay-test.example.net"
	DefaultDigestAfter        = 5
	DefaultAlertWindow        = 10 * time.Minute
	DefaultLocateRefresh      = 5 * time.Minute
	DefaultLocateTimeout      = 2 * time.Second
	DefaultSNMPAuthProto      = "SHA-256"
	DefaultSNMPPrivProto      = "AES"
	DefaultExportSpoolMB      = 64   // export.spool_mb, per collector
	DefaultExportRate         = 1000 // export.syslog[].rate, lines per second
	DefaultExportMaxLineBytes = 2048 // export.syslog[].max_line_bytes
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
	if in.MemoryMB == 0 {
		in.MemoryMB = DefaultInspectMemoryMB
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
	if c.Locate.Refresh == 0 {
		c.Locate.Refresh = Duration(DefaultLocateRefresh)
	}
	if c.Locate.Timeout == 0 {
		c.Locate.Timeout = Duration(DefaultLocateTimeout)
	}
	for i := range c.Locate.Switches {
		s := &c.Locate.Switches[i]
		if s.Version != "3" {
			continue
		}
		if s.AuthProto == "" {
			s.AuthProto = DefaultSNMPAuthProto
		}
		if s.PrivProto == "" {
			s.PrivProto = DefaultSNMPPrivProto
		}
	}
	if c.Store.EventsPerSourcePerMinute == 0 {
		c.Store.EventsPerSourcePerMinute = DefaultEventsPerSource
	}
	if c.Export.SpoolMB == 0 {
		c.Export.SpoolMB = DefaultExportSpoolMB
	}
	for i := range c.Export.Syslog {
		x := &c.Export.Syslog[i]
		if x.Name == "" {
			x.Name = x.Address
		}
		if x.Transport == "" {
			x.Transport = "tcp"
		}
		if x.Format == "" {
			x.Format = "rfc5424"
		}
		if x.Facility == "" {
			x.Facility = "local0"
		}
		if x.Rate == 0 {
			x.Rate = DefaultExportRate
		}
		if x.MaxLineBytes == 0 {
			x.MaxLineBytes = DefaultExportMaxLineBytes
		}
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
}
