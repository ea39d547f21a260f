package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

func TestParseConfigMapRef(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    ConfigMapRef
		wantErr string
	}{
		{in: "kube-system/ip-masq-agent", want: ConfigMapRef{"kube-system", "ip-masq-agent"}},
		{in: "ns/a.b-c", want: ConfigMapRef{"ns", "a.b-c"}},
		{in: "ip-masq-agent", wantErr: "want NAMESPACE/NAME"},
		{in: "/ip-masq-agent", wantErr: "namespace"},
		{in: "kube-system/", wantErr: "name"},
		{in: "Kube-System/x", wantErr: "namespace"},
		{in: "a/b/c", wantErr: "name"},
	} {
		got, err := ParseConfigMapRef(c.in)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseConfigMapRef(%q) = %v, %v; want an error about %q", c.in, got, err, c.wantErr)
			}
		case err != nil || got != c.want:
			t.Errorf("ParseConfigMapRef(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func configMap(ns, name, uid string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)},
		Data:       data,
	}
}

// summary is what the tests compare of a Config: prefixes as text, and where each came from.
type summary struct {
	NonMasq, Masq []string
	Files         []string
}

func summarize(c config.Config) summary {
	var s summary
	for _, p := range c.NonMasqueradeCIDRs {
		s.NonMasq = append(s.NonMasq, p.Prefix.String()+" @ "+p.Source.String())
	}
	for _, p := range c.MasqueradeCIDRs {
		s.Masq = append(s.Masq, p.Prefix.String()+" @ "+p.Source.String())
	}
	s.Files = c.Files
	return s
}

func TestParseConfigMaps(t *testing.T) {
	user := ConfigMapRef{"kube-system", "ip-masq-agent"}
	platform := ConfigMapRef{"kube-system", "ip-masq-agent-reconciled"}
	for _, c := range []struct {
		name       string
		refs       []ConfigMapRef
		objs       []*corev1.ConfigMap
		want       summary
		wantWarn   []string
		wantErr    string
		wantFailed int
	}{
		{
			name: "absent gives the defaults",
			refs: []ConfigMapRef{user},
			objs: []*corev1.ConfigMap{nil},
			want: summary{NonMasq: []string{"10.0.0.0/8 @ default", "172.16.0.0/12 @ default", "192.168.0.0/16 @ default"}},
		},
		{
			name: "key config",
			refs: []ConfigMapRef{user},
			objs: []*corev1.ConfigMap{configMap("kube-system", "ip-masq-agent", "1", map[string]string{
				"config": "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\nmasqueradeCIDRs: [10.2.1.100/32]\n"})},
			want: summary{
				NonMasq: []string{"10.0.0.0/8 @ configmap kube-system/ip-masq-agent key config line 2"},
				Masq:    []string{"10.2.1.100/32 @ configmap kube-system/ip-masq-agent key config line 3"},
				Files:   []string{"configmap kube-system/ip-masq-agent key config"},
			},
		},
		{
			name: "key ip-masq-agent",
			refs: []ConfigMapRef{user},
			objs: []*corev1.ConfigMap{configMap("kube-system", "ip-masq-agent", "1", map[string]string{
				"ip-masq-agent": "nonMasqueradeCIDRs: [10.0.0.0/8]\n"})},
			want: summary{
				NonMasq: []string{"10.0.0.0/8 @ configmap kube-system/ip-masq-agent key ip-masq-agent line 1"},
				Files:   []string{"configmap kube-system/ip-masq-agent key ip-masq-agent"},
			},
		},
		{
			name: "both keys: config wins, with a warning",
			refs: []ConfigMapRef{user},
			objs: []*corev1.ConfigMap{configMap("kube-system", "ip-masq-agent", "1", map[string]string{
				"config": "nonMasqueradeCIDRs: [10.0.0.0/8]\n", "ip-masq-agent": "nonMasqueradeCIDRs: [192.168.0.0/16]\n"})},
			want: summary{
				NonMasq: []string{"10.0.0.0/8 @ configmap kube-system/ip-masq-agent key config line 1"},
				Files:   []string{"configmap kube-system/ip-masq-agent key config"},
			},
			wantWarn: []string{`configmap kube-system/ip-masq-agent: ip-masq-agent: ignored: key "config" is read when both are present; remove one`},
		},
		{
			name: "neither key: defaults, with a warning",
			refs: []ConfigMapRef{user},
			objs: []*corev1.ConfigMap{configMap("kube-system", "ip-masq-agent", "1", map[string]string{"other": "x"})},
			want: summary{
				NonMasq: []string{"10.0.0.0/8 @ default", "172.16.0.0/12 @ default", "192.168.0.0/16 @ default"},
				Files:   []string{"configmap kube-system/ip-masq-agent"},
			},
			wantWarn: []string{`configmap kube-system/ip-masq-agent: config: the ConfigMap has neither key "config" nor "ip-masq-agent"; using the defaults`},
		},
		{
			name: "several merge in the order given",
			refs: []ConfigMapRef{platform, user},
			objs: []*corev1.ConfigMap{
				configMap("kube-system", "ip-masq-agent-reconciled", "2", map[string]string{"config": "nonMasqueradeCIDRs: [10.0.0.0/8]\n"}),
				configMap("kube-system", "ip-masq-agent", "1", map[string]string{"config": "nonMasqueradeCIDRs: [192.168.0.0/16, 10.0.0.0/8]\n"}),
			},
			want: summary{
				NonMasq: []string{
					"10.0.0.0/8 @ configmap kube-system/ip-masq-agent-reconciled key config line 1",
					"192.168.0.0/16 @ configmap kube-system/ip-masq-agent key config line 1",
				},
				Files: []string{"configmap kube-system/ip-masq-agent-reconciled key config", "configmap kube-system/ip-masq-agent key config"},
			},
		},
		{
			name: "an absent one is left out of the merge",
			refs: []ConfigMapRef{platform, user},
			objs: []*corev1.ConfigMap{nil, configMap("kube-system", "ip-masq-agent", "1", map[string]string{"config": "nonMasqueradeCIDRs: [192.168.0.0/16]\n"})},
			want: summary{
				NonMasq: []string{"192.168.0.0/16 @ configmap kube-system/ip-masq-agent key config line 1"},
				Files:   []string{"configmap kube-system/ip-masq-agent key config"},
			},
		},
		{
			name: "an invalid one is named",
			refs: []ConfigMapRef{platform, user},
			objs: []*corev1.ConfigMap{
				configMap("kube-system", "ip-masq-agent-reconciled", "2", map[string]string{"config": "nonMasqueradeCIDRs: [10.0.0.0/8]\n"}),
				configMap("kube-system", "ip-masq-agent", "1", map[string]string{"config": "nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n"}),
			},
			wantErr:    `configmap kube-system/ip-masq-agent key config line 2: nonMasqueradeCIDRs[0] "10.0.0.1/8"`,
			wantFailed: 1,
		},
		{
			name: "two snatTo addresses of a family conflict: the second is named, with the first",
			refs: []ConfigMapRef{platform, user},
			objs: []*corev1.ConfigMap{
				configMap("kube-system", "ip-masq-agent-reconciled", "2", map[string]string{"config": "snatTo: [192.0.2.10]\n"}),
				configMap("kube-system", "ip-masq-agent", "1", map[string]string{"config": "nonMasqueradeCIDRs: []\nsnatTo: [192.0.2.11]\n"}),
			},
			wantErr:    `configmap kube-system/ip-masq-agent key config line 2: snatTo "192.0.2.11": configmap kube-system/ip-masq-agent-reconciled key config line 1 gives 192.0.2.10`,
			wantFailed: 1,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, warnings, failed, err := parseConfigMaps(c.refs, c.objs, config.Options{})
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) || failed != c.wantFailed {
					t.Fatalf("error %v from ConfigMap %d; want one starting %q from ConfigMap %d", err, failed, c.wantErr, c.wantFailed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, summarize(cfg)); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			var ws []string
			for _, w := range warnings {
				ws = append(ws, w.String())
			}
			if diff := cmp.Diff(c.wantWarn, ws); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigMapSource runs the source against client-go's fake clientset: nothing until the first list, then
// the ConfigMap's state as it changes, and Events only when what is reported changes.
func TestConfigMapSource(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client := fake.NewClientset(
		// Another ConfigMap in the namespace: never read.
		configMap("kube-system", "other", "9", map[string]string{"config": "nonMasqueradeCIDRs: [1.0.0.0/8]\n"}),
	)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := NewConfigMapSource(fakeAPI{client}, []ConfigMapRef{DefaultConfigMap()}, "node-1", log)
	if err != nil {
		t.Fatal(err)
	}
	s.grace = 100 * time.Millisecond
	if _, _, ok, _ := s.Load(config.Options{}); ok {
		t.Fatal("Load before Run: ok, want nothing to say")
	}
	changed := runSource(t, s, ctx, cancel)

	// load waits for a change notification and returns the config once it has the prefixes want.
	load := func(what string, want []string) (config.Config, error) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			cfg, _, ok, err := s.Load(config.Options{})
			if ok {
				got := summarize(cfg).NonMasq
				if err != nil || cmp.Equal(got, want) {
					return cfg, err
				}
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("%s: Load never gave %v", what, want)
			}
		}
	}
	load("absent", []string{"10.0.0.0/8 @ default", "172.16.0.0/12 @ default", "192.168.0.0/16 @ default"})

	cms := client.CoreV1().ConfigMaps("kube-system")
	cm := configMap("kube-system", "ip-masq-agent", "1", map[string]string{"config": "nonMasqueradeCIDRs: [10.0.0.0/8]\n"})
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := load("created", []string{"10.0.0.0/8 @ configmap kube-system/ip-masq-agent key config line 1"})
	if err != nil {
		t.Fatal(err)
	}
	r := ruleset.Compile(cfg, ruleset.Options{})
	s.Report(&r, nil, true) // applied: no news, no Event
	s.Report(&r, nil, true)

	cm.Data["config"] = "nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = load("invalid", nil)
	if err == nil {
		t.Fatal("Load of an invalid ConfigMap: no error")
	}
	s.Report(nil, err, true)
	s.Report(nil, err, true)                                            // a resync of the same broken config: no second Event
	s.Report(nil, errors.New("netlink: operation not permitted"), true) // the apply of the rules in force failed
	invalid := "Warning InvalidConfig masqd/node-1: " + err.Error() + "; the rules in force stay as they were"
	failed := "Warning ApplyFailed masqd/node-1: cannot apply the config: netlink: operation not permitted; retrying"
	waitEvents(t, client, []string{invalid + " (1)", failed + " (1)"})

	// The same invalid config on a node where masqd holds no rules: the Event says nothing is applied.
	s.Report(nil, err, false)
	nothing := "Warning InvalidConfig masqd/node-1: " + err.Error() +
		"; nothing applied: masqd holds no rules on this node and masquerades nothing until the config is fixed"
	waitEvents(t, client, []string{invalid + " (1)", failed + " (1)", nothing + " (1)"})

	// Fixed, then broken the same way again: the same Event, counted twice; no Event for the fix.
	s.Report(&r, nil, true)
	s.Report(nil, errors.New("netlink: operation not permitted"), true)
	waitEvents(t, client, []string{invalid + " (1)", failed + " (2)", nothing + " (1)"})

	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Deleted: the defaults, once the grace (shortened here) has passed; within it, the config as it was.
	defaults := []string{"10.0.0.0/8 @ default", "172.16.0.0/12 @ default", "192.168.0.0/16 @ default"}
	deadline := time.After(10 * time.Second)
	for {
		cfg, _, ok, err := s.Load(config.Options{})
		if ok && err == nil && cmp.Equal(summarize(cfg).NonMasq, defaults) {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("deleted: Load gives %v, %v; want the defaults", summarize(cfg).NonMasq, err)
		}
	}
}

// fakeAPI is the KubeAPI of client-go's fake clientset (which cannot stream a watch's initial list, and says
// so with the IsWatchListSemanticsUnSupported it brings along).
type fakeAPI struct{ *fake.Clientset }

func (f fakeAPI) ListConfigMaps(ctx context.Context, ns string, o metav1.ListOptions) (*corev1.ConfigMapList, error) {
	return f.CoreV1().ConfigMaps(ns).List(ctx, o)
}

func (f fakeAPI) WatchConfigMaps(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
	return f.CoreV1().ConfigMaps(ns).Watch(ctx, o)
}

func (f fakeAPI) CreateEvent(ctx context.Context, e *corev1.Event) error {
	_, err := f.CoreV1().Events(e.Namespace).Create(ctx, e, metav1.CreateOptions{})
	return err
}

func (f fakeAPI) PatchEvent(ctx context.Context, ns, name string, patch []byte) error {
	_, err := f.CoreV1().Events(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// waitEvents waits until the Events in kube-system, in any order, are want ("TYPE REASON SOURCE: MESSAGE (COUNT)").
func waitEvents(t *testing.T, client *fake.Clientset, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	var got []string
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for ; time.Now().Before(deadline); <-tick.C {
		list, err := client.CoreV1().Events("kube-system").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, e := range sortedEvents(list.Items) {
			if e.InvolvedObject.Name != "ip-masq-agent" || e.InvolvedObject.Kind != "ConfigMap" {
				t.Fatalf("event on %s %s, want ConfigMap ip-masq-agent", e.InvolvedObject.Kind, e.InvolvedObject.Name)
			}
			got = append(got, fmt.Sprintf("%s %s %s/%s: %s (%d)", e.Type, e.Reason, e.Source.Component, e.Source.Host, e.Message, e.Count))
		}
		slices.Sort(got)
		if cmp.Equal(got, want) {
			return
		}
	}
	t.Fatalf("events (-want +got):\n%s", cmp.Diff(want, got))
}

// sortedEvents orders Events by the time they were first seen, then by name (which embeds that time).
func sortedEvents(es []corev1.Event) []corev1.Event {
	slices.SortFunc(es, func(a, b corev1.Event) int {
		if c := a.FirstTimestamp.Compare(b.FirstTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return es
}

// TestConfigMapDeleteGrace: a deleted ConfigMap's config stays in force, with a warning, for the grace; a
// ConfigMap created again within it takes over at once; once the grace has passed the defaults apply, as
// ip-masq-agent's do. The source's clock is moved by hand (the grace is an hour, so its timer never fires).
func TestConfigMapDeleteGrace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client := fake.NewClientset(configMap("kube-system", "ip-masq-agent", "1", map[string]string{"config": "nonMasqueradeCIDRs: [10.0.0.0/8]\n"}))
	s, err := NewConfigMapSource(fakeAPI{client}, []ConfigMapRef{DefaultConfigMap()}, "node-1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	s.grace = time.Hour
	changed := runSource(t, s, ctx, cancel)
	// load waits for notifications until Load gives the prefixes want (as text), and returns its warnings.
	load := func(what string, want ...string) []config.Warning {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			cfg, ws, ok, err := s.Load(config.Options{})
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			var got []string
			for _, p := range cfg.NonMasqueradeCIDRs {
				got = append(got, p.Prefix.String())
			}
			if ok && slices.Equal(got, want) {
				return ws
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("%s: Load gives %v, want %v", what, got, want)
			}
		}
	}
	defaults := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
	cms := client.CoreV1().ConfigMaps("kube-system")
	deleted := func() {
		t.Helper()
		if err := cms.Delete(ctx, "ip-masq-agent", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for {
			if _, exists, _ := s.watches[0].store.GetByKey("kube-system/ip-masq-agent"); !exists {
				return
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatal("the deletion was never seen")
			}
		}
	}

	load("present", "10.0.0.0/8")
	deleted()
	ws := load("deleted, within the grace", "10.0.0.0/8")
	if len(ws) != 1 || !strings.Contains(ws[0].Msg, "deleted") {
		t.Errorf("warnings within the grace: %v, want one saying it was deleted", ws)
	}
	// Created again within the grace: the new config, no defaults in between.
	if _, err := cms.Create(ctx, configMap("kube-system", "ip-masq-agent", "2", map[string]string{"config": "nonMasqueradeCIDRs: [192.0.2.0/24]\n"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ws := load("created again", "192.0.2.0/24"); len(ws) != 0 {
		t.Errorf("warnings after it was created again: %v, want none", ws)
	}
	deleted()
	load("deleted again, within the grace", "192.0.2.0/24")
	advance(time.Hour)
	load("the grace passed", defaults...)
}

// runSource runs s until the test ends (cancel stops it; an error from Run fails the test) and returns the
// channel its changed callback signals.
func runSource(t *testing.T, s *ConfigMapSource, ctx context.Context, cancel context.CancelFunc) <-chan struct{} {
	t.Helper()
	changed := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func() { changed <- struct{}{} }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return changed
}
