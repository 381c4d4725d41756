package bridge

import "github.com/prometheus/client_golang/prometheus"

// Collectors returns the bridge's Prometheus collectors: the ruleset's
// named counters (relaygate_rule_packets_total{counter}) and the ports'
// statistics (relaygate_port_{rx,tx}_bytes_total and relaygate_port_up,
// labelled port and role), read from the kernel when scraped, and
// relaygate_ruleset_restored_total (see Heartbeat).
func (b *Bridge) Collectors() []prometheus.Collector {
	return []prometheus.Collector{&collector{counters: b.Counters, ports: b.Ports, restored: b.Restored}}
}
