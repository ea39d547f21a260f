//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/masqd/masqd/internal/testenv"
)

const chartDir = "../deploy/helm/masqd"

// objects decodes rendered manifests into generic objects keyed by KIND NAMESPACE/NAME.
func objects(t *testing.T, rendered string) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(rendered)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if o == nil {
			continue // a document of comments only
		}
		meta, _ := o["metadata"].(map[string]any)
		key := fmt.Sprintf("%s %v/%v", o["kind"], meta["namespace"], meta["name"])
		if _, dup := objs[key]; dup {
			t.Fatalf("two objects %s", key)
		}
		objs[key] = o
	}
}

// helmTemplate renders the chart as `helm install masqd deploy/helm/masqd -n kube-system ARGS` would.
func helmTemplate(t *testing.T, helm string, args ...string) string {
	t.Helper()
	return runTool(t, helm, append([]string{"template", "masqd", chartDir, "--namespace", "kube-system"}, args...)...)
}

func kustomize(t *testing.T, kubectl, dir string) string {
	t.Helper()
	return runTool(t, kubectl, "kustomize", dir)
}

// TestHelmChartMatchesKustomize: the Helm chart renders the same objects as the kustomizations: deploy/kubernetes
// with the defaults, deploy/kubernetes/gke with values-gke.yaml, deploy/kubernetes/cluster-cidr with the same
// clusterCIDRs, deploy/kubernetes/snat with the same egressInterfaces and snatToInterface, deploy/kubernetes/flush-conntrack with flushConntrack, and, with the monitoring values on, also
// deploy/monitoring's. So the chart's image tag is the kustomization's, and its copies of the alerts and the
// dashboard are deploy/monitoring's. With config set it renders a ConfigMap that masqd check accepts.
func TestHelmChartMatchesKustomize(t *testing.T) {
	helm := goTool(t, helmPkg, helmVersion)
	kubectl := kubeTools(t).Kubectl
	runTool(t, helm, "lint", "--strict", chartDir)

	base := kustomize(t, kubectl, "../deploy/kubernetes")
	monitoring := kustomize(t, kubectl, "../deploy/monitoring")
	for _, tc := range []struct {
		what      string
		helmArgs  []string
		kustomize string
	}{
		{"defaults", nil, base},
		{"GKE", []string{"-f", filepath.Join(chartDir, "values-gke.yaml")}, kustomize(t, kubectl, "../deploy/kubernetes/gke")},
		{"cluster CIDRs", []string{"--set", "clusterCIDRs={10.64.0.0/14,fd00:10:64::/56}"}, kustomize(t, kubectl, "../deploy/kubernetes/cluster-cidr")},
		{"snat", []string{"--set", "egressInterfaces={eth0},snatToInterface=eth0,config.nonMasqueradeCIDRs={10.0.0.0/8}"},
			kustomize(t, kubectl, "../deploy/kubernetes/snat")},
		{"flush conntrack", []string{"--set", "flushConntrack=true"}, kustomize(t, kubectl, "../deploy/kubernetes/flush-conntrack")},
		{"node name", []string{"--set", "checkNodePodCIDRs=true"}, kustomize(t, kubectl, "../deploy/kubernetes/node-name")},
		{"discover pod CIDRs", []string{"--set", "discoverPodCIDRs=true"}, kustomize(t, kubectl, "../deploy/kubernetes/discover-pod-cidrs")},
		{"monitoring", []string{"--set", "metrics.podMonitor.enabled=true,metrics.prometheusRule.enabled=true,metrics.dashboard.enabled=true"},
			base + "\n---\n" + monitoring},
	} {
		got, want := objects(t, helmTemplate(t, helm, tc.helmArgs...)), objects(t, tc.kustomize)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: helm template differs from kubectl kustomize (-kustomize +helm):\n%s", tc.what, diff)
		}
	}

	// config: the chart writes the ConfigMap masqd watches, and masqd check finds nothing wrong with it.
	values := filepath.Join(t.TempDir(), "values.yaml")
	mustWrite(t, values, "config:\n  nonMasqueradeCIDRs: [10.0.0.0/8, 192.168.0.0/16]\n  masqueradeCIDRs: [10.2.0.5/32]\n  masqLinkLocal: true\n")
	out := helmTemplate(t, helm, "-f", values, "--show-only", "templates/configmap.yaml")
	cmd := exec.Command(masqdBin, "check", "-")
	cmd.Stdin = strings.NewReader(out)
	res, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(res), "<stdin>: 0 errors, 0 warnings") || !strings.Contains(string(res), "10.2.0.6-10.255.255.255") {
		t.Errorf("masqd check of the chart's ConfigMap: %v\n%s\nmanifest:\n%s", err, res, out)
	}
	// The snat values merge into config: the ConfigMap holds them beside config's own keys, and check accepts it.
	out = helmTemplate(t, helm, "--set", "snatTo={10.0.12.34},egressInterfaces={eth0}", "--set", "config.masqLinkLocal=true",
		"--show-only", "templates/configmap.yaml")
	cmd = exec.Command(masqdBin, "check", "-")
	cmd.Stdin = strings.NewReader(out)
	res, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(res), "<stdin>: 0 errors, 0 warnings") ||
		!strings.Contains(string(res), "oifname @uplinks counter packets 0 bytes 0 snat ip to 10.0.12.34") {
		t.Errorf("masqd check of the chart's ConfigMap with the snat values: %v\n%s\nmanifest:\n%s", err, res, out)
	}
	// The chart's version and the README's are the release's, as the image tag (just set-version sets all).
	chart, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`(?m)^\s+image: \S+:(v\S+)$`).FindStringSubmatch(base)
	if tag == nil || !bytes.Contains(chart, []byte("\nversion: "+strings.TrimPrefix(tag[1], "v")+"\n")) {
		t.Errorf("Chart.yaml's version is not the image tag %v of deploy/kubernetes", tag)
	} else if !bytes.Contains(readme, []byte("The release is **"+tag[1]+"**: the image `ghcr.io/masqd/masqd:"+tag[1]+"`")) {
		t.Errorf("the README's install section does not name the release %s", tag[1])
	}
}

// TestManifestsServerDryRun: what `kubectl kustomize` and `helm template` render passes a server-side dry-run
// apply (the schema, strictly, and admission) on a real kube-apiserver: the kustomize base and GKE overlay,
// the chart's defaults and GKE values, the chart with a config and with the dashboard. (The PodMonitor and
// PrometheusRule need the Prometheus Operator's CRDs, which the test apiserver lacks: TestMonitoring decodes
// them strictly, and TestHelmChartMatchesKustomize compares them.)
func TestManifestsServerDryRun(t *testing.T) {
	testenv.RequireKernel(t)
	bins := kubeTools(t)
	helm := goTool(t, helmPkg, helmVersion)
	ns := newNS(t, "api")
	// kube-apiserver wants a non-loopback address to advertise: one end of a veth pair inside the namespace.
	ns.Run(t, "ip", "link", "add", "api0", "type", "veth", "peer", "name", "api1")
	ns.Run(t, "ip", "addr", "add", "192.0.2.10/24", "dev", "api0")
	ns.Run(t, "ip", "link", "set", "api0", "up")
	ns.Run(t, "ip", "link", "set", "api1", "up")
	cp := startControlPlane(t, ns, bins, "192.0.2.10")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", cp.Logs())
		}
	})

	values := filepath.Join(t.TempDir(), "values.yaml")
	mustWrite(t, values, "config:\n  nonMasqueradeCIDRs: [10.0.0.0/8]\nmode: nftables\nnetRaw: true\nenableIPv6: true\nextraArgs: [--log-level=debug]\n")
	for _, tc := range []struct {
		what     string
		rendered string
	}{
		{"kustomize deploy/kubernetes", kustomize(t, bins.Kubectl, "../deploy/kubernetes")},
		{"kustomize deploy/kubernetes/gke", kustomize(t, bins.Kubectl, "../deploy/kubernetes/gke")},
		{"helm template (defaults)", helmTemplate(t, helm)},
		{"helm template -f values-gke.yaml", helmTemplate(t, helm, "-f", filepath.Join(chartDir, "values-gke.yaml"))},
		{"helm template with a config and flags", helmTemplate(t, helm, "-f", values)},
		{"helm template with the dashboard", helmTemplate(t, helm, "--set", "metrics.dashboard.enabled=true")},
		{"kustomize deploy/kubernetes/cluster-cidr", kustomize(t, bins.Kubectl, "../deploy/kubernetes/cluster-cidr")},
		{"kustomize deploy/kubernetes/snat", kustomize(t, bins.Kubectl, "../deploy/kubernetes/snat")},
		{"kustomize deploy/kubernetes/flush-conntrack", kustomize(t, bins.Kubectl, "../deploy/kubernetes/flush-conntrack")},
		{"kustomize deploy/kubernetes/node-name", kustomize(t, bins.Kubectl, "../deploy/kubernetes/node-name")},
		{"helm template --set checkNodePodCIDRs=true", helmTemplate(t, helm, "--set", "checkNodePodCIDRs=true")},
		{"kustomize deploy/kubernetes/discover-pod-cidrs", kustomize(t, bins.Kubectl, "../deploy/kubernetes/discover-pod-cidrs")},
		{"helm template --set checkNodePodCIDRs=true,discoverPodCIDRs=true", helmTemplate(t, helm, "--set", "checkNodePodCIDRs=true,discoverPodCIDRs=true")},
	} {
		file := filepath.Join(t.TempDir(), "all.yaml")
		mustWrite(t, file, tc.rendered)
		res, err := cp.Kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=masqd-e2e", "-f", file)
		if err != nil {
			t.Errorf("%s: server-side dry-run apply: %v", tc.what, err)
			continue
		}
		objs := objects(t, tc.rendered)
		applied := strings.Count(res, "serverside-applied (server dry run)")
		if applied != len(objs) || applied < 4 {
			t.Errorf("%s: %d of %d objects applied:\n%s", tc.what, applied, len(objs), res)
		}
		var kinds []string
		for k := range objs {
			kinds = append(kinds, strings.Fields(k)[0])
		}
		slices.Sort(kinds)
		t.Logf("%s: %d objects pass (%s)", tc.what, applied, strings.Join(slices.Compact(kinds), ", "))
	}
}
