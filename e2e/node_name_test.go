//go:build linux

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/masqd/masqd/internal/testenv"
)

// TestNodeName runs masqd as the node-name overlay deploys it (its RBAC, --node-name, a ConfigMap source)
// against a real kube-apiserver with a Node object whose pod range is 100.96.3.0/24, outside ip-masq-agent's
// defaults. With no ConfigMap (the defaults) masqd warns: masqd_node_pod_cidr_masqueraded is 1, a Warning
// Event PodCIDRMasqueraded is on the Node (kubectl describe node shows it), the log says it once, masqd status
// lists it, masqd check --node says it and exits 1; the kernel holds the defaults all the same (it only
// warns). A ConfigMap with the cluster's pod range in clusterCIDRs clears the metric, the status line and
// check, and the kernel keeps the remote pod's address.
func TestNodeName(t *testing.T) {
	testenv.RequireKernel(t)
	lab, cp := kubeLab(t)
	addRemotePods(t, lab)
	ctx := context.Background()

	token := overlayRBAC(t, cp, "node-name", "--node-name=$(NODE_NAME)")

	// masqd's token reads its Node, and cannot write it.
	c := cp.client(token)
	const nodeName = "e2e-node"
	const podRange = "100.96.3.0/24" // remotePod's range, on this node
	if _, err := cp.Admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName},
		Spec: corev1.NodeSpec{PodCIDR: podRange, PodCIDRs: []string{podRange}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{}); err != nil {
		t.Errorf("masqd's token: get node: %v, want allowed", err)
	}
	if err := c.CoreV1().Nodes().Delete(ctx, nodeName, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("masqd's token: delete node: %v, want forbidden", err)
	}

	kubeconfig := cp.WriteKubeconfig("masqd", token)
	t.Setenv("NODE_NAME", nodeName)
	a := startAgent(t, lab.Node, freePort(t, lab.Node), "--kubeconfig="+kubeconfig, "--config=/nonexistent",
		"--node-name="+nodeName)
	a.waitStatus("/readyz", 200)
	waitFor(t, kubeDeadline, "masqd_node_pod_cidr_masqueraded 1", func() error {
		if v := nodeMetric(a, podRange); v != "1" {
			return fmt.Errorf("masqd_node_pod_cidr_masqueraded{cidr=%q} = %s", podRange, v)
		}
		return nil
	})
	waitKernel(t, lab, "the defaults, as written: the check only warns", dryRun(t, "/nonexistent"))
	checkSources(t, lab, []expect{{remotePod, lab.NodeIP}, {lab.VPC, lab.PodIP}})

	// The Event, on the Node, where kubectl describe node finds it.
	sel := fields.Set{"involvedObject.kind": "Node", "involvedObject.name": nodeName, "reason": "PodCIDRMasqueraded"}
	waitFor(t, kubeDeadline, "a Warning Event PodCIDRMasqueraded on the Node", func() error {
		list, err := cp.Admin.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
		if err != nil {
			return err
		}
		if len(list.Items) != 1 {
			all, _ := cp.Admin.CoreV1().Events("").List(ctx, metav1.ListOptions{})
			var seen []string
			for _, e := range all.Items {
				seen = append(seen, fmt.Sprintf("%s/%s %s %s on %s %s", e.Namespace, e.Name, e.Type, e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name))
			}
			return fmt.Errorf("%d Events; all Events: %q", len(list.Items), seen)
		}
		e := list.Items[0]
		if e.Type != corev1.EventTypeWarning || e.Namespace != "default" || e.Source.Component != "masqd" || e.Source.Host != nodeName ||
			!strings.Contains(e.Message, "its pod range "+podRange+" is masqueraded by the config") {
			return fmt.Errorf("Event %s in %s from %s/%s: %q", e.Type, e.Namespace, e.Source.Component, e.Source.Host, e.Message)
		}
		return nil
	})
	desc, err := cp.Kubectl("describe", "node", nodeName)
	if err != nil || !strings.Contains(desc, "PodCIDRMasqueraded") {
		t.Errorf("kubectl describe node does not show the Event (%v):\n%s", err, desc)
	}
	warned := "its pod range " + podRange + " is masqueraded"
	if n := strings.Count(a.Logs(), warned); n != 1 {
		t.Errorf("the log says %q %d times, want once", warned, n)
	}

	// masqd status and masqd check --node say it too.
	forgot := writeConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\n")
	st := runMasqd(t, lab.Node, "status", "--config=/nonexistent", "--http-address="+a.addr)
	if !strings.Contains(st.stdout, "node:     pod ranges MASQUERADED by the agent's config: "+podRange) {
		t.Errorf("masqd status:\n%s%s", st.stdout, st.stderr)
	}
	chk := runMasqd(t, lab.Node, "check", forgot, "--node="+nodeName, "--kubeconfig="+kubeconfig)
	if chk.code != 1 || !strings.Contains(chk.stdout, "warning: node "+nodeName+": pod range "+podRange+" is masqueraded") {
		t.Errorf("masqd check --node: exit %d, want 1 and the warning:\n%s%s", chk.code, chk.stdout, chk.stderr)
	}

	// Fixed: the pod ranges in the ConfigMap's clusterCIDRs.
	fixed := "nonMasqueradeCIDRs: [10.0.0.0/8]\nclusterCIDRs: [" + remotePods + "]\n"
	if _, err := cp.Admin.CoreV1().ConfigMaps(cmNamespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName},
		Data: map[string]string{"config": fixed}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, lab, "the fixed config", dryRun(t, writeConfig(t, fixed)))
	waitFor(t, kubeDeadline, "masqd_node_pod_cidr_masqueraded 0", func() error {
		if v := nodeMetric(a, podRange); v != "0" {
			return fmt.Errorf("masqd_node_pod_cidr_masqueraded{cidr=%q} = %s", podRange, v)
		}
		return nil
	})
	checkSources(t, lab, []expect{{remotePod, lab.PodIP}, {lab.Internet, lab.NodeIP}})
	st = runMasqd(t, lab.Node, "status", "--config=/nonexistent", "--http-address="+a.addr)
	if strings.Contains(st.stdout, "MASQUERADED") || !strings.Contains(st.stdout, "node:     pod ranges kept non-masquerade by the agent's config: "+podRange) {
		t.Errorf("masqd status after the fix:\n%s%s", st.stdout, st.stderr)
	}
	chk = runMasqd(t, lab.Node, "check", writeConfig(t, fixed), "--node="+nodeName, "--kubeconfig="+kubeconfig)
	if chk.code != 0 || !strings.Contains(chk.stdout, "node "+nodeName+": pod ranges kept non-masquerade: "+podRange) {
		t.Errorf("masqd check --node after the fix: exit %d, want 0:\n%s%s", chk.code, chk.stdout, chk.stderr)
	}
	if !strings.Contains(a.Logs(), "this node's pod ranges are kept non-masquerade") {
		t.Errorf("the log does not say the pod range is kept again")
	}
}

// nodeMetric returns the value of masqd_node_pod_cidr_masqueraded for cidr, or "absent".
func nodeMetric(a *agentProc, cidr string) string {
	for _, m := range a.families()["masqd_node_pod_cidr_masqueraded"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "cidr" && l.GetValue() == cidr {
				return fmt.Sprint(m.GetGauge().GetValue())
			}
		}
	}
	return "absent"
}
