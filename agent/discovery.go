package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/masqd/masqd/config"
)

// PodCIDRSource gives every Node's pod ranges (--discover-pod-cidrs), which the agent adds to the config's
// pod ranges (config.WithNodePodCIDRs).
type PodCIDRSource interface {
	// Run watches the Nodes until ctx is done, calling changed after the first list and after changes,
	// coalesced: a burst of Node additions is one call.
	Run(ctx context.Context, changed func()) error
	// NodePodCIDRs returns every Node's pod ranges; ok is false until the first list.
	NodePodCIDRs() (pods []config.NodePodCIDR, ok bool)
}

// DiscoveryCoalesce is how long Discovery gathers Node changes after the first before the agent reconciles
// once: 5,000 Nodes added in a burst are a handful of applies, and a new node's range is in the kernel
// within about this long.
const DiscoveryCoalesce = 250 * time.Millisecond

// Discovery is a PodCIDRSource over the Kubernetes API: an informer over all Nodes whose store keeps only
// their names and pod ranges (PodCIDRsOnly), so that 5,000 Nodes cost the agent little memory. Only a change of
// a Node's pod ranges, an added or a deleted Node, counts as a change: the kubelet's status updates every 10
// s on every node do not. Create it with NewDiscovery.
type Discovery struct {
	log     *slog.Logger
	store   cache.Store
	ctrl    cache.Controller
	changed chan struct{}
	window  time.Duration
}

// NewDiscovery returns a Discovery of every Node's pod ranges. It watches nothing until Run.
func NewDiscovery(client NodeAPI, log *slog.Logger) *Discovery {
	d := &Discovery{log: log, changed: make(chan struct{}, 1), window: DiscoveryCoalesce}
	d.store, d.ctrl = podCIDRInformer(client, "", d.changed)
	return d
}

// Run watches the Nodes until ctx is done. After the first complete list it calls changed; after that, a
// change starts a window of DiscoveryCoalesce in which every other change joins it, and then changed is called
// once.
func (d *Discovery) Run(ctx context.Context, changed func()) error {
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(d.log.Handler()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.ctrl.RunWithContext(ctx)
	}()
	defer func() { <-done }()
	if !cache.WaitForCacheSync(ctx.Done(), d.ctrl.HasSynced) {
		return nil
	}
	pods, _ := d.NodePodCIDRs()
	d.log.Info("discovering the Nodes' pod ranges", "nodes", len(d.store.ListKeys()), "pod_cidrs", len(pods))
	select { // the list's own additions are in this first call
	case <-d.changed:
	default:
	}
	changed()
	window := time.NewTimer(0)
	<-window.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.changed:
		}
		window.Reset(d.window)
		select {
		case <-ctx.Done():
			return nil
		case <-window.C:
		}
		select { // what came during the window is in this call
		case <-d.changed:
		default:
		}
		changed()
	}
}

// NodePodCIDRs returns every Node's pod ranges, in no particular order; a range that does not parse is left
// out (and logged). ok is false until the first list.
func (d *Discovery) NodePodCIDRs() ([]config.NodePodCIDR, bool) {
	if !d.ctrl.HasSynced() {
		return nil, false
	}
	var out []config.NodePodCIDR
	for _, obj := range d.store.List() {
		n, ok := obj.(*corev1.Node)
		if !ok {
			continue
		}
		pods, err := ParsePodCIDRs(n)
		if err != nil {
			d.log.Warn("ignoring a Node's pod ranges", "err", err)
			continue
		}
		for _, p := range pods {
			out = append(out, config.NodePodCIDR{Node: n.Name, Prefix: p})
		}
	}
	return out, true
}
