package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/masqd/masqd/ruleset"
)

// EventComponent is the source component of masqd's Events; the source host is the node's name.
const EventComponent = "masqd"

// Event reasons, as `kubectl describe configmap` shows them. Both are Warnings: a config that applies is
// no news, and 5,000 nodes reporting each edit would be 5,000 writes to the apiserver.
const (
	ReasonInvalidConfig = "InvalidConfig" // the config cannot be used; the rules in force stay, or there are none
	ReasonApplyFailed   = "ApplyFailed"   // the config is valid but the kernel refused it; retrying
)

// maxEventMessage bounds an Event's message; the apiserver rejects longer ones for the events.k8s.io API.
const maxEventMessage = 1024

// eventQueue is how many Events may wait to be sent; more are dropped (and logged): Events are advice,
// and the reconcile loop must never wait for the apiserver.
const eventQueue = 16

// eventTimeout bounds one Event's create or patch.
const eventTimeout = 10 * time.Second

// event is a Warning to post on a ConfigMap.
type event struct {
	on      *corev1.ConfigMap
	reason  string
	message string
}

// Report records what became of the config the last Load returned, as a Warning Event on the ConfigMaps it
// came from: InvalidConfig on the ConfigMap whose data is invalid, ApplyFailed on every ConfigMap merged
// when the kernel refused a valid config. A successful apply records nothing. The agent calls Report after
// every reconcile, resyncs and retries included; only a new warning (another reason, message or ConfigMap
// object) is posted, so a config that stays broken is posted once, and posted again only after it was
// fixed in between. held says whether masqd's rules are in the kernel: the InvalidConfig message says
// that they stay, or that nothing is applied on this node. The same warning from the same node on the same ConfigMap object is one Event, whose
// count and lastTimestamp grow. Report never blocks: Run posts the Events. Absent ConfigMaps get no
// Events: there is nothing to attach them to.
func (s *ConfigMapSource) Report(applied *ruleset.Ruleset, err error, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lastLoad
	var (
		targets []*corev1.ConfigMap
		reason  string
		message string
	)
	switch {
	case err != nil && err == l.err:
		reason = ReasonInvalidConfig
		message = err.Error() + "; the rules in force stay as they were"
		if !held {
			message = err.Error() + "; nothing applied: masqd holds no rules on this node and masquerades nothing until the config is fixed"
		}
		if l.errFrom != nil {
			targets = []*corev1.ConfigMap{l.errFrom}
		}
	case err != nil:
		reason, targets = ReasonApplyFailed, l.objs
		message = fmt.Sprintf("cannot apply the config: %v; retrying", err)
	case applied != nil:
		s.lastReport = "" // all is well: the next warning is news, even the one before
		return
	default:
		return
	}
	if len(message) > maxEventMessage {
		message = message[:maxEventMessage-3] + "..."
	}
	key := reason + "\x00" + message
	for _, o := range targets {
		key += "\x00" + string(o.UID)
	}
	if key == s.lastReport {
		return
	}
	s.lastReport = key
	for _, o := range targets {
		select {
		case s.events <- event{on: o, reason: reason, message: message}:
		default:
			s.log.Warn("too many Events waiting to be sent; dropping one", "reason", reason, "configmap", o.Namespace+"/"+o.Name)
		}
	}
}

// postEvents sends the Events Report queues until ctx is done. A failure is logged, not retried: the next
// distinct warning is posted anyway.
func (s *ConfigMapSource) postEvents(ctx context.Context) error {
	counts := map[string]int32{} // Event name → the count this process last sent
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-s.events:
			if err := s.post(ctx, e, counts); err != nil {
				s.log.Warn("cannot post an Event", "reason", e.reason, "configmap", e.on.Namespace+"/"+e.on.Name, "err", err)
			}
		}
	}
}

// post creates e's Event, or, when this node posted the same one on the same object before, raises its count.
func (s *ConfigMapSource) post(ctx context.Context, e event, counts map[string]int32) error {
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	now := metav1.Now()
	name := eventName(e, s.node)
	if n, seen := counts[name]; seen {
		if err := s.patchEvent(ctx, e.on.Namespace, name, n+1, now); err == nil || !apierrors.IsNotFound(err) {
			if err == nil {
				counts[name] = n + 1
			}
			return err
		}
		// Expired (Events live an hour by default): create it again.
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.on.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: e.on.Namespace,
			Name: e.on.Name, UID: e.on.UID, ResourceVersion: e.on.ResourceVersion},
		Reason: e.reason, Message: e.message, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: EventComponent, Host: s.node},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	err := s.client.CreateEvent(ctx, ev)
	if apierrors.IsAlreadyExists(err) { // posted by this node before masqd restarted
		n := counts[name] + 2
		if err = s.patchEvent(ctx, e.on.Namespace, name, n, now); err == nil {
			counts[name] = n
		}
		return err
	}
	if err == nil {
		counts[name] = 1
	}
	return err
}

func (s *ConfigMapSource) patchEvent(ctx context.Context, namespace, name string, count int32, now metav1.Time) error {
	patch, err := json.Marshal(map[string]any{"count": count, "lastTimestamp": now})
	if err != nil {
		return err
	}
	return s.client.PatchEvent(ctx, namespace, name, patch)
}

// eventName is the same for the same warning from the same node about the same ConfigMap object: the
// ConfigMap's name and 16 hex digits of a hash of the rest, as kubectl shows it (ip-masq-agent.0123456789abcdef).
func eventName(e event, node string) string {
	h := sha256.Sum256([]byte(strings.Join([]string{string(e.on.UID), node, e.reason, e.message}, "\x00")))
	prefix := e.on.Name
	if len(prefix) > 253-17 { // an object name's limit, less the suffix
		prefix = prefix[:253-17]
	}
	return prefix + "." + hex.EncodeToString(h[:8])
}
