//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/status"
)

// kubeFault is a lab node with a control plane, the ConfigMap kube-system/ip-masq-agent holding cfg, and
// masqd watching it as the DaemonSet's ServiceAccount (the RBAC of deploy/kubernetes), in step.
type kubeFault struct {
	lab    *Lab
	cp     *controlPlane
	cms    typedcorev1.ConfigMapInterface
	masqd  *agentProc
	probes *faultProbes
}

func startKubeFault(t *testing.T, cfg string) *kubeFault {
	t.Helper()
	testenv.RequireKernel(t)
	t.Setenv("NODE_NAME", "e2e-node")
	lab, cp := kubeLab(t)
	token := deployRBAC(t, cp)
	k := &kubeFault{lab: lab, cp: cp, cms: cp.Admin.CoreV1().ConfigMaps(cmNamespace), probes: &faultProbes{lab: lab}}
	k.create(t, cfg)
	// The file holds something else: the kernel shows which source masqd applies.
	file := writeConfig(t, "nonMasqueradeCIDRs: [192.0.2.0/24]\n")
	k.masqd = startAgent(t, lab.Node, freePort(t, lab.Node), "--kubeconfig="+cp.WriteKubeconfig("masqd", token), "--config="+file)
	waitKernel(t, lab, "the ConfigMap's config", dryRun(t, writeConfig(t, cfg)))
	k.masqd.waitStatus("/readyz", http.StatusOK)
	return k
}

func (k *kubeFault) create(t *testing.T, cfg string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName}, Data: map[string]string{"config": cfg}}
	if _, err := k.cms.Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (k *kubeFault) delete(t *testing.T) {
	t.Helper()
	if err := k.cms.Delete(context.Background(), cmName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestReliabilityFaultConfigMapDeleted: the ConfigMap is deleted and created again at once (as kubectl
// replace --force does), then deleted for good, then created again. The config keeps the internet's
// range (198.51.100.0/24), which the defaults masquerade, so a moment on the defaults would show as a probe
// to the internet leaving with the node's address. Deleted and re-created: masqd goes from the old config to
// the new one in one commit, never through the defaults. Deleted for good: the config stays in force for the
// grace (5s), with a warning, then the defaults apply, as ip-masq-agent's do, and masqd says it runs the
// defaults because the ConfigMap is absent. Created again: applied.
func TestReliabilityFaultConfigMapDeleted(t *testing.T) {
	const (
		cfgKeepInternet = "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n"
		// Five IPv4 intervals with link-local, where the defaults have four: the log's "applied" lines tell them apart.
		cfgRecreated = "nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24]\n"
	)
	k := startKubeFault(t, cfgKeepInternet)
	lab, p := k.lab, k.probes
	p.check(t, "before", []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})

	mark := len(k.masqd.Logs())
	p.during(t, "deleted and created again", lab.Internet, lab.PodIP, func() {
		k.delete(t)
		k.create(t, cfgRecreated)
		waitKernel(t, lab, "the re-created ConfigMap's config", dryRun(t, writeConfig(t, cfgRecreated)))
	})
	// Once the new config's apply is logged, an apply of the defaults before it would be logged too.
	var applies []string
	waitFor(t, 10*time.Second, "the re-created config's apply logged", func() error {
		applies = applies[:0]
		for line := range strings.Lines(k.masqd.Logs()[mark:]) {
			if strings.Contains(line, `"msg":"applied"`) {
				applies = append(applies, strings.TrimSpace(line))
			}
		}
		if len(applies) == 0 || !strings.Contains(applies[len(applies)-1], `"ipv4_intervals":5`) {
			return fmt.Errorf("applies logged since the delete: %q", applies)
		}
		return nil
	})
	if len(applies) != 1 {
		t.Errorf("%d applies after a delete and re-create, want one (the new config), never the defaults:\n%s", len(applies), strings.Join(applies, "\n"))
	}
	p.check(t, "re-created", []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})

	// Deleted for good: the config stays for the grace, then the defaults.
	before := kernelTable(t, lab.Node)
	mark = len(k.masqd.Logs())
	p.during(t, "deleted, within the grace", lab.Internet, lab.PodIP, func() {
		k.delete(t)
		waitFor(t, 10*time.Second, "the deletion seen", func() error {
			if !strings.Contains(k.masqd.Logs()[mark:], "the ConfigMap was deleted; its config stays") {
				return fmt.Errorf("no warning yet")
			}
			return nil
		})
		if got := kernelTable(t, lab.Node); got != before {
			t.Errorf("the kernel changed within the grace:\n%s", got)
		}
	})
	waitKernelWithin(t, lab, 20*time.Second, "the defaults after the grace", dryRun(t, "/nonexistent"))
	if v := k.masqd.metric(`masqd_config_state{state="defaults_configmap_absent"}`); v != 1 {
		t.Errorf(`masqd_config_state{state="defaults_configmap_absent"} = %v, want 1`, v)
	}
	if !strings.Contains(k.masqd.Logs(), "the ConfigMap is absent; running the built-in defaults") {
		t.Errorf("no warning that the ConfigMap is absent")
	}
	k.masqd.waitStatus("/readyz", http.StatusOK)
	p.check(t, "deleted, after the grace: the defaults", []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})

	k.create(t, cfgKeepInternet)
	waitKernel(t, lab, "created again", dryRun(t, writeConfig(t, cfgKeepInternet)))
	p.check(t, "created again", []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})

	reportFigures(t, "fault-configmap", p.table("the ConfigMap deleted and created again at once (kubectl replace --force); then deleted for good; then created again",
		"delete and re-create: one commit of masqd's, from the old config to the new, never the defaults (UDP probes to a range the config keeps and the defaults masquerade ran throughout). "+
			"Deleted: the config stayed in force 5s with a warning, then the defaults applied, as ip-masq-agent's do, with `masqd_config_state{state=\"defaults_configmap_absent\"}` and a warning; created again: applied"))
}

// maxResumeRequests bounds the ended LISTs and WATCHes of ConfigMaps a restarted apiserver serves until an
// edit has reached masqd's kernel: a few if a watch ends early, not one a second.
const maxResumeRequests = 5

// configMapRequests is the apiserver's count of requests of verb on ConfigMaps: with metric
// apiserver_request_total, those completed since it started; with apiserver_longrunning_requests, those open
// now (a watch counts as completed only when it ends).
func (cp *controlPlane) configMapRequests(t *testing.T, metric, verb string) float64 {
	t.Helper()
	body, err := cp.Admin.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("apiserver /metrics: %v", err)
	}
	m, err := status.ParseMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, s := range m.Samples(metric, "verb", verb, "resource", "configmaps") {
		n += s.GetCounter().GetValue() + s.GetGauge().GetValue()
	}
	return n
}

// TestReliabilityFaultAPIServerDown: kube-apiserver stops (SIGKILL) for a minute (five with MASQD_SOAK=1)
// and comes back. Meanwhile masqd keeps its rules, stays ready and alive, and packets keep their
// classification (probes run the whole time); once the apiserver is back the watch resumes by itself, and an
// edit made then reaches the kernel.
func TestReliabilityFaultAPIServerDown(t *testing.T) {
	down := time.Duration(soakSize(60, 300)) * time.Second
	k := startKubeFault(t, cfgVPCOnly)
	lab, p := k.lab, k.probes
	p.check(t, "before", []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})
	before := kernelTable(t, lab.Node)
	// The apiserver's own informers watch ConfigMaps too: masqd's watch is one of those open now.
	openBefore := k.cp.configMapRequests(t, "apiserver_longrunning_requests", "WATCH")

	k.cp.KillAPIServer()
	checks := 0
	p.during(t, "apiserver down", lab.Internet, lab.NodeIP, func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for end := time.Now().Add(down); time.Now().Before(end); <-tick.C {
			if code, _, err := k.masqd.get("/healthz"); err != nil || code != http.StatusOK {
				t.Errorf("/healthz = %d %v while the apiserver is down", code, err)
			}
			if code, _, err := k.masqd.get("/readyz"); err != nil || code != http.StatusOK {
				t.Errorf("/readyz = %d %v while the apiserver is down", code, err)
			}
			checks++
			if got := kernelTable(t, lab.Node); got != before {
				t.Errorf("the kernel changed while the apiserver was down:\n%s", got)
			}
		}
	})
	p.check(t, "apiserver down, at the end", []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})
	if err := k.masqd.exitErr(); err != nil {
		t.Fatalf("masqd stopped while the apiserver was down: %v", err)
	}

	restart := time.Now()
	k.cp.StartAPIServer()
	cm, err := k.cms.Get(context.Background(), cmName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["config"] = cfgWithNetDocs
	edit := time.Now()
	if _, err := k.cms.Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The reflector retries with a capped backoff (up to 30s), with jitter.
	waitKernelWithin(t, lab, 90*time.Second, "an edit after the apiserver came back", dryRun(t, writeConfig(t, cfgWithNetDocs)))
	resumed := time.Since(edit)
	p.check(t, "the edit after the apiserver came back", []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})

	// No relist storm: the restarted apiserver's counters start at zero; as many watches of ConfigMaps are
	// open as before the restart (masqd's resumed, none piled up), and few requests ended.
	waitFor(t, 10*time.Second, "the watches of ConfigMaps open again", func() error {
		if open := k.cp.configMapRequests(t, "apiserver_longrunning_requests", "WATCH"); open != openBefore {
			return fmt.Errorf("%v watches of ConfigMaps open, %v before the restart", open, openBefore)
		}
		return nil
	})
	lists := k.cp.configMapRequests(t, "apiserver_request_total", "LIST")
	watches := k.cp.configMapRequests(t, "apiserver_request_total", "WATCH")
	if lists+watches > maxResumeRequests {
		t.Errorf("the restarted apiserver served %v LISTs and %v ended WATCHes of ConfigMaps, want at most %d in all: a relist storm", lists, watches, maxResumeRequests)
	}

	reportFigures(t, "fault-apiserver", p.table(fmt.Sprintf("kube-apiserver killed, down %v, started again", down),
		fmt.Sprintf("masqd kept its rules (the table unchanged at each of %d checks), stayed alive and ready (/healthz and /readyz 200 every 5s), one process; "+
			"the watch resumed by itself: the restarted apiserver had as many watches of ConfigMaps open as before (%v, its own informers' and masqd's) and had served %v LIST and %v ended WATCH requests for them (no relist storm); an edit made once the apiserver answered (%v after its start) reached the kernel %v later",
			checks, openBefore, lists, watches, edit.Sub(restart).Round(time.Millisecond), resumed.Round(time.Millisecond))))
}
