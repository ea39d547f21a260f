package status

import "testing"

// exposition is an agent's /metrics, with and without TYPE lines.
const exposition = `# HELP masqd_build_info Always 1; the labels say the version and the backend in use.
# TYPE masqd_build_info gauge
masqd_build_info{backend="nftables",version="v0.3.0"} 1
masqd_config_valid 1
masqd_sync_total{result="error"} 0
masqd_sync_total{result="success"} 42
`

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics([]byte(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Value("masqd_sync_total", "result", "success"); !ok || v != 42 {
		t.Errorf("masqd_sync_total success = %v, want 42", v)
	}
	if v := m.Label("masqd_build_info", "version"); v != "v0.3.0" {
		t.Errorf("version label = %q, want v0.3.0", v)
	}
	if v, ok := m.Value("masqd_config_valid"); !ok || v != 1 { // untyped: no TYPE line
		t.Errorf("masqd_config_valid = %v, %v; want 1", v, ok)
	}
	if _, ok := m.Value("masqd_sync_total", "result", "retry"); ok {
		t.Errorf("masqd_sync_total{result=\"retry\"} found; there is none")
	}
	if _, err := ParseMetrics([]byte("masqd_config_valid one\n")); err == nil {
		t.Errorf("a malformed exposition parsed without error")
	}
}
