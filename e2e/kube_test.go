//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/nft"
)

// The ConfigMap masqd watches by default, as ip-masq-agent's users create it.
const (
	cmNamespace = "kube-system"
	cmName      = "ip-masq-agent"
)

// kubeDeadline bounds how long a ConfigMap edit may take to reach the kernel in these tests. It is a
// failure bound, not a measurement: BenchmarkKubeEditToKernel measures.
const kubeDeadline = 10 * time.Second

// TestKube runs masqd against a real kube-apiserver: the manifests in deploy/kubernetes are valid and grant
// exactly what they should; a ConfigMap edit reaches the kernel and the packets; an invalid one is reported
// as an Event and changes nothing; the watch survives an apiserver restart. The steps share one control
// plane and one masqd, and the test stops at the first failing step.
func TestKube(t *testing.T) {
	testenv.RequireKernel(t)
	lab, cp := kubeLab(t)
	k := &kubeTest{lab: lab, cp: cp, cms: cp.Admin.CoreV1().ConfigMaps(cmNamespace)}
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Manifests", k.manifests},
		{"RBAC", k.rbac},
		{"FileFirstThenAPI", k.fileFirstThenAPI},
		{"Edits", k.edits},
		{"InvalidConfig", k.invalidConfig},
		{"ManyEdits", k.manyEdits},
		{"APIServerRestart", k.apiserverRestart},
	}
	// Steps, not subtests: masqd and the control plane live as long as the whole test, and each step needs
	// the ones before it.
	for _, s := range steps {
		t.Logf("step %s", s.name)
		s.fn(t)
		if t.Failed() {
			t.Fatalf("step %s failed; the later steps depend on it", s.name)
		}
	}
}

// kubeTest is the state TestKube's steps share.
type kubeTest struct {
	lab   *Lab
	cp    *controlPlane
	cms   typedcorev1.ConfigMapInterface // kube-system's, as the admin
	masqd *agentProc
	token string // masqd's ServiceAccount token
}

// manifests: every object of both kustomizations passes a server-side dry-run apply (the apiserver checks the
// schema, strictly, and admission); the DaemonSet is what the issue asks for; its arguments are flags masqd
// accepts. Then the RBAC objects are created for real.
func (k *kubeTest) manifests(t *testing.T) {
	base, err := filepath.Abs("../deploy/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	var baseObjs []manifest
	for _, dir := range []string{base, filepath.Join(base, "gke")} {
		out, err := k.cp.Kubectl("kustomize", dir)
		if err != nil {
			t.Fatalf("kubectl kustomize: %v", err)
		}
		file := filepath.Join(t.TempDir(), "all.yaml")
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := k.cp.Kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
			"--field-manager=masqd-e2e", "-f", file)
		if err != nil {
			t.Fatalf("%s: server-side dry-run apply: %v", dir, err)
		}
		for _, want := range []string{"serviceaccount/masqd", "role.rbac.authorization.k8s.io/masqd",
			"rolebinding.rbac.authorization.k8s.io/masqd", "daemonset.apps/masqd"} {
			if !strings.Contains(res, want+" serverside-applied (server dry run)") {
				t.Errorf("%s: dry-run apply did not apply %s:\n%s", dir, want, res)
			}
		}
		objs := decodeManifests(t, out)
		ds := only[*appsv1.DaemonSet](t, objs)
		checkDaemonSet(t, ds)
		args := ds.Spec.Template.Spec.Containers[0].Args
		if dir == base {
			baseObjs = objs
		} else {
			for _, want := range []string{"--masq-chain=IP-MASQ", "--nomasq-all-reserved-ranges"} {
				if !slices.Contains(args, want) {
					t.Errorf("gke: args %q lack %s", args, want)
				}
			}
			if got := ds.Spec.Template.Spec.NodeSelector["node.kubernetes.io/masq-agent-ds-ready"]; got != "true" {
				t.Errorf("gke: nodeSelector node.kubernetes.io/masq-agent-ds-ready = %q, want true", got)
			}
		}
		// masqd accepts the DaemonSet's arguments (the config path aside: it exists only in the pod).
		dry := []string{"--dry-run"}
		for _, a := range args {
			if !strings.HasPrefix(a, "--config=") {
				dry = append(dry, a)
			}
		}
		if r := runMasqd(t, nil, append(dry, "--config=/nonexistent")...); r.code != 0 {
			t.Errorf("%s: masqd %q: exit %d: %s", dir, dry, r.code, r.stderr)
		}
	}
	if _, err := k.cp.Admin.AppsV1().DaemonSets(cmNamespace).Get(context.Background(), "masqd", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("DaemonSet after a dry run: %v, want NotFound", err)
	}

	// The Role is exactly the issue's.
	role := only[*rbacv1.Role](t, baseObjs)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{cmName}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
	if fmt.Sprint(role.Rules) != fmt.Sprint(want) {
		t.Errorf("Role rules:\n%v\nwant\n%v", role.Rules, want)
	}

	// For real: the ServiceAccount, Role and RoleBinding.
	k.token = applyRBAC(t, k.cp, baseObjs)
}

// applyRBAC creates the ServiceAccount, Role and RoleBinding (and ClusterRole and ClusterRoleBinding, in an
// overlay that has them) of objs (deploy/kubernetes rendered by kustomize)
// and returns a token of the ServiceAccount, as a pod of the DaemonSet gets it.
func applyRBAC(t *testing.T, cp *controlPlane, objs []manifest) string {
	t.Helper()
	var rbac bytes.Buffer
	for _, m := range objs {
		switch m.obj.(type) {
		case *corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
			rbac.Write(m.raw)
			rbac.WriteString("\n---\n")
		}
	}
	file := filepath.Join(t.TempDir(), "rbac.yaml")
	if err := os.WriteFile(file, rbac.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Kubectl("apply", "--server-side", "--field-manager=masqd-e2e", "-f", file); err != nil {
		t.Fatalf("apply RBAC: %v", err)
	}
	return cp.ServiceAccountToken(cmNamespace, "masqd")
}

// checkDaemonSet checks the DaemonSet's pod against the list.
func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	p := ds.Spec.Template.Spec
	c := p.Containers[0]
	sc := c.SecurityContext
	var env []string
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env = append(env, e.Name+"="+e.ValueFrom.FieldRef.FieldPath)
		}
	}
	mounted := false
	for _, v := range p.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cmName && v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
			for _, m := range c.VolumeMounts {
				mounted = mounted || (m.Name == v.Name && m.MountPath == "/etc/config")
			}
		}
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"hostNetwork", p.HostNetwork},
		{"priorityClassName system-node-critical", p.PriorityClassName == "system-node-critical"},
		{"tolerates everything", len(p.Tolerations) == 1 && p.Tolerations[0].Operator == corev1.TolerationOpExists && p.Tolerations[0].Key == ""},
		{"nodeSelector kubernetes.io/os: linux", p.NodeSelector["kubernetes.io/os"] == "linux"},
		{"serviceAccountName masqd", p.ServiceAccountName == "masqd"},
		{"not privileged", sc != nil && sc.Privileged != nil && !*sc.Privileged},
		{"readOnlyRootFilesystem", sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
		{"capabilities drop ALL add NET_ADMIN", sc != nil && sc.Capabilities != nil &&
			fmt.Sprint(sc.Capabilities.Drop) == "[ALL]" && fmt.Sprint(sc.Capabilities.Add) == "[NET_ADMIN]"},
		{"liveness /healthz", c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == "/healthz"},
		{"readiness /readyz", c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path == "/readyz"},
		{"requests 10m CPU, 32Mi memory", c.Resources.Requests.Cpu().String() == "10m" && c.Resources.Requests.Memory().String() == "32Mi"},
		{"a memory limit", !c.Resources.Limits.Memory().IsZero()},
		{"RollingUpdate", ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType},
		{"NODE_NAME from spec.nodeName", slices.Contains(env, "NODE_NAME=spec.nodeName")},
		{"HOST_IP from status.hostIP", slices.Contains(env, "HOST_IP=status.hostIP")},
		{"serves HTTP on $(HOST_IP):9745", slices.Contains(c.Args, "--http-address=$(HOST_IP):9745")},
		{"a named port http 9745", len(c.Ports) == 1 && c.Ports[0].Name == "http" && c.Ports[0].ContainerPort == 9745},
		{"probes ask the pod's (the node's) address", c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil &&
			c.LivenessProbe.HTTPGet.Host == "" && c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Host == ""},
		{"a pinned image, not latest", !strings.HasSuffix(c.Image, ":latest") && strings.Contains(c.Image, ":v")},
		{"ConfigMap mounted, optional, at /etc/config", mounted},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("DaemonSet: not %s", c.what)
		}
	}
}

// rbac: masqd's ServiceAccount token reads its ConfigMap (get, and list and watch limited to its name) and
// nothing else.
func (k *kubeTest) rbac(t *testing.T) {
	ctx := context.Background()
	if _, err := k.cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Data: map[string]string{"config": ""}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.cp.Admin.CoreV1().Secrets(cmNamespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "secret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := k.cp.client(k.token)
	mine := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", cmName).String()}
	allowed := map[string]error{}
	_, err := c.CoreV1().ConfigMaps(cmNamespace).Get(ctx, cmName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		err = nil // allowed; it does not exist yet
	}
	allowed["get configmap "+cmName] = err
	_, allowed["list configmaps named "+cmName] = c.CoreV1().ConfigMaps(cmNamespace).List(ctx, mine)
	w, err := c.CoreV1().ConfigMaps(cmNamespace).Watch(ctx, mine)
	if err == nil {
		w.Stop()
	}
	allowed["watch configmaps named "+cmName] = err
	for what, err := range allowed {
		if err != nil {
			t.Errorf("masqd's token: %s: %v, want allowed", what, err)
		}
	}

	forbidden := map[string]error{}
	_, forbidden["get configmap other"] = c.CoreV1().ConfigMaps(cmNamespace).Get(ctx, "other", metav1.GetOptions{})
	_, forbidden["list configmaps"] = c.CoreV1().ConfigMaps(cmNamespace).List(ctx, metav1.ListOptions{})
	_, forbidden["list configmaps in all namespaces"] = c.CoreV1().ConfigMaps("").List(ctx, mine)
	_, forbidden["watch configmap other"] = c.CoreV1().ConfigMaps(cmNamespace).Watch(ctx,
		metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "other").String()})
	_, forbidden["get secret"] = c.CoreV1().Secrets(cmNamespace).Get(ctx, "secret", metav1.GetOptions{})
	_, forbidden["list secrets"] = c.CoreV1().Secrets(cmNamespace).List(ctx, metav1.ListOptions{})
	_, forbidden["list secrets in default"] = c.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	_, forbidden["update configmap "+cmName] = c.CoreV1().ConfigMaps(cmNamespace).Update(ctx,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName}}, metav1.UpdateOptions{})
	_, forbidden["list pods"] = c.CoreV1().Pods(cmNamespace).List(ctx, metav1.ListOptions{})
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("masqd's token: %s: %v, want 403 Forbidden", what, err)
		}
	}
}

// fileFirstThenAPI: masqd starts while the apiserver is down and applies the file; once the apiserver is
// back and the watch has listed, the API wins: the ConfigMap is absent, so the defaults apply.
func (k *kubeTest) fileFirstThenAPI(t *testing.T) {
	lab := k.lab
	k.cp.KillAPIServer()
	file := writeConfig(t, cfgWithNetDocs)
	t.Setenv("NODE_NAME", "e2e-node") // masqd inherits it: the source host of its Events
	kubeconfig := k.cp.WriteKubeconfig("masqd", k.token)
	k.masqd = startAgent(t, lab.Node, freePort(t, lab.Node), "--kubeconfig="+kubeconfig, "--config="+file)
	waitKernel(t, lab, "the file's config while the API is down", dryRun(t, file))
	k.masqd.waitStatus("/readyz", http.StatusOK)
	checkSources(t, lab, []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})

	start := time.Now()
	k.cp.StartAPIServer()
	waitKernelWithin(t, lab, 60*time.Second, "the defaults once the API answers (no ConfigMap)", dryRun(t, "/nonexistent"))
	t.Logf("apiserver start → watch listed → defaults in the kernel: %v", time.Since(start).Round(time.Millisecond))
	checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})
}

// edits: create, update (either data key), delete; the kernel follows each, and the packets decide.
func (k *kubeTest) edits(t *testing.T) {
	lab := k.lab
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName}, Data: map[string]string{"config": cfgVPCOnly}}
	steps := []struct {
		what string
		edit func() error
		cfg  string // the config the kernel must hold after
		want []expect
	}{
		{"create", func() error { _, err := k.cms.Create(ctx, cm, metav1.CreateOptions{}); return err }, cfgVPCOnly,
			[]expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}}},
		{"update", func() error {
			cm.Data["config"] = "nonMasqueradeCIDRs: [198.51.100.0/24]\n"
			_, err := k.cms.Update(ctx, cm, metav1.UpdateOptions{})
			return err
		}, "nonMasqueradeCIDRs: [198.51.100.0/24]\n", []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.NodeIP}}},
		{"update to key ip-masq-agent", func() error {
			cm.Data = map[string]string{"ip-masq-agent": cfgWithNetDocs}
			_, err := k.cms.Update(ctx, cm, metav1.UpdateOptions{})
			return err
		}, cfgWithNetDocs, []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}}},
		{"delete", func() error { return k.cms.Delete(ctx, cmName, metav1.DeleteOptions{}) }, "",
			[]expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}}},
	}
	for _, s := range steps {
		path := "/nonexistent"
		if s.cfg != "" {
			path = writeConfig(t, s.cfg)
		}
		want := dryRun(t, path)
		start := time.Now()
		if err := s.edit(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		waitKernel(t, lab, s.what, want)
		t.Logf("%s → kernel: %v", s.what, time.Since(start).Round(time.Millisecond))
		checkSources(t, lab, s.want)
	}
	// Four edits applied: no Event at all (only warnings are posted; on 5,000 nodes every applied edit would
	// be 5,000 writes).
	list, err := k.cp.Admin.CoreV1().Events(cmNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Source.Component == "masqd" {
			t.Errorf("Event %s %s %q after valid edits; want none", e.Type, e.Reason, e.Message)
		}
	}
}

// invalidConfig: an invalid edit becomes a Warning Event on the ConfigMap, naming the ConfigMap and key, and
// the kernel keeps the rules in force.
func (k *kubeTest) invalidConfig(t *testing.T) {
	lab := k.lab
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName}, Data: map[string]string{"config": cfgVPCOnly}}
	if _, err := k.cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, lab, "valid config", dryRun(t, writeConfig(t, cfgVPCOnly)))
	before := kernelTable(t, lab.Node)
	cm.Data["config"] = "nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n"
	if _, err := k.cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, k.cp.Admin, corev1.EventTypeWarning, "InvalidConfig",
		`configmap kube-system/ip-masq-agent key config line 2: nonMasqueradeCIDRs[0] "10.0.0.1/8"`)
	if e.Source.Component != "masqd" || e.Source.Host != "e2e-node" {
		t.Errorf("event source %+v, want masqd on e2e-node", e.Source)
	}
	// What the user sees: the first debugging step.
	desc, err := k.cp.Kubectl("describe", "configmap", cmName, "-n", cmNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(desc, "InvalidConfig") || !strings.Contains(desc, "10.0.0.0/8") {
		t.Errorf("kubectl describe configmap shows no InvalidConfig with the fix:\n%s", desc)
	}
	_, events, _ := strings.Cut(desc, "Events:")
	t.Logf("kubectl describe configmap %s -n %s, Events:%s", cmName, cmNamespace, events)
	// describe shows the component only; the wide listing shows the node too.
	list, err := k.cp.Kubectl("get", "events", "-n", cmNamespace, "-o", "wide", "--field-selector", "involvedObject.name="+cmName)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, "masqd, e2e-node") {
		t.Errorf("kubectl get events -o wide does not name the node as the source:\n%s", list)
	}
	if got := kernelTable(t, lab.Node); got != before {
		t.Fatalf("kernel changed after an invalid config:\n%s\nwas\n%s", got, before)
	}
	if v := k.masqd.metric("masqd_config_valid"); v != 0 {
		t.Errorf("masqd_config_valid = %v, want 0", v)
	}
	k.masqd.waitStatus("/readyz", http.StatusOK) // the rules in force are still the desired ones
	checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})

	// Fixed again.
	cm.Data["config"] = cfgWithNetDocs
	if _, err := k.cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, lab, "fixed config", dryRun(t, writeConfig(t, cfgWithNetDocs)))
}

// manyEdits: 20 ConfigMap updates in a row, each a one-prefix change, each reaching the kernel as one commit
// of masqd's; the kernel then holds the last. BenchmarkKubeEditToKernel times the same edits.
func (k *kubeTest) manyEdits(t *testing.T) {
	cm, err := k.cms.Get(context.Background(), cmName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch := commits(t, k.lab.Node)
	last := ""
	for i := range 20 {
		last = fmt.Sprintf("nonMasqueradeCIDRs: [10.0.0.0/8, 192.168.%d.0/24]\n", i)
		cm, _ = editConfigMap(t, k.cms, cm, ch, last)
	}
	waitKernel(t, k.lab, "the last edit", dryRun(t, writeConfig(t, last)))
	// For the DaemonSet's memory limit.
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", k.masqd.cmd.Process.Pid)); err == nil {
		for line := range strings.Lines(string(status)) {
			if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
				t.Logf("masqd %s", strings.Join(strings.Fields(line), " "))
			}
		}
	}
}

// editConfigMap sets cm's config to cfg with an update through cms, waits for the commit to masqd's table
// that follows (on ch, from commits) and fails unless masqd made it. It returns the updated ConfigMap and the
// time from the update call to the commit as the monitor saw it.
func editConfigMap(t testing.TB, cms typedcorev1.ConfigMapInterface, cm *corev1.ConfigMap, ch <-chan nft.Commit, cfg string) (*corev1.ConfigMap, time.Duration) {
	t.Helper()
	cm.Data["config"] = cfg
	start := time.Now()
	cm, err := cms.Update(context.Background(), cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := nextCommit(t, ch, "ConfigMap edit"); c.Process != "masqd" {
		t.Fatalf("ConfigMap edit: commit by %q, want masqd", c.Process)
	}
	return cm, time.Since(start)
}

// apiserverRestart: kube-apiserver killed and started again; masqd keeps its rules meanwhile, its watch
// comes back by itself, and a later edit lands.
func (k *kubeTest) apiserverRestart(t *testing.T) {
	lab := k.lab
	ctx := context.Background()
	before := kernelTable(t, lab.Node)
	k.cp.KillAPIServer()
	k.masqd.waitStatus("/readyz", http.StatusOK)
	if got := kernelTable(t, lab.Node); got != before {
		t.Fatalf("kernel changed while the apiserver was down:\n%s\nwas\n%s", got, before)
	}
	restart := time.Now()
	k.cp.StartAPIServer()
	cm, err := k.cms.Get(ctx, cmName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["config"] = cfgWithNetDocs
	edit := time.Now()
	if _, err := k.cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The reflector retries with a backoff of up to 30s: the bound is generous, the time is logged.
	waitKernelWithin(t, lab, 90*time.Second, "an edit after the apiserver restart", dryRun(t, writeConfig(t, cfgWithNetDocs)))
	t.Logf("apiserver ready %v after start; the edit reached the kernel %v after it was made",
		edit.Sub(restart).Round(time.Millisecond), time.Since(edit).Round(time.Millisecond))
	checkSources(t, lab, []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})

	// And once more, with the watch settled.
	if cm, err = k.cms.Get(ctx, cmName, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	cm.Data["config"] = cfgVPCOnly
	if _, err := k.cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, lab, "a second edit after the restart", dryRun(t, writeConfig(t, cfgVPCOnly)))
	checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}})
}

// waitKernel waits until masqd's table in the lab's node is want (counters aside).
func waitKernel(t *testing.T, lab *Lab, what, want string) {
	t.Helper()
	waitKernelWithin(t, lab, kubeDeadline, what, want)
}

func waitKernelWithin(t *testing.T, lab *Lab, timeout time.Duration, what, want string) {
	t.Helper()
	waitFor(t, timeout, what, func() error {
		out, err := lab.Node.RunErr("nft", "list", "table", "inet", "masqd")
		if err != nil {
			return err
		}
		if got := zeroCounters(out); got != want {
			return fmt.Errorf("kernel:\n%s\nwant\n%s", got, want)
		}
		return nil
	})
}

// waitEvent waits for an Event of type and reason on the ConfigMap whose message contains text.
func waitEvent(t *testing.T, c kubernetes.Interface, typ, reason, text string) corev1.Event {
	t.Helper()
	var found corev1.Event
	sel := fields.Set{"involvedObject.kind": "ConfigMap", "involvedObject.name": cmName, "reason": reason, "type": typ}
	waitFor(t, kubeDeadline, fmt.Sprintf("%s Event %s on configmap %s", typ, reason, cmName), func() error {
		list, err := c.CoreV1().Events(cmNamespace).List(context.Background(), metav1.ListOptions{FieldSelector: sel.String()})
		if err != nil {
			return err
		}
		var msgs []string
		for _, e := range list.Items {
			if strings.Contains(e.Message, text) {
				found = e
				return nil
			}
			msgs = append(msgs, e.Message)
		}
		return fmt.Errorf("none contains %q; seen: %q", text, msgs)
	})
	return found
}

// manifest is one object of kustomize's output, as text and decoded.
type manifest struct {
	raw []byte
	obj runtime.Object
}

// decodeManifests decodes kustomize's output into typed objects.
func decodeManifests(t *testing.T, out string) []manifest {
	t.Helper()
	var objs []manifest
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		o, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decode manifest: %v\n%s", err, doc)
		}
		objs = append(objs, manifest{raw: doc, obj: o})
	}
}

// only returns the one object of type T in objs.
func only[T runtime.Object](t *testing.T, objs []manifest) T {
	t.Helper()
	var found []T
	for _, m := range objs {
		if v, ok := m.obj.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("manifests hold %d objects of type %T, want 1", len(found), zero)
	}
	return found[0]
}
