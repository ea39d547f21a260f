package agent

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/masqd/masqd/nft"
)

// EventComponent is the source component of masqd's Events; the source host is the node's name.
const EventComponent = "masqd"

// Event reasons, as `kubectl describe configmap` shows them.
const (
	ReasonApplied       = "Applied"       // Normal: the kernel holds the config
	ReasonInvalidConfig = "InvalidConfig" // Warning: the config cannot be used; the rules in force stay
	ReasonApplyFailed   = "ApplyFailed"   // Warning: the config is valid but the kernel refused it; retrying
)

// maxEventMessage bounds an Event's message; the apiserver rejects longer ones for the events.k8s.io API.
const maxEventMessage = 1024

// Report records what became of the config the last Load returned, as an Event on the ConfigMaps it came
// from: Warning InvalidConfig on the ConfigMap whose data is invalid, Warning ApplyFailed when the kernel
// refused a valid config, Normal Applied with the counts once the kernel holds it. The agent calls Report
// after every reconcile, resyncs included; only a change (another ruleset, another error, another ConfigMap
// object) becomes an Event, so a steady state records nothing. client-go's recorder then aggregates and
// rate-limits what is sent. Absent ConfigMaps get no Events: there is nothing to attach them to.
func (s *ConfigMapSource) Report(applied *nft.Ruleset, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lastLoad
	var (
		targets              []*corev1.ConfigMap
		typ, reason, message string
		key                  string // what this report says, to compare with the last one
	)
	switch {
	case err != nil && err == l.err:
		typ, reason = corev1.EventTypeWarning, ReasonInvalidConfig
		message = err.Error() + "; the rules in force stay as they were"
		key = message
		if l.errFrom != nil {
			targets = []*corev1.ConfigMap{l.errFrom}
		}
	case err != nil:
		typ, reason, targets = corev1.EventTypeWarning, ReasonApplyFailed, l.objs
		message = fmt.Sprintf("cannot apply the config: %v; retrying", err)
		key = message
	case applied != nil:
		typ, reason, targets = corev1.EventTypeNormal, ReasonApplied, l.objs
		message = appliedMessage(l, applied)
		key = message // and the ruleset itself, compared below
	default:
		return
	}
	key = reason + "\x00" + key
	for _, o := range targets {
		key += "\x00" + string(o.UID)
	}
	if key == s.lastReport && sameRuleset(applied, s.lastApplied) {
		return
	}
	s.lastReport, s.lastApplied = key, nil
	if applied != nil {
		r := *applied
		s.lastApplied = &r
	}
	if len(message) > maxEventMessage {
		message = message[:maxEventMessage-3] + "..."
	}
	if s.recorder == nil {
		return
	}
	for _, o := range targets {
		s.recorder.Event(o, typ, reason, message)
	}
}

// sameRuleset reports whether a and b (either nil) are the same ruleset, counters included: what its nft
// text says, compared without rendering hundreds of thousands of intervals.
func sameRuleset(a, b *nft.Ruleset) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.SameRules(*b) && a.Counter4 == b.Counter4 && a.Counter6 == b.Counter6 &&
		slices.Equal(a.PortCounters4, b.PortCounters4) && slices.Equal(a.PortCounters6, b.PortCounters6)
}

// appliedMessage says what the kernel now holds, in the config's terms and in the kernel's.
func appliedMessage(l loaded, r *nft.Ruleset) string {
	var b strings.Builder
	fmt.Fprintf(&b, "applied %d nonMasqueradeCIDRs and %d masqueradeCIDRs", len(l.cfg.NonMasqueradeCIDRs), len(l.cfg.MasqueradeCIDRs))
	fmt.Fprintf(&b, ": %d IPv4", len(r.NonMasq4))
	if r.IPv6 {
		fmt.Fprintf(&b, " and %d IPv6", len(r.NonMasq6))
	}
	b.WriteString(" non-masquerade intervals in table inet " + nft.TableName)
	return b.String()
}
