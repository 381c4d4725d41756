package bridge

import (
	"fmt"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCollector pins the bridge's metric names, labels and values: the
// dashboards and alerts of an installed base depend on them.
func TestCollector(t *testing.T) {
	c := &collector{
		counters: func() map[string]uint64 { return map[string]uint64{CounterDiverted: 7, CounterReset: 2} },
		restored: func() uint64 { return 3 },
		ports: func() []PortStatus {
			return []PortStatus{
				{Name: "eth1", Role: "inside", OperState: "up", RxBytes: 100, TxBytes: 200},
				{Name: "eth2", Role: "outside", OperState: "down", RxBytes: 3, TxBytes: 4},
			}
		},
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += fmt.Sprintf("%s=%s,", l.GetName(), l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got = append(got, fmt.Sprintf("%s %s{%s} %g", mf.GetName(), mf.GetType(), labels, v))
		}
	}
	sort.Strings(got)
	want := []string{
		"relaygate_port_rx_bytes_total COUNTER{port=eth1,role=inside,} 100",
		"relaygate_port_rx_bytes_total COUNTER{port=eth2,role=outside,} 3",
		"relaygate_port_tx_bytes_total COUNTER{port=eth1,role=inside,} 200",
		"relaygate_port_tx_bytes_total COUNTER{port=eth2,role=outside,} 4",
		"relaygate_port_up GAUGE{port=eth1,role=inside,} 1",
		"relaygate_port_up GAUGE{port=eth2,role=outside,} 0",
		"relaygate_rule_packets_total COUNTER{counter=diverted,} 7",
		"relaygate_rule_packets_total COUNTER{counter=reset,} 2",
		"relaygate_ruleset_restored_total COUNTER{} 3",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gathered metrics (-want +got):\n%s", diff)
	}
}
