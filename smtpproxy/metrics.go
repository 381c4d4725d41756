package smtpproxy

import "github.com/prometheus/client_golang/prometheus"

// Connection classes, the "class" label of the connection metrics.
const (
	classRelay    = "relay"    // a relay, spliced onward
	classBlocked  = "blocked"  // a non-relay, refusal dialogue
	classRefused  = "refused"  // a non-relay over a connection cap, 421 at once
	classDeferred = "deferred" // a relay over max_conns, 421 at once
)

// Directions, the "direction" label of the byte counter.
const (
	dirClientToServer = "client_to_server"
	dirServerToClient = "server_to_client"
)

// metrics are one Proxy's Prometheus collectors.
type metrics struct {
	conns          *prometheus.CounterVec
	active         *prometheus.GaugeVec
	bytes          *prometheus.CounterVec
	upstreamErrors prometheus.Counter
	refusedRcpt    prometheus.Counter
	panics         prometheus.Counter
	messages       prometheus.Counter
	deferrals      *prometheus.CounterVec
	bursts         prometheus.Counter
	undiverted     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relaygate_proxy_connections_total",
			Help: "Connections accepted by the SMTP proxy, by class (relay, blocked, refused, deferred).",
		}, []string{"class"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relaygate_proxy_active_connections",
			Help: "Open SMTP proxy connections, by class (relay, blocked).",
		}, []string{"class"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relaygate_proxy_bytes_total",
			Help: "Octets spliced for relays, by direction (client_to_server, server_to_client); added when a session ends.",
		}, []string{"direction"}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relaygate_proxy_upstream_errors_total",
			Help: "Onward connections of relays that could not be opened.",
		}),
		refusedRcpt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relaygate_proxy_refused_recipients_total",
			Help: "RCPT TO commands answered 554 in refusal dialogues.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relaygate_proxy_panics_total",
			Help: "Panics recovered in connection handlers.",
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relaygate_proxy_messages_total",
			Help: "Messages of relays accepted by the remote side through the proxy.",
		}),
		deferrals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relaygate_proxy_deferrals_total",
			Help: "Commands or sessions of relays answered 4xx by a limit, by limit.",
		}, []string{"limit"}),
		bursts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relaygate_proxy_sender_bursts_total",
			Help: "Envelope senders detected sending far above their baseline.",
		}),
		undiverted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relaygate_proxy_undiverted_refused_total",
			Help: "Connections to the proxy's listener that did not come through the divert (to its own port or to one of the box's addresses), closed at once.",
		}),
	}
	// Export every series from the start, so that rate() sees the first event.
	for _, c := range []string{classRelay, classBlocked, classRefused, classDeferred} {
		m.conns.WithLabelValues(c)
	}
	for _, c := range []string{classRelay, classBlocked} {
		m.active.WithLabelValues(c)
	}
	for _, d := range []string{dirClientToServer, dirServerToClient} {
		m.bytes.WithLabelValues(d)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.conns, m.active, m.bytes, m.upstreamErrors, m.refusedRcpt, m.panics, m.messages, m.deferrals, m.bursts, m.undiverted}
}
