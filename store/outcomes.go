package store

import (
	"strings"

	"github.com/relaygate/relaygate/event"
)

// The outcome series are written here and nowhere else: every event that is
// recorded (Record) or held back by a throttle (Tally) is counted once, by
// its kind and client, in the same call. The dashboard's totals, charts and
// top lists and the host cards' counters all read these series, so that two
// numbers that count the same thing cannot disagree.
const (
	// SeriesAttemptsPrefix + kind (e.g. "attempts_blocked"), key: client
	// address. One per event of that kind, held-back ones included.
	SeriesAttemptsPrefix = "attempts_"
	// SeriesRelaySenderMessages counts relayed messages per relay and
	// envelope sender, key: RelaySenderKey(relay, sender).
	SeriesRelaySenderMessages = "relay_sender_messages"
	// SeriesRelayEncrypted counts relayed sessions whose content was
	// encrypted end to end (STARTTLS passthrough, or seen passively after
	// STARTTLS), whose messages cannot be counted, key: relay name.
	SeriesRelayEncrypted = "relay_encrypted_sessions"
	// SeriesRelayBytes counts the octets relays sent through, key: relay name.
	SeriesRelayBytes = "relay_bytes"
)

// AttemptsSeries is the outcome series of kind k, keyed by client address.
func AttemptsSeries(k event.Kind) string { return SeriesAttemptsPrefix + string(k) }

// relaySenderSep separates the relay name and the sender in the keys of
// SeriesRelaySenderMessages: a unit separator appears in neither.
const relaySenderSep = "\x1f"

// RelaySenderKey is the key of SeriesRelaySenderMessages for a relay and an
// envelope sender (lower-cased; the null sender is "<>").
func RelaySenderKey(relay, sender string) string {
	return relay + relaySenderSep + event.SenderKey(sender)
}

// SplitRelaySenderKey splits a key of SeriesRelaySenderMessages.
func SplitRelaySenderKey(key string) (relay, sender string) {
	relay, sender, _ = strings.Cut(key, relaySenderSep)
	return relay, sender
}

// Tally counts e in the outcome series without storing it: for events a
// throttle holds back (a flood of refusals, a relay's retries against a
// limit), which the series must count one by one all the same.
func (s *Store) Tally(e event.Event) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.Normalize()
	s.tally(&e)
}

// tally adds e to the series it counts in. e is normalized.
func (s *Store) tally(e *event.Event) {
	t := e.Time
	if e.Kind == event.Alert || !e.Kind.Valid() {
		return
	}
	client := ""
	if e.Client.IsValid() {
		client = e.Client.String()
	}
	s.AddSeries(AttemptsSeries(e.Kind), client, t, 1)
	switch e.Kind {
	case event.Blocked, event.Refused, event.WouldBlock:
		s.AddSeries(SeriesBlocked, client, t, 1)
	case event.Deferred:
		s.AddSeries(SeriesDeferred, e.Relay, t, 1)
	case event.Relayed:
		if e.Messages > 0 {
			s.AddSeries(SeriesRelayMessages, e.Relay, t, int64(e.Messages))
			s.AddSeries(SeriesSenderMessages, event.SenderKey(e.MailFrom), t, int64(e.Messages))
			s.AddSeries(SeriesRelaySenderMessages, RelaySenderKey(e.Relay, e.MailFrom), t, int64(e.Messages))
		}
		if e.TLS == "passthrough" || e.Encrypted {
			s.AddSeries(SeriesRelayEncrypted, e.Relay, t, 1)
		}
		if e.Bytes > 0 {
			s.AddSeries(SeriesRelayBytes, e.Relay, t, e.Bytes)
		}
	}
}
