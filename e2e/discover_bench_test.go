//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/masqd/masqd/internal/testenv"
)

// benchNodes is how many Node objects BenchmarkKubeDiscoverPodCIDRs creates: the 5,000.
const benchNodes = 5000

// benchNodeRange is node i's pod range: every other /24 of 100.64.0.0/10, so that no two merge and the
// kernel's set holds one interval per node (the worst case: an IPAM that allocates in order merges them).
func benchNodeRange(i int) netip.Prefix {
	base := netip.MustParseAddr("100.64.0.0").As4()
	n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(i*2)<<8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), 0}), 24)
}

// benchNode is a Node as a kubelet registers it, with the status a real node carries (conditions, addresses,
// capacity, node info, images), so that the list and the watch events have a real Node's size.
func benchNode(i int) *corev1.Node {
	name := fmt.Sprintf("bench-node-%05d", i)
	qty := func(s string) resource.Quantity { return resource.MustParse(s) }
	res := corev1.ResourceList{corev1.ResourceCPU: qty("8"), corev1.ResourceMemory: qty("32Gi"),
		corev1.ResourcePods: qty("110"), corev1.ResourceEphemeralStorage: qty("100Gi")}
	var images []corev1.ContainerImage
	for j := range 12 {
		images = append(images, corev1.ContainerImage{SizeBytes: 50_000_000 + int64(j),
			Names: []string{fmt.Sprintf("registry.example/team/image-%02d@sha256:%064x", j, j), fmt.Sprintf("registry.example/team/image-%02d:v1.%d.0", j, j)}})
	}
	var conds []corev1.NodeCondition
	for _, c := range []string{"MemoryPressure", "DiskPressure", "PIDPressure", "Ready", "NetworkUnavailable"} {
		conds = append(conds, corev1.NodeCondition{Type: corev1.NodeConditionType(c), Status: corev1.ConditionFalse,
			Reason: "Kubelet" + c, Message: "kubelet reports " + c, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()})
	}
	pods := benchNodeRange(i).String()
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"node.kubernetes.io/instance-type": "n2-standard-8", "topology.kubernetes.io/region": "europe-west1",
			"topology.kubernetes.io/zone": "europe-west1-b", "cloud.google.com/gke-nodepool": "pool-1",
		}, Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
		Spec: corev1.NodeSpec{PodCIDR: pods, PodCIDRs: []string{pods}, ProviderID: "gce://project/europe-west1-b/" + name},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res, Conditions: conds, Images: images,
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.128.%d.%d", i/250, i%250+2)},
				{Type: corev1.NodeHostName, Address: name}},
			NodeInfo: corev1.NodeSystemInfo{MachineID: fmt.Sprintf("%032x", i), SystemUUID: fmt.Sprintf("%032x", i),
				BootID: fmt.Sprintf("%032x", i+1), KernelVersion: "6.1.0-18-cloud-amd64", OSImage: "Debian GNU/Linux 12 (bookworm)",
				ContainerRuntimeVersion: "containerd://1.7.13", KubeletVersion: "v1.37.0", KubeProxyVersion: "", OperatingSystem: "linux", Architecture: "amd64"}},
	}
}

// BenchmarkKubeDiscoverPodCIDRs is the cost of --discover-pod-cidrs at 5,000 Nodes on a real kube-apiserver:
// the agent runs with discovery (the admin's kubeconfig; RBAC aside) while 5,000 Node objects, each with a
// real Node's status and its own /24, are created in a burst (32 clients in parallel). It reports the agent's
// RSS before and after (settled), the kernel commits to masqd's table from the burst's start until the last
// node's range is in the kernel and the agent has settled, that time, and the apiserver's side: the bytes of a
// full Node list (protobuf, as masqd asks, and JSON), the watch events and bytes it sent for Nodes
// (apiserver_watch_events_total and apiserver_watch_events_sizes), and the time of a full list. Run with
// -benchtime=1x: one burst; it competes for the CPU with everything else on the machine.
func BenchmarkKubeDiscoverPodCIDRs(b *testing.B) {
	testenv.RequireKernel(b)
	lab := newLab(b, labOptions{})
	cp := startControlPlane(b, lab.Node, kubeTools(b), lab.NodeIP.String())
	ch := commits(b, lab.Node)
	file := writeConfig(b, "nonMasqueradeCIDRs: [10.0.0.0/8]\n")
	a := startAgent(b, lab.Node, 9745, "--config="+file, "--configmap=", "--kubeconfig="+cp.AdminKubeconfig,
		"--discover-pod-cidrs", "--log-level=warn")
	nextCommit(b, ch, "first apply")
	a.waitStatus("/readyz", 200)
	waitFor(b, kubeDeadline, "the Nodes listed", func() error {
		if !strings.Contains(metricsText(b, a), "masqd_discovered_pod_cidrs 0") {
			return fmt.Errorf("masqd_discovered_pod_cidrs is not 0 yet")
		}
		return nil
	})
	pid := a.cmd.Process.Pid
	settle(b, pid)
	rss0, cpu0, _, err := procStats(pid)
	if err != nil {
		b.Fatal(err)
	}
	events0, bytes0, _ := watchEvents(b, cp)
	heap0 := metricValue(b, a, "go_memstats_heap_inuse_bytes")

	iter := 0
	for b.Loop() {
		if iter++; iter > 1 {
			b.Fatal("run with -benchtime=1x: the 5,000 Nodes exist after the first burst")
		}
		for drained := false; !drained; { // commits before the burst are not its
			select {
			case <-ch:
			default:
				drained = true
			}
		}
		var applies atomic.Int64
		stop := make(chan struct{})
		counted := make(chan struct{})
		go func() {
			defer close(counted)
			for {
				select {
				case <-stop:
					return
				case _, ok := <-ch:
					if !ok {
						return
					}
					applies.Add(1)
				}
			}
		}()
		start := time.Now()
		createNodes(b, cp.Admin, benchNodes, 32)
		created := time.Since(start)
		waitFor(b, 120*time.Second, "every node's range in the kernel", func() error {
			// The agent's count first (cheap), then the kernel's set (5,000 elements to list).
			if want := fmt.Sprintf("masqd_discovered_pod_cidrs %d\n", benchNodes); !strings.Contains(metricsText(b, a), want) {
				return fmt.Errorf("the agent has not read the %d ranges yet", benchNodes)
			}
			out, err := lab.Node.RunErr("nft", "list", "set", "inet", "masqd", "nonmasq4")
			if err != nil {
				return err
			}
			if n := strings.Count(out, "/24"); n != benchNodes { // every node range is a /24, nothing else in the set
				return fmt.Errorf("%d of %d ranges in the kernel", n, benchNodes)
			}
			return nil
		})
		inKernel := time.Since(start)
		settle(b, pid)
		close(stop)
		<-counted
		rss1, cpu1, _, err := procStats(pid)
		if err != nil {
			b.Fatal(err)
		}
		events1, bytes1, watchers := watchEvents(b, cp)
		heap1 := metricValue(b, a, "go_memstats_heap_inuse_bytes")
		protoList, protoTime := listBytes(b, cp, "application/vnd.kubernetes.protobuf")
		jsonList, _ := listBytes(b, cp, "application/json")
		b.ReportMetric(float64(rss0)/1024, "RSS-before-MiB")
		b.ReportMetric(float64(rss1)/1024, "RSS-after-MiB")
		b.ReportMetric(float64(rss1-rss0)/1024, "RSS-growth-MiB")
		b.ReportMetric(float64((cpu1 - cpu0).Milliseconds()), "agent-CPU-ms")
		b.ReportMetric((heap1-heap0)/(1<<20), "heap-inuse-growth-MiB")
		b.ReportMetric(watchers, "node-watches-open")
		b.ReportMetric(float64(applies.Load()), "applies")
		b.ReportMetric(created.Seconds(), "create-burst-s")
		b.ReportMetric(inKernel.Seconds(), "last-range-in-kernel-s")
		b.ReportMetric(float64(protoList)/(1<<20), "node-list-protobuf-MiB")
		b.ReportMetric(float64(jsonList)/(1<<20), "node-list-JSON-MiB")
		b.ReportMetric(float64(protoTime.Milliseconds()), "node-list-ms")
		b.ReportMetric(events1-events0, "node-watch-events")
		if events1 > events0 {
			b.ReportMetric((bytes1-bytes0)/(events1-events0), "B/node-watch-event")
		}
	}
}

// metricsText returns the agent's /metrics as text.
func metricsText(b *testing.B, a *agentProc) string {
	b.Helper()
	code, body, err := a.get("/metrics")
	if err != nil || code != 200 {
		b.Fatalf("GET /metrics: %d %v", code, err)
	}
	return body
}

// createNodes creates nodes 0 … n-1 (benchNode) with workers clients in parallel.
func createNodes(b *testing.B, c kubernetes.Interface, n, workers int) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if _, err := c.CoreV1().Nodes().Create(context.Background(), benchNode(i), metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("node %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// listBytes lists every Node in one request (no chunking) in contentType and returns the body's size and
// the request's time.
func listBytes(b *testing.B, cp *controlPlane, contentType string) (int, time.Duration) {
	b.Helper()
	c := cp.clientAs(cp.adminToken, contentType)
	start := time.Now()
	body, err := c.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes").SetHeader("Accept", contentType).DoRaw(context.Background())
	if err != nil {
		b.Fatalf("list nodes as %s: %v", contentType, err)
	}
	return len(body), time.Since(start)
}

// metricValue returns the agent's unlabelled sample name.
func metricValue(b *testing.B, a *agentProc, name string) float64 {
	b.Helper()
	for _, line := range strings.Split(metricsText(b, a), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	b.Fatalf("no %s in the agent's /metrics", name)
	return 0
}

// watchEvents returns the apiserver's count and total size of the watch events it sent for Nodes, and how
// many watches of Nodes are open (apiserver_longrunning_requests).
func watchEvents(b *testing.B, cp *controlPlane) (events, size, watches float64) {
	b.Helper()
	body, err := cp.Admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatalf("apiserver /metrics: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `resource="nodes"`) || !strings.Contains(line, `group=""`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "apiserver_watch_events_total{"):
			events += v
		case strings.HasPrefix(line, "apiserver_watch_events_sizes_sum{"):
			size += v
		case strings.HasPrefix(line, "apiserver_longrunning_requests{") && strings.Contains(line, `verb="WATCH"`):
			watches += v
		}
	}
	return events, size, watches
}
