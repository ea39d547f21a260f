package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/masqd/masqd/config"
)

// ConfigMapRef names one ConfigMap.
type ConfigMapRef struct {
	Namespace, Name string
}

// DefaultConfigMap is the ConfigMap ip-masq-agent reads.
func DefaultConfigMap() ConfigMapRef {
	return ConfigMapRef{Namespace: config.ConfigMapNamespace, Name: config.ConfigMapName}
}

func (r ConfigMapRef) String() string { return r.Namespace + "/" + r.Name }

// ParseConfigMapRef parses NAMESPACE/NAME.
func ParseConfigMapRef(s string) (ConfigMapRef, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		return ConfigMapRef{}, fmt.Errorf("configmap %q: want NAMESPACE/NAME, such as %s", s, DefaultConfigMap())
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return ConfigMapRef{}, fmt.Errorf("configmap %q: namespace: %s", s, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return ConfigMapRef{}, fmt.Errorf("configmap %q: name: %s", s, strings.Join(errs, "; "))
	}
	return ConfigMapRef{Namespace: ns, Name: name}, nil
}

// ConfigMapSource is a ConfigSource that watches one or more ConfigMaps through the Kubernetes API and
// reports what became of them as Events on the ConfigMaps. Each watch is a list and watch of a single object
// (a field selector on metadata.name), so the RBAC it needs is get, list and watch on configmaps limited by
// resourceNames, plus create and patch on events.
//
// Load has nothing to say (ok false) until every watch has listed once; after that it answers from the
// watches' caches, which keep the last state seen while the API is unreachable. Create it with
// NewConfigMapSource; its methods are safe for concurrent use.
type ConfigMapSource struct {
	client  KubeAPI
	node    string
	log     *slog.Logger
	watches []*cmWatch
	changed chan struct{} // signalled by the watch handlers; Run forwards it to its caller
	events  chan event    // Report's warnings, posted by Run

	// grace is how long a deleted ConfigMap's config stays in force before the defaults apply
	// (DeleteGrace); now is the clock that measures it.
	grace time.Duration
	now   func() time.Time

	mu         sync.Mutex
	lastLoad   loaded
	lastReport string // the warning the last Report queued, so that only a new one becomes an Event
}

// cmWatch is the informer of one ConfigMap.
type cmWatch struct {
	ref   ConfigMapRef
	store cache.Store
	ctrl  cache.Controller
	// gone is the ConfigMap as last seen before its deletion, and goneAt when the deletion was seen; nil
	// while it exists. Guarded by ConfigMapSource.mu.
	gone   *corev1.ConfigMap
	goneAt time.Time
	// last is the ConfigMap the last Load read, so that a Load that finds it gone before the watch's delete
	// handler has run starts the grace too. Guarded by ConfigMapSource.mu.
	last *corev1.ConfigMap
}

// DeleteGrace is how long the config of a deleted ConfigMap stays in force before masqd applies the
// defaults, as ip-masq-agent does once the kubelet empties its volume. A ConfigMap deleted and created again
// within it (kubectl replace --force, a delete and apply of a manifest) goes from the old config to the new
// one without the defaults in between, which would masquerade, for a moment, every range the config keeps.
const DeleteGrace = 5 * time.Second

// loaded is what one Load read, kept for Report.
type loaded struct {
	objs    []*corev1.ConfigMap // the ConfigMaps present, in --configmap order
	err     error               // Load's error
	errFrom *corev1.ConfigMap   // the ConfigMap err is about; nil when err is nil
	cfg     config.Config
}

// NewConfigMapSource returns a source for refs (at least one), merged in that order. node names this node in
// the Events it records. It watches nothing until Run.
func NewConfigMapSource(client KubeAPI, refs []ConfigMapRef, node string, log *slog.Logger) (*ConfigMapSource, error) {
	s := &ConfigMapSource{client: client, node: node, log: log, changed: make(chan struct{}, 1),
		events: make(chan event, eventQueue), grace: DeleteGrace, now: time.Now}
	notify := s.notify
	for _, ref := range refs {
		only := fields.OneTermEqualSelector("metadata.name", ref.Name).String()
		lw := &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = only
				return client.ListConfigMaps(ctx, ref.Namespace, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = only
				return client.WatchConfigMaps(ctx, ref.Namespace, o)
			},
		}
		w := &cmWatch{ref: ref}
		w.store, w.ctrl = cache.NewInformerWithOptions(cache.InformerOptions{
			// The fake clientset of the tests cannot stream a watch's initial list; a real one can.
			ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, client),
			ObjectType:    &corev1.ConfigMap{},
			Handler: cache.ResourceEventHandlerFuncs{
				AddFunc: func(any) {
					s.mu.Lock()
					w.gone = nil
					s.mu.Unlock()
					notify()
				},
				UpdateFunc: func(any, any) { notify() },
				DeleteFunc: func(obj any) {
					if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
						obj = t.Obj
					}
					if cm, ok := obj.(*corev1.ConfigMap); ok {
						s.mu.Lock()
						w.gone, w.goneAt = cm, s.now()
						s.mu.Unlock()
						time.AfterFunc(s.grace, notify) // then the defaults, unless it is back
					}
					notify()
				},
			},
		})
		s.watches = append(s.watches, w)
	}
	return s, nil
}

// Run watches the ConfigMaps until ctx is done, calling changed after the first complete list and after
// every change. A watch that breaks (apiserver restart, network) is listed and watched again with backoff.
// Run also posts the Events that Report queues.
func (s *ConfigMapSource) Run(ctx context.Context, changed func()) error {
	// client-go logs through klog; give it masqd's logger.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(s.log.Handler()))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.postEvents(ctx) })
	synced := make([]cache.InformerSynced, len(s.watches))
	for i, w := range s.watches {
		synced[i] = w.ctrl.HasSynced
		g.Go(func() error {
			w.ctrl.RunWithContext(ctx)
			return nil
		})
	}
	g.Go(func() error {
		if !cache.WaitForCacheSync(ctx.Done(), synced...) {
			return nil // ctx done
		}
		s.log.Info("watching the Kubernetes API for the config", "configmaps", s.refNames())
		changed()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-s.changed:
				changed()
			}
		}
	})
	return g.Wait()
}

// notify tells Run that a ConfigMap changed; it never blocks.
func (s *ConfigMapSource) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *ConfigMapSource) refNames() []string {
	names := make([]string, len(s.watches))
	for i, w := range s.watches {
		names[i] = w.ref.String()
	}
	return names
}

// Load returns the merged config of the ConfigMaps. ok is false until every watch has listed once. A
// ConfigMap deleted less than DeleteGrace ago is read as it was, with a warning.
func (s *ConfigMapSource) Load(opts config.Options) (cfg config.Config, warnings []config.Warning, ok bool, err error) {
	objs := make([]*corev1.ConfigMap, len(s.watches))
	var graced []config.Warning
	for i, w := range s.watches {
		if !w.ctrl.HasSynced() {
			return config.Config{}, nil, false, nil
		}
		obj, exists, err := w.store.GetByKey(w.ref.String())
		if err != nil { // the store's own key function failed: not a config problem
			return config.Config{}, nil, false, nil
		}
		s.mu.Lock()
		if exists {
			objs[i] = obj.(*corev1.ConfigMap)
			w.last = objs[i]
			s.mu.Unlock()
			continue
		}
		if w.gone == nil && w.last != nil { // deleted, and the delete handler has not run yet
			w.gone, w.goneAt = w.last, s.now()
			time.AfterFunc(s.grace, s.notify)
		}
		w.last = nil
		if w.gone != nil && s.now().Sub(w.goneAt) < s.grace {
			objs[i] = w.gone
			graced = append(graced, config.Warning{Source: config.Source{File: "configmap " + w.ref.String()},
				Msg: fmt.Sprintf("the ConfigMap was deleted; its config stays for %s in case it is created again, then the defaults apply", s.grace)})
		}
		s.mu.Unlock()
	}
	cfg, warnings, failed, err := parseConfigMaps(s.refsOf(), objs, opts)
	warnings = append(graced, warnings...)
	l := loaded{err: err, cfg: cfg}
	for i, o := range objs {
		if o != nil {
			l.objs = append(l.objs, o)
		}
		if err != nil && i == failed {
			l.errFrom = o
		}
	}
	s.mu.Lock()
	s.lastLoad = l
	s.mu.Unlock()
	return cfg, warnings, true, err
}

func (s *ConfigMapSource) refsOf() []ConfigMapRef {
	refs := make([]ConfigMapRef, len(s.watches))
	for i, w := range s.watches {
		refs[i] = w.ref
	}
	return refs
}

// parseConfigMaps parses the ConfigMaps objs (nil where one is absent) named by refs and merges them in order.
// Absent ConfigMaps are left out, as missing files are from a directory; when all are absent the config is
// the defaults. On error, failed is the index of the ConfigMap at fault.
func parseConfigMaps(refs []ConfigMapRef, objs []*corev1.ConfigMap, opts config.Options) (cfg config.Config, warnings []config.Warning, failed int, err error) {
	var cfgs []config.Config
	var at []int // the index in objs of each of cfgs
	for i, obj := range objs {
		if obj == nil {
			continue
		}
		at = append(at, i)
		file, data, ws := configData(refs[i], obj)
		warnings = append(warnings, ws...)
		c, ws, err := config.Parse(file, data, opts)
		if err != nil {
			return config.Config{}, nil, i, err
		}
		warnings = append(warnings, ws...)
		cfgs = append(cfgs, c)
	}
	if len(cfgs) == 0 {
		cfg, ws, err := config.Parse("", nil, opts)
		return cfg, append(warnings, ws...), 0, err
	}
	if err := config.Conflicts(cfgs...); err != nil {
		failed = at[len(at)-1]
		var e *config.Error
		if errors.As(err, &e) {
			for j, c := range cfgs {
				if slices.Contains(c.Files, e.Source.File) {
					failed = at[j]
				}
			}
		}
		return config.Config{}, nil, failed, err
	}
	return config.Merge(cfgs...), warnings, 0, nil
}

// configData picks the data key of a ConfigMap: config.ConfigMapKey, else config.ConfigMapAltKey. file names the ConfigMap and key
// in errors and warnings ("configmap kube-system/ip-masq-agent key config"). A ConfigMap with neither key
// reads as an empty file (the defaults), with a warning.
func configData(ref ConfigMapRef, cm *corev1.ConfigMap) (file string, data []byte, warnings []config.Warning) {
	name := "configmap " + ref.String()
	for _, key := range []string{config.ConfigMapKey, config.ConfigMapAltKey} {
		v, ok := cm.Data[key]
		if !ok {
			continue
		}
		file = name + " key " + key
		if _, both := cm.Data[config.ConfigMapAltKey]; key == config.ConfigMapKey && both {
			warnings = append(warnings, config.Warning{Source: config.Source{File: name}, Key: config.ConfigMapAltKey,
				Msg: fmt.Sprintf("ignored: key %q is read when both are present; remove one", config.ConfigMapKey)})
		}
		return file, []byte(v), warnings
	}
	return name, nil, []config.Warning{{Source: config.Source{File: name}, Key: config.ConfigMapKey,
		Msg: fmt.Sprintf("the ConfigMap has neither key %q nor %q; using the defaults", config.ConfigMapKey, config.ConfigMapAltKey)}}
}
