package daemon

import "github.com/prometheus/client_golang/prometheus"

var servingDesc = prometheus.NewDesc("relaygate_serving", "1 while the data path does what the mode promises: enforce, the proxy serves and the diversion is alive; monitor, passive capture runs on the bridge ports.", nil, nil)

// servingCollector exports the daemon's own state: whether the data path
// does what the mode promises. The bridge exports its counters and ports
// itself ((*bridge.Bridge).Collectors).
type servingCollector struct{ d *daemon }

var _ prometheus.Collector = (*servingCollector)(nil)

func (s *servingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- servingDesc }

func (s *servingCollector) Collect(ch chan<- prometheus.Metric) {
	_, serving := s.d.dataPath()
	v := 0.0
	if serving {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(servingDesc, prometheus.GaugeValue, v)
}
