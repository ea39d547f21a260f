package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
)

func (f fakeAPI) ListNodes(ctx context.Context, o metav1.ListOptions) (*corev1.NodeList, error) {
	return f.CoreV1().Nodes().List(ctx, o)
}

func (f fakeAPI) WatchNodes(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return f.CoreV1().Nodes().Watch(ctx, o)
}

// TestNodePodCIDRCheck runs the agent with a NodeWatch over the fake clientset: a config that forgets the
// node's pod range sets masqd_node_pod_cidr_masqueraded to 1 and records a Warning Event on the Node; the
// fixed config sets it to 0; a new range on the Node is checked again. The kernel holds what the config says
// throughout: the check only warns.
func TestNodePodCIDRCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	replaceFile(t, path, "nonMasqueradeCIDRs: [10.0.0.0/16]\n")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "u1"},
		Spec:   corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"}},
		Status: corev1.NodeStatus{Capacity: corev1.ResourceList{}}}

	client := fake.NewClientset(node)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	k := &fakeKernel{}
	metrics := NewMetrics(prometheus.NewRegistry(), k)
	nw := NewNodeWatch(fakeAPI{client}, "node-1", log)
	a := New(Settings{ConfigPath: path, Backend: k, Log: log, Metrics: metrics, Node: nw})
	runAgent(t, a)
	series := func(cidr string, want float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := testutil.CollectAndCount(metrics.NodePodCIDRMasqueraded)
			if n == 1 && testutil.ToFloat64(metrics.NodePodCIDRMasqueraded.WithLabelValues(cidr)) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("masqd_node_pod_cidr_masqueraded: %d series, {cidr=%q} = %v; want only it, at %v", n, cidr,
					testutil.ToFloat64(metrics.NodePodCIDRMasqueraded.WithLabelValues(cidr)), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	events := func() []corev1.Event {
		t.Helper()
		list, err := client.CoreV1().Events(NodeEventNamespace).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}

	series("10.244.1.0/24", 1)
	deadline := time.Now().Add(10 * time.Second)
	for len(events()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no Event")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ev := events()[0]
	if ev.Type != corev1.EventTypeWarning || ev.Reason != ReasonPodCIDRMasqueraded || ev.InvolvedObject.Kind != "Node" ||
		ev.InvolvedObject.Name != "node-1" || ev.InvolvedObject.UID != "node-1" || ev.Source.Host != "node-1" ||
		!strings.Contains(ev.Message, "node node-1: its pod range 10.244.1.0/24 is masqueraded") ||
		!strings.Contains(ev.Message, "nonMasqueradeCIDRs or clusterCIDRs, or pass it with --cluster-cidr") {
		t.Errorf("Event: %s %s on %s %s (uid %s) from %s: %q", ev.Type, ev.Reason, ev.InvolvedObject.Kind,
			ev.InvolvedObject.Name, ev.InvolvedObject.UID, ev.Source.Host, ev.Message)
	}
	// The warning only warns: the kernel holds the config as written.
	if d := k.dump(); !strings.Contains(d, "10.0.0.0/16") || strings.Contains(d, "10.244.") {
		t.Errorf("the kernel:\n%s", d)
	}

	replaceFile(t, path, "nonMasqueradeCIDRs: [10.0.0.0/16]\nclusterCIDRs: [10.244.0.0/16]\n")
	series("10.244.1.0/24", 0)

	// A new range on the node: checked at once, without a config change.
	node.Spec.PodCIDRs, node.Spec.PodCIDR = []string{"10.245.1.0/24"}, "10.245.1.0/24"
	if _, err := client.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	series("10.245.1.0/24", 1)
	deadline = time.Now().Add(10 * time.Second)
	for len(events()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d Events, want 2 (one per masqueraded set)", len(events()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPodCIDRsOnly: the transform keeps a Node's name, UID, resource version and pod ranges, nothing else.
func TestPodCIDRsOnly(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", UID: "u", ResourceVersion: "7", Labels: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Spec:   corev1.NodeSpec{PodCIDR: "10.0.0.0/24", PodCIDRs: []string{"10.0.0.0/24", "2001:db8::/64"}, ProviderID: "x"},
		Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"i"}}}}}
	got, err := PodCIDRsOnly(n)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", UID: "u", ResourceVersion: "7"},
		Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24", PodCIDRs: []string{"10.0.0.0/24", "2001:db8::/64"}}}
	if g := got.(*corev1.Node); g.String() != want.String() {
		t.Errorf("PodCIDRsOnly:\n%v\nwant\n%v", g, want)
	}
}

// TestNodeWatchAbsentAndEmpty: a --node-name that names no Node is a warning, and a Node without
// spec.podCIDRs (a CNI with its own IPAM) is said once; neither has a masqd_node_pod_cidr_masqueraded series.
func TestNodeWatchAbsentAndEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	if err := os.WriteFile(path, []byte("nonMasqueradeCIDRs: [10.0.0.0/16]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	k := &fakeKernel{}
	metrics := NewMetrics(prometheus.NewRegistry(), k)
	a := New(Settings{ConfigPath: path, Backend: k, Log: log, Metrics: metrics, Node: NewNodeWatch(fakeAPI{client}, "node-9", log)})
	runAgent(t, a)
	waitLog := func(text string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), text) {
			if time.Now().After(deadline) {
				t.Fatalf("the log never says %q:\n%s", text, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitLog("there is no Node named by --node-name")
	if n := testutil.CollectAndCount(metrics.NodePodCIDRMasqueraded); n != 0 {
		t.Errorf("no Node: %d series, want none", n)
	}
	if _, err := client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-9"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLog("has no spec.podCIDRs, so there is nothing to check")
	if n := testutil.CollectAndCount(metrics.NodePodCIDRMasqueraded); n != 0 {
		t.Errorf("a Node without pod ranges: %d series, want none", n)
	}
	if strings.Contains(logs.String(), "kept non-masquerade") || strings.Contains(logs.String(), "is masqueraded") {
		t.Errorf("a verdict about no ranges:\n%s", logs.String())
	}
}
