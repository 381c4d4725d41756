package bridge

import "github.com/prometheus/client_golang/prometheus"

var (
	ruleDesc   = prometheus.NewDesc("relaygate_rule_packets_total", "Packets counted by relaygate's nftables counters.", []string{"counter"}, nil)
	portRxDesc = prometheus.NewDesc("relaygate_port_rx_bytes_total", "Bytes received on an appliance port.", []string{"port", "role"}, nil)
	portTxDesc = prometheus.NewDesc("relaygate_port_tx_bytes_total", "Bytes sent on an appliance port.", []string{"port", "role"}, nil)
	portUpDesc = prometheus.NewDesc("relaygate_port_up", "1 when the port's operational state is up.", []string{"port", "role"}, nil)
	restDesc   = prometheus.NewDesc("relaygate_ruleset_restored_total", "Times the heartbeat installed relaygate's nftables ruleset again after another tool removed part of it.", nil, nil)
)

// collector exports the ruleset's named counters and the port statistics,
// read when scraped.
type collector struct {
	counters func() map[string]uint64 // e.g. (*Bridge).Counters
	ports    func() []PortStatus      // e.g. (*Bridge).Ports
	restored func() uint64            // e.g. (*Bridge).Restored
}

var _ prometheus.Collector = (*collector)(nil)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ruleDesc, portRxDesc, portTxDesc, portUpDesc, restDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(restDesc, prometheus.CounterValue, float64(c.restored()))
	for name, v := range c.counters() {
		ch <- prometheus.MustNewConstMetric(ruleDesc, prometheus.CounterValue, float64(v), name)
	}
	for _, p := range c.ports() {
		up := 0.0
		if p.OperState == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(portRxDesc, prometheus.CounterValue, float64(p.RxBytes), p.Name, p.Role)
		ch <- prometheus.MustNewConstMetric(portTxDesc, prometheus.CounterValue, float64(p.TxBytes), p.Name, p.Role)
		ch <- prometheus.MustNewConstMetric(portUpDesc, prometheus.GaugeValue, up, p.Name, p.Role)
	}
}
