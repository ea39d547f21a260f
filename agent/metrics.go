package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/masqd/masqd/nft"
)

// Metrics are the agent's Prometheus metrics. Create them with NewMetrics on a registry made by the caller.
type Metrics struct {
	Syncs         *prometheus.CounterVec
	SyncDuration  prometheus.Histogram
	LastSuccess   prometheus.Gauge
	ConfigValid   prometheus.Gauge
	ConfigReloads prometheus.Counter
	DriftRepairs  prometheus.Counter
	Prefixes      *prometheus.GaugeVec
	BuildInfo     *prometheus.GaugeVec
}

// Counters reads the masquerade rules' counters: a Backend, or an *nft.Conn.
type Counters interface {
	Counters() (v4, v6 nft.Counter, err error)
}

// NewMetrics registers the agent's metrics on reg. The masqueraded packet and byte counters are read from
// the kernel's rule counters through c at scrape time.
func NewMetrics(reg prometheus.Registerer, c Counters) *Metrics {
	m := &Metrics{
		Syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "masqd_sync_total", Help: "Applies of the desired ruleset to the kernel, by result.",
		}, []string{"result"}),
		SyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "masqd_sync_duration_seconds", Help: "Time to compare and apply the ruleset.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "masqd_last_sync_success_timestamp_seconds", Help: "When the kernel was last seen holding the desired ruleset.",
		}),
		ConfigValid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "masqd_config_valid", Help: "1 when the last config read was valid, 0 when it was rejected (the previous rules stay).",
		}),
		ConfigReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "masqd_config_reloads_total", Help: "Config reads.",
		}),
		DriftRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "masqd_drift_repairs_total", Help: "Repairs of masqd's table after something else changed it.",
		}),
		Prefixes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_nonmasquerade_prefixes", Help: "Non-masquerade intervals in the desired ruleset, by family.",
		}, []string{"family"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "masqd_build_info", Help: "Always 1; the labels say the version and the backend in use.",
		}, []string{"version", "backend"}),
	}
	reg.MustRegister(m.Syncs, m.SyncDuration, m.LastSuccess, m.ConfigValid, m.ConfigReloads, m.DriftRepairs,
		m.Prefixes, m.BuildInfo, newCounterCollector(c))
	for _, r := range []string{"success", "error"} {
		m.Syncs.WithLabelValues(r)
	}
	return m
}

// counterCollector reads the masquerade rules' counters when scraped.
type counterCollector struct {
	conn          Counters
	packets, byts *prometheus.Desc
}

func newCounterCollector(conn Counters) counterCollector {
	return counterCollector{
		conn: conn,
		packets: prometheus.NewDesc("masqd_masqueraded_packets_total",
			"Packets masqueraded, by family (only a connection's first packet passes the NAT rule).", []string{"family"}, nil),
		byts: prometheus.NewDesc("masqd_masqueraded_bytes_total",
			"Bytes of the packets counted by masqd_masqueraded_packets_total, by family.", []string{"family"}, nil),
	}
}

func (c counterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.byts
}

func (c counterCollector) Collect(ch chan<- prometheus.Metric) {
	v4, v6, err := c.conn.Counters()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.packets, err)
		return
	}
	for fam, cnt := range map[string]nft.Counter{"ipv4": v4, "ipv6": v6} {
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(cnt.Packets), fam)
		ch <- prometheus.MustNewConstMetric(c.byts, prometheus.CounterValue, float64(cnt.Bytes), fam)
	}
}
