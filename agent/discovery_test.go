package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

func podNode(name string, cidrs ...string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"big": "label"}},
		Spec:   corev1.NodeSpec{PodCIDRs: cidrs},
		Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"image"}}}}}
}

// TestDiscovery runs the agent with a Discovery over the fake clientset: the Nodes' pod ranges join the
// config's non-masquerade set, a burst of 90 added Nodes is a handful of applies, a deleted Node's range goes,
// and a status-only update of a Node applies nothing.
func TestDiscovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	text := "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [100.96.0.7/32]\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(podNode("n0", "100.96.0.0/24", "2001:db8::/64"), podNode("n1", "100.96.1.0/24"))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	k := &countingKernel{}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, k)
	metrics.RegisterDiscovery(reg)
	d := NewDiscovery(fakeAPI{client}, log)
	a := New(Settings{ConfigPath: path, NFT: ruleset.Options{RandomFully: true}, Backend: k, Log: log, Metrics: metrics, PodCIDRs: d})
	runAgent(t, a)
	cfg, _, err := config.Parse(path, []byte(text), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := func(n int) string { // the config with the ranges of nodes n0 … n(n-1)
		var pods []config.NodePodCIDR
		for i := range n {
			pods = append(pods, config.NodePodCIDR{Node: fmt.Sprint("n", i), Prefix: prefixOf(i)})
		}
		return ruleset.Compile(config.WithNodePodCIDRs(cfg, pods), ruleset.Options{RandomFully: true}).String()
	}
	waitDump := func(step, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for k.dump() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the Fake holds\n%s\nwant\n%s", step, k.dump(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitDump("listed", want(2))
	if d := k.dump(); !strings.Contains(d, "100.96.0.0-100.96.0.6,") || !strings.Contains(d, "100.96.0.8-100.96.1.255") {
		t.Errorf("masqueradeCIDRs do not cut into the discovered ranges:\n%s", d)
	}

	// A burst of Node additions, fewer than the fake clientset's watch buffers (100): past that its watch
	// panics when the informer drains it slower than the creates fill it.
	const burst = 90
	last := fmt.Sprint("n", 1+burst)
	before := k.applied()
	var wg sync.WaitGroup
	for i := 2; i < 2+burst; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := client.CoreV1().Nodes().Create(context.Background(), podNode(fmt.Sprint("n", i), prefixOf(i).String()), metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitDump("a burst of Nodes added", want(2+burst))
	if n := k.applied() - before; n < 1 || n > 10 {
		t.Errorf("%d Nodes added in a burst: %d applies, want 1 to 10 (coalesced)", burst, n)
	}
	if got := testutil.ToFloat64(metrics.DiscoveredPodCIDRs); got != 3+burst {
		t.Errorf("masqd_discovered_pod_cidrs = %v, want %d (IPv6 counted, not applied)", got, 3+burst)
	}

	before = k.applied()
	n := podNode("n5", prefixOf(5).String())
	n.Status.Phase = corev1.NodeRunning // the kubelet's status update: no change of pod ranges
	if _, err := client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Nodes().Delete(context.Background(), last, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDump(last+" deleted", want(1+burst))
	if n := k.applied() - before; n != 1 {
		t.Errorf("a status update and a delete: %d applies, want 1", n)
	}
}

// prefixOf is node i's pod range: 100.96.i.0/24 for i < 256, then 100.97.….
func prefixOf(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("100.%d.%d.0/24", 96+i/256, i%256))
}

// countingKernel is a fakeKernel that counts the applies that changed something.
type countingKernel struct {
	fakeKernel
	mu sync.Mutex
	n  int
}

func (k *countingKernel) Apply(d Desired) (ruleset.Change, error) {
	c, err := k.fakeKernel.Apply(d)
	if err == nil && c != ruleset.Unchanged {
		k.mu.Lock()
		k.n++
		k.mu.Unlock()
	}
	return c, err
}

func (k *countingKernel) applied() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}
