// Package event defines what relaygate records: one typed event per SMTP
// attempt, decision or failure, as stored in the store and served by the API.
package event

import (
	"net/netip"
	"strings"
	"time"
)

// Kind says what happened. The names are part of the API contract.
type Kind string

// Event kinds. Extend, never rename.
const (
	// Blocked: a non-relay source tried SMTP and got the refusal dialogue.
	Blocked Kind = "blocked"
	// WouldBlock: monitor mode saw a non-relay source speak SMTP.
	WouldBlock Kind = "would_block"
	// Relayed: a relay's session went onward to its original destination.
	Relayed Kind = "relayed"
	// Deferred: a limit answered 4xx; the client keeps the mail and retries.
	Deferred Kind = "deferred"
	// UpstreamError: the original destination could not be reached or failed.
	UpstreamError Kind = "upstream_error"
	// Refused: a non-relay source was over its connection cap and was closed
	// without a dialogue.
	Refused Kind = "refused"
	// Alert: something the admin must look at (a sender bursting far above
	// its baseline, a blocklist listing).
	Alert Kind = "alert"
)

// Kinds lists every known kind, for validating filters.
var Kinds = []Kind{Blocked, WouldBlock, Relayed, Deferred, UpstreamError, Refused, Alert}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// Event is one recorded fact. Client and Server are plain addresses: never
// with a port, IPv4 never in ::ffff: mapped form (see Normalize).
type Event struct {
	ID         int64      `json:"id"`
	Time       time.Time  `json:"time"`
	Kind       Kind       `json:"kind"`
	Client     netip.Addr `json:"client"`
	Server     netip.Addr `json:"server"`
	ServerPort uint16     `json:"server_port,omitempty"`
	Relay      string     `json:"relay,omitempty"` // name of the matching relay, if any
	Helo       string     `json:"helo"`
	MailFrom   string     `json:"mail_from"`
	Rcpt       []string   `json:"rcpt"`
	// RcptDropped counts the recipients the client gave beyond those kept
	// in Rcpt (see MaxRcpt, MaxBytes and proxy.max_recipients).
	RcptDropped int    `json:"rcpt_dropped,omitempty"`
	Code        int    `json:"code"`
	Detail      string `json:"detail"`
	// Bytes counts the octets the client sent through (relayed sessions).
	Bytes int64 `json:"bytes,omitempty"`
	// Messages counts the messages of the session or flow (accepted by the
	// remote side for relayed, attempted for blocked and would_block).
	Messages int `json:"messages,omitempty"`
	// Size is the size of the message in octets, where one message is meant.
	Size int64 `json:"size,omitempty"`
	// Reply is the remote side's final reply, e.g. "250 2.0.0 Ok: queued as 4XyZ".
	Reply string `json:"reply,omitempty"`
	// TLS says how the session was protected: "" (plain), "passthrough"
	// (client and remote spoke TLS end to end through the box) or
	// "inspect" (two TLS legs, terminated by the box).
	TLS string `json:"tls,omitempty"`
	// Encrypted marks a passively seen flow that switched to TLS.
	Encrypted bool `json:"encrypted,omitempty"`
}

// SenderKey is how an envelope sender is counted and limited:
// case-insensitively, the null sender as "<>".
func SenderKey(from string) string {
	if from == "" {
		return "<>"
	}
	return strings.ToLower(from)
}

// Normalize unmaps IPv4-mapped IPv6 addresses, drops zones, sets a nil Rcpt
// to an empty list and the time to UTC, so that every consumer sees one form.
func (e *Event) Normalize() {
	e.Client = e.Client.Unmap().WithZone("")
	e.Server = e.Server.Unmap().WithZone("")
	if e.Rcpt == nil {
		e.Rcpt = []string{}
	}
	e.Time = e.Time.UTC()
}

// Recorder accepts events. Implementations must not block the data path for
// long; the store batches writes.
type Recorder interface {
	Record(Event)
}

// Tallier counts an event without storing it. A producer that holds back
// repeated events (a flood of refusals, a relay's retries against a limit)
// hands the held-back ones to Tally, so that the per-minute counts still
// count every attempt. A Recorder that also counts what it records
// implements it (the store does).
type Tallier interface {
	Tally(Event)
}
