package store

import "github.com/prometheus/client_golang/prometheus"

func (s *Store) newCollectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "relaygate_store_events_recorded_total",
			Help: "Events committed to the event store.",
		}, func() float64 { return float64(s.recorded.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "relaygate_store_events_dropped_total",
			Help: "Events lost because the write queue was full, the store was closed or a commit failed.",
		}, func() float64 { return float64(s.dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "relaygate_store_events_pruned_total",
			Help: "Events deleted by retention (age or count).",
		}, func() float64 { return float64(s.pruned.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relaygate_store_write_queue_length",
			Help: "Events waiting in the write queue.",
		}, func() float64 { return float64(len(s.queue)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relaygate_store_write_queue_capacity",
			Help: "Size of the write queue; Record drops events when it is full.",
		}, func() float64 { return float64(cap(s.queue)) }),
	}
}

// Collectors returns the store's Prometheus metrics, to be registered by the
// caller: events recorded, dropped and pruned, and the write queue length.
func (s *Store) Collectors() []prometheus.Collector { return s.collectors }
