package smtpproxy

import (
	"strings"
	"time"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/ratelimit"
)

// Series metric names, as package store defines them (checked by a test),
// so that this package does not depend on the store.
// The store counts relayed messages per relay and sender and deferrals
// from the events themselves; only the recipient domains of accepted
// messages (all of them, not only the recipients an event keeps) are
// added here.
const (
	seriesDomainMessages = "domain_messages"
)

// Series receives per-minute counts; *store.Store satisfies it. It must
// not block.
type Series interface {
	AddSeries(metric, key string, t time.Time, delta int64)
}

// MailLimits bound what relays send; zero fields are unlimited. They are
// the `limits:` section of the configuration (see MailLimitsFromConfig).
type MailLimits struct {
	RelayMessagesPerMinute  int
	SenderMessagesPerMinute int
	// DomainMessagesPerMinute maps a lower-case recipient domain to its cap.
	DomainMessagesPerMinute map[string]int
	RecipientsPerMessage    int
	RelaySessions           int
	RelaySessionsPerMinute  int
	RemoteMXPerMinute       int
	Burst                   ratelimit.BurstConfig
}

// MailLimitsFromConfig converts the limits section of the configuration.
func MailLimitsFromConfig(l config.Limits) MailLimits {
	m := MailLimits{
		RelayMessagesPerMinute:  l.RelayMessagesPerMinute,
		SenderMessagesPerMinute: l.SenderMessagesPerMinute,
		RecipientsPerMessage:    l.RecipientsPerMessage,
		RelaySessions:           l.RelaySessions,
		RelaySessionsPerMinute:  l.RelaySessionsPerMinute,
		RemoteMXPerMinute:       l.RemoteMXPerMinute,
		Burst: ratelimit.BurstConfig{
			Factor:      l.Burst.Factor,
			MinMessages: l.Burst.MinMessages,
			Hold:        l.Burst.Hold,
			HoldFor:     l.Burst.HoldFor.D(),
		},
	}
	if len(l.DomainMessagesPerMinute) > 0 {
		m.DomainMessagesPerMinute = make(map[string]int, len(l.DomainMessagesPerMinute))
		for d, n := range l.DomainMessagesPerMinute {
			m.DomainMessagesPerMinute[strings.ToLower(strings.TrimSuffix(d, "."))] = n
		}
	}
	if m.Burst.HoldFor <= 0 {
		m.Burst.HoldFor = config.DefaultBurstHoldFor
	}
	return m
}

// TLSPoliciesFromConfig maps relay names to their STARTTLS policy
// (config.TLSPassthrough or config.TLSInspect).
func TLSPoliciesFromConfig(relays []config.Relay) map[string]string {
	m := make(map[string]string, len(relays))
	for _, r := range relays {
		m[r.Name] = r.TLS
	}
	return m
}

// limiter is the proxy's rate state; it survives limit changes.
type limiter struct {
	relayMsgs   *ratelimit.Counter  // key: relay name
	senderMsgs  *ratelimit.Counter  // key: lower-case sender
	domainMsgs  *ratelimit.Counter  // key: recipient domain
	newSessions *ratelimit.Counter  // key: relay name
	remoteMX    *ratelimit.Distinct // key: relay name, member: destination address
	sessions    *ratelimit.Gauge    // key: relay name
	burst       *ratelimit.BurstDetector
}

func newLimiter() *limiter {
	return &limiter{
		relayMsgs:   ratelimit.NewCounter(),
		senderMsgs:  ratelimit.NewCounter(),
		domainMsgs:  ratelimit.NewCounter(),
		newSessions: ratelimit.NewCounter(),
		remoteMX:    ratelimit.NewDistinct(),
		sessions:    ratelimit.NewGauge(),
		burst:       ratelimit.NewBurstDetector(ratelimit.BurstConfig{}),
	}
}
