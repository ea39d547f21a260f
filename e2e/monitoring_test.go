//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"sigs.k8s.io/yaml"

	"github.com/masqd/masqd/agent"
	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// The Prometheus Operator's objects, as far as deploy/monitoring uses them. Decoding is strict: a field
// not listed here (a typo, a field at the wrong level) fails the test. The operator's CRDs allow more.
type (
	objectMeta struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	}
	podMonitor struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   objectMeta `json:"metadata"`
		Spec       struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			PodMetricsEndpoints []struct {
				Port        string `json:"port"`
				Path        string `json:"path"`
				Interval    string `json:"interval"`
				Relabelings []struct {
					SourceLabels []string `json:"sourceLabels"`
					TargetLabel  string   `json:"targetLabel"`
				} `json:"relabelings"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	prometheusRule struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   objectMeta `json:"metadata"`
		Spec       ruleFile   `json:"spec"`
	}
	// ruleFile is a Prometheus rule file, which is also a PrometheusRule's spec.
	ruleFile struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert,omitempty"`
				Record      string            `json:"record,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	}
	// dashboard is the part of a Grafana dashboard the test reads.
	dashboard struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
)

// readYAMLStrict decodes the YAML file path into v, failing on unknown fields.
func readYAMLStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestMonitoring: deploy/monitoring's alerts pass promtool check rules and their unit tests (promtool test
// rules with rules_test.yaml); the dashboard's queries parse; every masqd metric the alerts and the dashboard
// use is one masqd exports; the PodMonitor scrapes the DaemonSet's named port.
func TestMonitoring(t *testing.T) {
	promtool := goTool(t, promtoolPkg, promtoolVersion)
	dir := t.TempDir()

	var rule prometheusRule
	readYAMLStrict(t, "../deploy/monitoring/prometheusrule.yaml", &rule)
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" {
		t.Errorf("prometheusrule.yaml is a %s %s", rule.APIVersion, rule.Kind)
	}
	rules, err := yaml.Marshal(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "rules.yaml"), string(rules))
	tests, err := os.ReadFile("../deploy/monitoring/rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "rules_test.yaml"), string(tests))
	t.Log(strings.TrimSpace(runTool(t, promtool, "check", "rules", filepath.Join(dir, "rules.yaml"))))
	t.Log(strings.TrimSpace(runTool(t, promtool, "test", "rules", filepath.Join(dir, "rules_test.yaml"))))

	// Every alert is tested: its name appears in the unit tests with an alert expected.
	var alerts []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: want a severity label, a summary and a description", r.Alert)
			}
			if !regexp.MustCompile(`alertname: ` + r.Alert + `\s+exp_alerts:\s+- `).Match(tests) {
				t.Errorf("alert %s: no unit test in rules_test.yaml expects it to fire", r.Alert)
			}
		}
	}
	want := []string{"MasqdDown", "MasqdNotReady", "MasqdConfigRejected", "MasqdApplyFailing", "MasqdDriftRepairsFrequent", "MasqdConfigDiverged", "MasqdNodePodCIDRMasqueraded"}
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}

	// The dashboard's queries, as recording rules, so that promtool parses them.
	data, err := os.ReadFile("../deploy/monitoring/masqd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash dashboard
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("masqd-dashboard.json: %v", err)
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	exprs := []string{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			// Grafana's variables, as Grafana substitutes them.
			e := strings.NewReplacer("$__rate_interval", "2m", "$job", ".*").Replace(tg.Expr)
			exprs = append(exprs, tg.Expr)
			q, _ := json.Marshal(e) // a JSON string is a YAML string
			fmt.Fprintf(&b, "      - record: dashboard:%s:%d\n        expr: %s\n", regexp.MustCompile(`\W+`).ReplaceAllString(p.Title, "_"), i, q)
		}
	}
	mustWrite(t, filepath.Join(dir, "dashboard.yaml"), b.String())
	runTool(t, promtool, "check", "rules", filepath.Join(dir, "dashboard.yaml"))
	if dash.UID == "" || len(dash.Panels) < 8 {
		t.Errorf("dashboard: uid %q, %d panels", dash.UID, len(dash.Panels))
	}

	// The metrics they use exist.
	exported := masqdMetricNames(t)
	for _, e := range append(exprs, ruleExprs(rule.Spec)...) {
		for _, name := range regexp.MustCompile(`\b(masqd_[a-z0-9_]+|process_[a-z0-9_]+)`).FindAllString(e, -1) {
			if !exported[name] {
				t.Errorf("%q uses %s, which masqd does not export", e, name)
			}
		}
	}

	// The PodMonitor selects masqd's pods and scrapes the DaemonSet's named port.
	var pm podMonitor
	readYAMLStrict(t, "../deploy/monitoring/podmonitor.yaml", &pm)
	if pm.Kind != "PodMonitor" || len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port != "http" ||
		pm.Spec.PodMetricsEndpoints[0].Path != "/metrics" || pm.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "masqd" {
		t.Errorf("PodMonitor: %+v; want port http, path /metrics, pods app.kubernetes.io/name=masqd", pm)
	}
	ds, err := os.ReadFile("../deploy/kubernetes/base/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ds), "- name: http\n              containerPort: 9745") {
		t.Errorf("the DaemonSet has no port named http at 9745 for the PodMonitor")
	}
}

func ruleExprs(f ruleFile) []string {
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// masqdMetricNames returns the names of every sample masqd's /metrics can hold, histograms' _bucket, _sum
// and _count included: the agent's metrics with every series set, and the Go and process collectors.
func masqdMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := agent.NewMetrics(reg, countersStub{})
	m.BuildInfo.WithLabelValues("v", "r", "false", "go", "nftables").Set(1)
	cfg, _, err := config.Parse("test", []byte("nonMasqueradeCIDRs: [10.0.0.0/8, fd00::/8]\n"), config.Options{EnableIPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	r := ruleset.Compile(cfg, ruleset.Options{})
	m.SetDesired(cfg, r)
	m.SetApplied(agent.ConfigHash(r))
	m.SyncDuration.Observe(0.001)
	pods := []netip.Prefix{netip.MustParsePrefix("100.96.3.0/24")}
	m.SetNodePodCIDRs(pods, pods) // --node-name
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			names[f.GetName()+s] = true
		}
	}
	return names
}

// countersStub is an agent.Counters with no traffic.
type countersStub struct{}

func (countersStub) Counters() (v4, v6 ruleset.Counter, err error) { return v4, v6, nil }
