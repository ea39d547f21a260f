package status

import (
	"bytes"
	"fmt"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the metric families of a Prometheus text exposition, by name.
type Metrics map[string]*dto.MetricFamily

// ParseMetrics parses an agent's /metrics (the Prometheus text format).
func ParseMetrics(body []byte) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("/metrics: %w", err)
	}
	return m, nil
}

// Value returns the value of the sample of name whose labels include labels (name, value, name, value, …),
// for a gauge, a counter or an untyped sample.
func (m Metrics) Value(name string, labels ...string) (float64, bool) {
	for _, s := range m.Samples(name, labels...) {
		if v, ok := sampleValue(s); ok {
			return v, true
		}
	}
	return 0, false
}

// sampleValue is one sample's value, whatever its metric type.
func sampleValue(s *dto.Metric) (float64, bool) {
	switch {
	case s.Gauge != nil:
		return s.Gauge.GetValue(), true
	case s.Counter != nil:
		return s.Counter.GetValue(), true
	case s.Untyped != nil:
		return s.Untyped.GetValue(), true
	}
	return 0, false
}

// Label returns the value of label key on the first sample of name, or "".
func (m Metrics) Label(name, key string) string {
	for _, s := range m.Samples(name) {
		for _, l := range s.Label {
			if l.GetName() == key {
				return l.GetValue()
			}
		}
	}
	return ""
}

// Samples returns the samples of name whose labels include labels (name, value, …).
func (m Metrics) Samples(name string, labels ...string) []*dto.Metric {
	f, ok := m[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, s := range f.Metric {
		have := map[string]string{}
		for _, l := range s.Label {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
				match = false
			}
		}
		if match {
			out = append(out, s)
		}
	}
	return out
}
