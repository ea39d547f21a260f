package agent

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeAPI is what the ConfigMap source needs of the Kubernetes API (NodeAPI is what --node-name needs): to list and watch the ConfigMaps of a
// namespace, and to create and patch Events. NewKubeClient returns one for a real cluster.
type KubeAPI interface {
	ListConfigMaps(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.ConfigMapList, error)
	WatchConfigMaps(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	// CreateEvent creates e in e.Namespace.
	CreateEvent(ctx context.Context, e *corev1.Event) error
	// PatchEvent applies a JSON merge patch to the Event namespace/name.
	PatchEvent(ctx context.Context, namespace, name string, patch []byte) error
}

// KubeClient is a KubeAPI over HTTP: a REST client for the core/v1 API group that knows only the types masqd
// reads and writes (ConfigMaps and Events). client-go's Clientset would register every API group's types and
// clients, most of masqd's memory for nothing. It is safe for concurrent use.
type KubeClient struct {
	rest   *rest.RESTClient
	params runtime.ParameterCodec
}

// NewKubeClient returns a client for the cluster: from the kubeconfig file when one is named, else from the
// ServiceAccount a pod is given (rest.ErrNotInCluster outside a pod). userAgent names masqd to the apiserver.
func NewKubeClient(kubeconfig, userAgent string) (*KubeClient, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cfg.UserAgent = userAgent
	cfg.ContentType = runtime.ContentTypeProtobuf
	scheme, err := coreScheme()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &KubeClient{rest: rc, params: runtime.NewParameterCodec(scheme)}, nil
}

// coreScheme knows the core/v1 types (ConfigMaps, Events) and the meta/v1 ones the API wraps them in (lists,
// watch events, options, Status).
func coreScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *KubeClient) ListConfigMaps(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.ConfigMapList, error) {
	list := &corev1.ConfigMapList{}
	err := c.rest.Get().Namespace(namespace).Resource("configmaps").VersionedParams(&opts, c.params).
		Do(ctx).Into(list)
	return list, err
}

func (c *KubeClient) WatchConfigMaps(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rest.Get().Namespace(namespace).Resource("configmaps").VersionedParams(&opts, c.params).Watch(ctx)
}

// CreateEvent and PatchEvent are the core/v1 events API, the one RBAC's create and patch on events allow.

func (c *KubeClient) CreateEvent(ctx context.Context, e *corev1.Event) error {
	return c.rest.Post().Namespace(e.Namespace).Resource("events").Body(e).Do(ctx).Error()
}

func (c *KubeClient) PatchEvent(ctx context.Context, namespace, name string, patch []byte) error {
	return c.rest.Patch(types.MergePatchType).Namespace(namespace).Resource("events").Name(name).Body(patch).
		Do(ctx).Error()
}

func (c *KubeClient) ListNodes(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error) {
	list := &corev1.NodeList{}
	err := c.rest.Get().Resource("nodes").VersionedParams(&opts, c.params).Do(ctx).Into(list)
	return list, err
}

func (c *KubeClient) WatchNodes(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rest.Get().Resource("nodes").VersionedParams(&opts, c.params).Watch(ctx)
}

// GetNode reads one Node (masqd check --node).
func (c *KubeClient) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	n := &corev1.Node{}
	err := c.rest.Get().Resource("nodes").Name(name).Do(ctx).Into(n)
	return n, err
}
