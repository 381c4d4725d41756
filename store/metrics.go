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
			Help: "Events deleted by retention (age, count or byte quota).",
		}, func() float64 { return float64(s.pruned.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "relaygate_store_events_over_budget_total",
			Help: "Events not stored because their source was over store.events_per_source_per_minute; the outcome series count them.",
		}, func() float64 { return float64(s.overBudget.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relaygate_store_quota_bytes",
			Help: "The byte quota of the stored events (store.max_mb, or its default).",
		}, func() float64 { return float64(s.maxBytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relaygate_store_event_bytes",
			Help: "Estimated bytes the stored events take in the database file.",
		}, func() float64 { return float64(s.evBytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relaygate_store_write_queue_length",
			Help: "Events waiting in the write queue.",
		}, func() float64 { return float64(s.queued()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relaygate_store_write_queue_capacity",
			Help: "Size of the write queue; Record drops events when it is full.",
		}, func() float64 { return float64(s.queueCap) }),
	}
}

// Collectors returns the store's Prometheus metrics, to be registered by the
// caller: events recorded, dropped and pruned, and the write queue length.
func (s *Store) Collectors() []prometheus.Collector { return s.collectors }
