package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// NodeSource tells the agent this node's pod ranges (--node-name) and hears what the ruleset does to them.
type NodeSource interface {
	// Run watches the node until ctx is done, calling changed after the first list and after every change
	// of its pod ranges.
	Run(ctx context.Context, changed func()) error
	// PodCIDRs returns the node's pod ranges (spec.podCIDRs, else spec.podCIDR). ok is false until the node
	// has been read, and while it does not exist.
	PodCIDRs() (cidrs []netip.Prefix, ok bool)
	// Report tells which of them the ruleset the agent applies masquerades as destinations; none when all
	// are kept. The agent calls it after every reconcile that has a ruleset; only a change is news.
	Report(masqueraded []netip.Prefix, ranges map[netip.Prefix]string)
}

// NodeAPI is what NodeWatch needs of the Kubernetes API: to list and watch Nodes, and to create and patch
// Events. *KubeClient is one.
type NodeAPI interface {
	ListNodes(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error)
	WatchNodes(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	CreateEvent(ctx context.Context, e *corev1.Event) error
	PatchEvent(ctx context.Context, namespace, name string, patch []byte) error
}

// NodeEventNamespace is where the Events about the Node go: the apiserver accepts an Event about a
// cluster-scoped object in the namespace default only. RBAC: create and patch on events there.
const NodeEventNamespace = metav1.NamespaceDefault

// ReasonPodCIDRMasqueraded is the reason of the Warning Event masqd records on its Node when the config
// masquerades traffic to the node's own pod range.
const ReasonPodCIDRMasqueraded = "PodCIDRMasqueraded"

// NodeWatch is a NodeSource over the Kubernetes API: a list and watch of the one Node named (a field
// selector on metadata.name), keeping only its name and pod ranges. It records a Warning Event on the Node
// each time the set of its masqueraded pod ranges becomes a new non-empty one. Create it with NewNodeWatch.
type NodeWatch struct {
	client  NodeAPI
	name    string
	log     *slog.Logger
	store   cache.Store
	ctrl    cache.Controller
	changed chan struct{}
	events  chan string // Event messages, posted by Run

	mu       sync.Mutex
	reported string // the masqueraded set last reported, to post only news
}

// NewNodeWatch returns a watch of the Node name. It watches nothing until Run.
func NewNodeWatch(client NodeAPI, name string, log *slog.Logger) *NodeWatch {
	w := &NodeWatch{client: client, name: name, log: log,
		changed: make(chan struct{}, 1), events: make(chan string, eventQueue)}
	w.store, w.ctrl = podCIDRInformer(client, fields.OneTermEqualSelector("metadata.name", name).String(), w.changed)
	return w
}

// podCIDRInformer lists and watches the Nodes that fieldSelector selects (all when empty), keeping of each only
// what PodCIDRsOnly keeps, and sends on changed (without blocking: one pending signal is enough) when a Node
// is added or deleted or its pod ranges change; the kubelet's status updates are not changes.
func podCIDRInformer(client NodeAPI, fieldSelector string, changed chan struct{}) (cache.Store, cache.Controller) {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fieldSelector
			return client.ListNodes(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fieldSelector
			return client.WatchNodes(ctx, o)
		},
	}
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	return cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, client),
		ObjectType:    &corev1.Node{},
		Transform:     PodCIDRsOnly,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { notify() },
			UpdateFunc: func(old, cur any) {
				o, ok1 := old.(*corev1.Node)
				c, ok2 := cur.(*corev1.Node)
				if !ok1 || !ok2 || !slices.Equal(nodePodCIDRs(o), nodePodCIDRs(c)) {
					notify()
				}
			},
			DeleteFunc: func(any) { notify() },
		},
	})
}

// PodCIDRsOnly is the informers' transform: it keeps of a Node its name, UID and pod ranges, and drops the
// rest (status, labels, annotations, managedFields), which is most of a Node's size.
func PodCIDRsOnly(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown: kept as it is
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion},
		Spec:       corev1.NodeSpec{PodCIDR: n.Spec.PodCIDR, PodCIDRs: n.Spec.PodCIDRs},
	}, nil
}

// nodePodCIDRs are a Node's pod ranges as written: spec.podCIDRs, else spec.podCIDR.
func nodePodCIDRs(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

// ParsePodCIDRs parses a Node's pod ranges. A range that does not parse is an error naming the node.
func ParsePodCIDRs(n *corev1.Node) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range nodePodCIDRs(n) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("node %s: spec.podCIDRs: %w", n.Name, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Name is the node's name.
func (w *NodeWatch) Name() string { return w.name }

// Run watches the Node until ctx is done, and posts the Events Report queues.
func (w *NodeWatch) Run(ctx context.Context, changed func()) error {
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(w.log.Handler()))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		w.ctrl.RunWithContext(ctx)
		return nil
	})
	g.Go(func() error { return w.postEvents(ctx) })
	g.Go(func() error {
		if !cache.WaitForCacheSync(ctx.Done(), w.ctrl.HasSynced) {
			return nil
		}
		w.log.Info("watching this node's pod ranges", "node", w.name)
		if _, exists, _ := w.store.GetByKey(w.name); !exists {
			w.log.Warn("there is no Node named by --node-name (is it $(NODE_NAME), the pod's spec.nodeName?); "+
				"its pod ranges are checked once it exists", "node", w.name)
		}
		changed()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-w.changed:
				changed()
			}
		}
	})
	return g.Wait()
}

// PodCIDRs returns the node's pod ranges; ok is false before the first list and while the node is absent
// or has a range that does not parse (logged).
func (w *NodeWatch) PodCIDRs() ([]netip.Prefix, bool) {
	if !w.ctrl.HasSynced() {
		return nil, false
	}
	obj, exists, err := w.store.GetByKey(w.name)
	if err != nil || !exists {
		return nil, false
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return nil, false
	}
	pods, err := ParsePodCIDRs(n)
	if err != nil {
		w.log.Warn("cannot read this node's pod ranges", "err", err)
		return nil, false
	}
	return pods, true
}

// Report queues a Warning Event on the Node when masqueraded is a new non-empty set; ranges says, for each,
// which addresses are masqueraded. It never blocks.
func (w *NodeWatch) Report(masqueraded []netip.Prefix, ranges map[netip.Prefix]string) {
	key := fmt.Sprint(masqueraded)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(masqueraded) == 0 {
		w.reported = "" // all is well: the next warning is news
		return
	}
	if key == w.reported {
		return
	}
	w.reported = key
	select {
	case w.events <- PodCIDRMessage(w.name, masqueraded, ranges):
	default:
		w.log.Warn("too many Events waiting to be sent; dropping one", "reason", ReasonPodCIDRMasqueraded, "node", w.name)
	}
}

// PodCIDRMessage says that node's pod ranges masqueraded are masqueraded, and how to fix it: the log's, the
// Event's and check's words.
func PodCIDRMessage(node string, masqueraded []netip.Prefix, ranges map[netip.Prefix]string) string {
	parts := make([]string, len(masqueraded))
	for i, p := range masqueraded {
		parts[i] = p.String()
		if r := ranges[p]; r != "" && r != p.String() {
			parts[i] += " (" + r + ")"
		}
	}
	what := "range " + parts[0] + " is"
	if len(parts) > 1 {
		what = "ranges " + strings.Join(parts, ", ") + " are"
	}
	return fmt.Sprintf("node %s: its pod %s masqueraded by the config: pods on other nodes reach its pods with "+
		"their node's address, which breaks NetworkPolicy and source allow lists; add the range to "+
		"nonMasqueradeCIDRs or clusterCIDRs, or pass it with --cluster-cidr", node, what)
}

// postEvents posts the queued Events until ctx is done; a failure is logged, not retried.
func (w *NodeWatch) postEvents(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg := <-w.events:
			if err := w.post(ctx, msg); err != nil {
				w.log.Warn("cannot post an Event", "reason", ReasonPodCIDRMasqueraded, "node", w.name, "err", err)
			}
		}
	}
}

// post creates the Event, or raises its count when this node posted the same one before. Its involved
// object is the Node with the node's name as UID, as the kubelet's Events have it: kubectl describe node
// looks them up so. The apiserver takes an Event about a cluster-scoped object only in the namespace
// default (NodeEventNamespace).
func (w *NodeWatch) post(ctx context.Context, msg string) error {
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage-3] + "..."
	}
	on := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: w.name, UID: types.UID(w.name)}} // for eventName
	name := eventName(event{on: on, reason: ReasonPodCIDRMasqueraded, message: msg}, w.name)
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: NodeEventNamespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: w.name, UID: types.UID(w.name)},
		Reason:         ReasonPodCIDRMasqueraded, Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: EventComponent, Host: w.name},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	err := w.client.CreateEvent(ctx, ev)
	if apierrors.IsAlreadyExists(err) { // the same warning again, after a fix in between or a restart
		patch := fmt.Appendf(nil, `{"lastTimestamp":%q}`, now.UTC().Format(time.RFC3339))
		return w.client.PatchEvent(ctx, NodeEventNamespace, name, patch)
	}
	return err
}
