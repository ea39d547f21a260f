//go:build linux

package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/masqd/masqd/internal/testenv"
)

// overlayRBAC applies the RBAC of the overlay deploy/kubernetes/NAME and returns masqd's token; it checks
// that the overlay's DaemonSet passes arg.
func overlayRBAC(t *testing.T, cp *controlPlane, name, arg string) string {
	t.Helper()
	overlay, err := filepath.Abs("../deploy/kubernetes/" + name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cp.Kubectl("kustomize", overlay)
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	objs := decodeManifests(t, out)
	if args := only[*appsv1.DaemonSet](t, objs).Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, arg) {
		t.Fatalf("the overlay's DaemonSet args %q lack %s", args, arg)
	}
	return applyRBAC(t, cp, objs)
}

// podCIDRNode is a Node object as the node IPAM controller leaves it: its pod ranges in spec.podCIDRs.
func podCIDRNode(name string, cidrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	return n
}

// TestDiscoverPodCIDRs: with --discover-pod-cidrs (the overlay's RBAC, a real kube-apiserver), a second node's
// pod range read from its Node object is kept non-masquerade: a pod here reaching a pod in that range keeps
// its address, while the internet still sees the node's. The config (ip-masq-agent's, forgetting the range) is
// not touched. Deleting the Node takes the range out again; masqueradeCIDRs still cut into a discovered range.
func TestDiscoverPodCIDRs(t *testing.T) {
	testenv.RequireKernel(t)
	lab, cp := kubeLab(t)
	addRemotePods(t, lab)
	ctx := context.Background()
	token := overlayRBAC(t, cp, "discover-pod-cidrs", "--discover-pod-cidrs")
	kubeconfig := cp.WriteKubeconfig("masqd", token)
	nodes := cp.Admin.CoreV1().Nodes()
	if _, err := nodes.Create(ctx, podCIDRNode("e2e-node", "10.244.0.0/24"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg := "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [100.96.3.9/32]\n" // the remote pod range forgotten
	file := writeConfig(t, cfg)
	a := startAgent(t, lab.Node, freePort(t, lab.Node), "--kubeconfig="+kubeconfig,
		"--configmap=", "--config="+file, "--discover-pod-cidrs")
	a.waitStatus("/readyz", 200)
	// Listed: this node's range (inside 10.0.0.0/8 already) joins; nothing else.
	waitKernel(t, lab, "the config and this node's range", dryRun(t, file, "--cluster-cidr=10.244.0.0/24"))
	checkSources(t, lab, []expect{{remotePod, lab.NodeIP}, {lab.VPC, lab.PodIP}})

	// A second node, whose pods are in 100.96.3.0/24: its range is discovered, and pod-to-pod traffic to it
	// keeps the pod's address.
	if _, err := nodes.Create(ctx, podCIDRNode("e2e-node-2", "100.96.3.0/24", "2001:db8:96::/64"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, lab, "the second node's range discovered", dryRun(t, file, "--cluster-cidr=10.244.0.0/24,100.96.3.0/24"))
	checkSources(t, lab, []expect{
		{remotePod, lab.PodIP},
		{lab.Internet, lab.NodeIP},
		{lab.VPC, lab.PodIP},
	})
	if got := a.metric("masqd_discovered_pod_cidrs"); got != 3 {
		t.Errorf("masqd_discovered_pod_cidrs = %v, want 3 (the IPv6 range counted; without --enable-ipv6 it is not applied)", got)
	}
	if out := dryRun(t, file, "--cluster-cidr=10.244.0.0/24,100.96.3.0/24"); !strings.Contains(out, "100.96.3.0-100.96.3.8,") || !strings.Contains(out, "100.96.3.10-100.96.3.255") {
		t.Errorf("masqueradeCIDRs do not cut into the discovered range:\n%s", out)
	}

	// explain and status, given the agent's flag, read the Nodes as it does and name the node.
	ex := runMasqd(t, lab.Node, "explain", "--config="+file, "--discover-pod-cidrs", "--kubeconfig="+kubeconfig, remotePod.String())
	if want := remotePod.String() + ": source kept (a pod range: node e2e-node-2 (--discover-pod-cidrs) 100.96.3.0/24)"; !strings.Contains(ex.stdout, want) {
		t.Errorf("masqd explain --discover-pod-cidrs: exit %d, want %q:\n%s%s", ex.code, want, ex.stdout, ex.stderr)
	}
	st := runMasqd(t, lab.Node, "status", "--config="+file, "--discover-pod-cidrs", "--kubeconfig="+kubeconfig, "--http-address="+a.addr)
	if st.code != 0 || !strings.Contains(st.stdout, "100.96.3.0/24 (node e2e-node-2 (--discover-pod-cidrs))") || !strings.Contains(st.stdout, "pod ranges from the Nodes: 3") {
		t.Errorf("masqd status --discover-pod-cidrs: exit %d, want 0, the range and its node:\n%s%s", st.code, st.stdout, st.stderr)
	}

	// The Node goes: its range is masqueraded again.
	if err := nodes.Delete(ctx, "e2e-node-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, lab, "the second node's range gone with its Node", dryRun(t, file, "--cluster-cidr=10.244.0.0/24"))
	checkSources(t, lab, []expect{{remotePod, lab.NodeIP}})
	if logs := a.Logs(); !strings.Contains(logs, `"reason":"nodes"`) {
		t.Errorf("no apply for the reason nodes in the log:\n%s", logs)
	}
	t.Logf("applies: %v", a.metric(`masqd_sync_total{result="success"}`))
}
