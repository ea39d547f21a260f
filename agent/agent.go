package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// Settings wire an Agent. Backend, Log and Metrics are required.
type Settings struct {
	// ConfigPath is the config file, or a directory whose ip-masq* files are merged.
	ConfigPath    string
	ConfigOptions config.Options
	// NFT compiles the config to the nftables ruleset (Desired.Ruleset).
	NFT ruleset.Options
	// Backend holds the rules in the kernel. When it is a Watcher, the agent repairs other processes'
	// changes as they happen; otherwise at the next resync.
	Backend Backend
	// Migrate, when set, runs once the kernel is verified to hold the desired rules (Backend.Verify after a
	// successful apply): it removes the rules masqd replaces (ip-masq-agent's chains, the other backend's
	// state) and returns what it removed. It runs until it succeeds once, at most once per sync.
	Migrate func() (removed []string, err error)
	Log     *slog.Logger
	Metrics *Metrics
	// HTTPAddress serves /healthz, /readyz and /metrics; "" serves nothing.
	HTTPAddress string
	// Gatherer serves /metrics; nil serves no metrics.
	Gatherer prometheus.Gatherer
	// Reload triggers a reload when it receives (SIGHUP); nil means never.
	Reload <-chan os.Signal
	// Notify reaches systemd; nil or an empty socket means no notifications.
	Notify *Notifier
	// Source, when set, supplies the config instead of the file whenever it has one (the Kubernetes API).
	Source ConfigSource
	// Node, when set, gives this node's pod ranges (--node-name): after every reconcile the agent warns
	// (log, masqd_node_pod_cidr_masqueraded, Node.Report) when the ruleset masquerades traffic to them.
	Node NodeSource
	// PodCIDRs, when set, gives every Node's pod ranges (--discover-pod-cidrs): they join the config's pod
	// ranges (config.WithNodePodCIDRs) in every reconcile once listed.
	PodCIDRs PodCIDRSource
	// After is the clock the kernel watch waits on before it subscribes again (the retry backoff); nil means
	// time.After. Tests set it to see the delays without waiting them.
	After func(time.Duration) <-chan time.Time
	// Now is the clock /healthz judges the loop's liveness by; nil means time.Now.
	Now func() time.Time
	// ResolveInterface resolves snatToInterface to the interface's primary addresses (InterfaceAddrs on
	// Linux) before each compile; nil: never resolved, and every family keeps masquerade.
	ResolveInterface func(name string) (ruleset.InterfaceAddrs, error)
	// WatchAddresses calls changed after every address change on the node (WatchAddresses on Linux), so
	// that snatToInterface follows its interface's address at once; nil: at each resync only.
	WatchAddresses func(ctx context.Context, changed func()) error
	// Conntrack, while the config's FlushConntrack is on (flushConntrack, or --flush-conntrack through
	// ConfigOptions), deletes right after each commit the conntrack entries of flows to the destinations the
	// commit flipped between masquerade and not; nil never flushes.
	Conntrack Flusher
}

// ConfigSource supplies the config from somewhere other than the file, such as a watched ConfigMap.
type ConfigSource interface {
	// Load returns the source's current config. ok false means the source has nothing to say yet (not
	// synced, API unreachable): the agent then reads the file.
	Load(opts config.Options) (cfg config.Config, warnings []config.Warning, ok bool, err error)
	// Run watches the source until ctx is done, calling changed after every change.
	Run(ctx context.Context, changed func()) error
	// Report tells the source what became of the config Load last returned: err is the config's or the
	// apply's error, or nil when the kernel now holds applied. held says whether masqd's rules are in the
	// kernel at all (applied by this process or left by an earlier one): with an invalid config they stay;
	// without, nothing is applied.
	Report(applied *ruleset.Ruleset, err error, held bool)
}

// Agent keeps the kernel in step with the config. Create it with New and start it with Run, once.
type Agent struct {
	s     Settings
	kicks chan reason // reasons to reconcile now; buffered, so sends coalesce

	// Owned by the loop goroutine.
	desired     *Desired // from the last valid config; nil until there is one
	resync      time.Duration
	lastCfgErr  string
	state       ConfigState // what the agent runs on, as masqd_config_state says
	lastWarns   []string
	retryDelay  time.Duration
	everApplied bool
	migrated    bool
	desiredHash string        // ConfigHash of desired.Ruleset
	nodeCheck   string        // the node's pod ranges and the masqueraded ones, as last logged
	loader      config.Loader // parses only the config files that changed
	// iface is snatToInterface as last resolved (what desired was compiled with), ifaceErr why it could
	// not be, as last logged.
	iface    ruleset.InterfaceAddrs
	ifaceErr string
	// followIface says the config in force has snatToInterface: address changes are then worth a reconcile.
	followIface atomic.Bool
	// held is what the kernel's rules do as of masqd's last commit, or as read before the first apply
	// (Holder); heldKnown says whether it is known. The conntrack flush compares the next commit with it.
	held      ruleset.Ruleset
	heldKnown bool
	heldRead  bool // the kernel was read (or there was nothing to read) before the first apply

	ready atomic.Bool // the kernel holds desired, as of the last apply or check
	drift atomic.Bool // someone else changed masqd's table since the last apply
	// notReady is /readyz's body while not ready, and note its addition while ready (a rejected config
	// whose predecessor's rules stay); nil for the defaults.
	notReady, note atomic.Pointer[string]
	// beat is when the loop last completed a reconcile or a heartbeat (Unix nanoseconds, Settings.Now);
	// liveFor is how long /healthz waits for the next one.
	beat, liveFor atomic.Int64
}

// Retry delays after a failed apply: doubling from the first, never beyond the cap.
const (
	firstRetry = 100 * time.Millisecond
	maxRetry   = 30 * time.Second
	// coalesce is how long file events are gathered before one reload: an editor's write-rename or the
	// kubelet's symlink swap is a burst of events.
	coalesce = 5 * time.Millisecond
)

// New returns an Agent; it does nothing until Run.
func New(s Settings) *Agent {
	if s.Now == nil {
		s.Now = time.Now
	}
	a := &Agent{s: s, kicks: make(chan reason, 1), resync: config.DefaultResyncInterval}
	a.liveFor.Store(int64(livenessWindow(a.resync)))
	a.heartbeat()
	return a
}

// Liveness: /healthz fails when the loop has completed no reconcile and no heartbeat for livenessFactor
// resync intervals, and never sooner than minLiveness (an apply at 100,000 prefixes takes a second, a
// wedged iptables lock up to its wait).
const (
	livenessFactor = 3
	minLiveness    = time.Minute
)

// livenessWindow is how long the loop may go without a beat while resyncing every resync.
func livenessWindow(resync time.Duration) time.Duration {
	return max(livenessFactor*resync, minLiveness)
}

// heartbeat records that the loop is alive now.
func (a *Agent) heartbeat() { a.beat.Store(a.s.Now().UnixNano()) }

// Alive returns nil while the loop has beaten recently, else why not (for /healthz).
func (a *Agent) Alive() error {
	last := time.Unix(0, a.beat.Load())
	window := time.Duration(a.liveFor.Load())
	if since := a.s.Now().Sub(last); since > window {
		return fmt.Errorf("the reconcile loop has completed nothing for %s (more than %s, %d resync intervals): it is wedged",
			since.Round(time.Second), window, livenessFactor)
	}
	return nil
}

// Ready reports whether the kernel held the desired ruleset at the last apply or check.
func (a *Agent) Ready() bool { return a.ready.Load() }

// reason is why the loop reconciles, as logs say it.
type reason string

const (
	reasonStart     reason = "start"     // the agent started
	reasonFile      reason = "file"      // the config file changed
	reasonConfigMap reason = "configmap" // a watched ConfigMap changed
	reasonSIGHUP    reason = "sighup"    // SIGHUP: reload
	reasonResync    reason = "resync"    // the resync interval passed
	reasonRetry     reason = "retry"     // a failed apply's backoff passed
	reasonCommit    reason = "commit"    // a commit by another process may have touched the rules
	reasonDrift     reason = "drift"     // another process changed masqd's table
	reasonMonitor   reason = "monitor"   // the kernel watch failed: notifications may have been lost
	reasonNode      reason = "node"      // this node's pod ranges changed (--node-name)
	reasonNodes     reason = "nodes"     // a Node's pod ranges changed (--discover-pod-cidrs), coalesced
	reasonAddress   reason = "address"   // an address of the node changed (snatToInterface follows it)
)

// ConfigState is what the agent runs on, as the label of masqd_config_state says it.
type ConfigState string

const (
	// StateValid: a valid config, read from the file or the ConfigMap.
	StateValid ConfigState = "valid"
	// StateFileAbsent: no file at --config (or no ip-masq* file in its directory): the built-in defaults, as
	// ip-masq-agent runs them.
	StateFileAbsent ConfigState = "defaults_file_absent"
	// StateConfigMapAbsent: the watched ConfigMap does not exist: the built-in defaults, as ip-masq-agent runs
	// them once the kubelet empties its volume.
	StateConfigMapAbsent ConfigState = "defaults_configmap_absent"
	// StateInvalidKept: the config is rejected; the rules in the kernel (the last good config's) stay.
	StateInvalidKept ConfigState = "invalid_rules_kept"
	// StateInvalidNone: the config is rejected and masqd holds no rules on this node (a fresh node): nothing
	// is applied, nothing is masqueraded by masqd, until the config is fixed.
	StateInvalidNone ConfigState = "invalid_nothing_applied"
)

// ConfigStates are every ConfigState, in the order above.
func ConfigStates() []ConfigState {
	return []ConfigState{StateValid, StateFileAbsent, StateConfigMapAbsent, StateInvalidKept, StateInvalidNone}
}

// kick asks the loop to reconcile; it never blocks, and kicks arriving while one is pending merge into it.
func (a *Agent) kick(r reason) {
	select {
	case a.kicks <- r:
	default:
	}
}

// Run runs the agent until ctx is done. On return the rules stay in the kernel: egress keeps working while
// masqd restarts or is upgraded. It returns an error only when it cannot run at all.
func (a *Agent) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if a.s.HTTPAddress != "" {
		srv := &http.Server{Addr: a.s.HTTPAddress, Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			return srv.Close()
		})
	}
	// The loop reads the config for the first time once the file watch is in place: a write between that
	// read and the watch would otherwise wait for the resync.
	watching := make(chan struct{})
	g.Go(func() error { return a.watchFile(ctx, watching) })
	if a.s.Source != nil {
		g.Go(func() error { return a.s.Source.Run(ctx, func() { a.kick(reasonConfigMap) }) })
	}
	if a.s.Node != nil {
		g.Go(func() error { return a.s.Node.Run(ctx, func() { a.kick(reasonNode) }) })
	}
	if a.s.PodCIDRs != nil {
		g.Go(func() error { return a.s.PodCIDRs.Run(ctx, func() { a.kick(reasonNodes) }) })
	}
	if w, ok := a.s.Backend.(Watcher); ok {
		g.Go(func() error { return a.watchKernel(ctx, w) })
	}
	if a.s.WatchAddresses != nil {
		g.Go(func() error { a.watchAddresses(ctx); return nil })
	}
	g.Go(func() error {
		select {
		case <-watching:
		case <-ctx.Done():
			return nil
		}
		return a.loop(ctx)
	})
	return g.Wait()
}

func (a *Agent) loop(ctx context.Context) error {
	log := a.s.Log
	a.kick(reasonStart)
	resync := time.NewTimer(a.resync)
	retry := time.NewTimer(0)
	retry.Stop()
	var watchdog <-chan time.Time
	if d := a.s.Notify.WatchdogInterval(); d > 0 {
		t := time.NewTicker(d / 2)
		defer t.Stop()
		watchdog = t.C
	}
	for {
		var why reason
		select {
		case <-ctx.Done():
			log.Info("stopping; rules stay in the kernel")
			_ = a.s.Notify.Send("STOPPING=1")
			return nil
		case why = <-a.kicks:
		case <-a.s.Reload:
			why = reasonSIGHUP
			log.Info("SIGHUP: reloading the config")
		case <-resync.C:
			why = reasonResync
		case <-retry.C:
			why = reasonRetry
		case <-watchdog:
			a.heartbeat()
			_ = a.s.Notify.Send("WATCHDOG=1")
			continue
		}
		ok := a.reconcile(why)
		a.heartbeat()
		a.liveFor.Store(int64(livenessWindow(a.resync)))
		resync.Reset(a.resync)
		if ok {
			a.retryDelay = 0
			retry.Stop()
			continue
		}
		if a.desired != nil { // a failed apply: retry soon, not after a whole resync interval
			a.retryDelay = min(max(2*a.retryDelay, firstRetry), maxRetry)
			retry.Reset(a.retryDelay)
		}
	}
}

// reconcile reads the config and makes the kernel hold what it asks for. It returns false when the kernel
// could not be made to.
func (a *Agent) reconcile(why reason) bool {
	m, log := a.s.Metrics, a.s.Log
	cfg, warnings, fromSource, err := a.load()
	report := func(applied *ruleset.Ruleset, err error, held bool) {
		if fromSource {
			a.s.Source.Report(applied, err, held)
		}
	}
	m.ConfigReloads.Inc()
	cfgChanged := false // the config differs from the one loaded before: a change it makes is no repair
	if err != nil {
		m.ConfigValid.Set(0)
		held := a.rejected(err)
		report(nil, err, held)
	} else {
		m.ConfigValid.Set(1)
		if a.lastCfgErr != "" {
			log.Info("config is valid again")
			a.lastCfgErr = ""
		}
		a.note.Store(nil)
		a.setState(a.validState(cfg, fromSource))
		a.logWarnings(warnings)
		cfg = a.withDiscovered(cfg)
		cfgChanged = a.desired == nil || !a.desired.Config.Equal(cfg)
		nopts := a.s.NFT
		nopts.Interface = a.resolveInterface(cfg)
		if cfgChanged || nopts.Interface != a.iface { // a resync of an unchanged config compiles nothing
			a.iface = nopts.Interface
			if cfgChanged {
				a.warnSNATTo(cfg)
			}
			want := ruleset.Compile(cfg, nopts)
			a.desiredHash = ConfigHash(want)
			a.desired = &Desired{Config: cfg, Ruleset: want}
			a.resync = cfg.ResyncInterval
			m.SetDesired(cfg, want)
			m.SetConntrackFlush(a.flushing())
		}
	}
	if a.desired == nil {
		return true // nothing valid to apply yet; the kernel is left as it is
	}
	a.checkNode()
	// At a resync the backend compares what it cheaply can: the nftables backend, the ruleset generation
	// (any commit the monitor did not account for makes it rewrite the sets whole); the iptables backend
	// reads its chain. A failed monitor has made it Forget already.
	drifted := a.drift.Swap(false)
	a.readHeld()
	start := time.Now()
	change, err := a.s.Backend.Apply(*a.desired)
	m.SyncDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		a.ready.Store(false)
		m.Ready.Set(0)
		m.Syncs.WithLabelValues("error").Inc()
		log.Error("apply failed; retrying", "reason", why, "err", err)
		msg := "not ready: the last apply failed (retrying): " + err.Error()
		a.notReady.Store(&msg)
		report(nil, err, a.everApplied)
		if drifted {
			a.drift.Store(true)
		}
		return false
	}
	m.Syncs.WithLabelValues("success").Inc()
	m.LastSuccess.SetToCurrentTime()
	m.SetApplied(a.desiredHash)
	a.ready.Store(true)
	m.Ready.Set(1)
	if change != ruleset.Unchanged {
		// A repair is a change someone else made that this one undid: one the monitor saw, or one a
		// compare found. A refresh (the nftables sets rewritten because what the kernel held was not
		// known) may have changed nothing.
		if drifted || change != ruleset.Refreshed && (why == reasonResync || why == reasonMonitor || (why == reasonCommit && !cfgChanged)) {
			m.DriftRepairs.Inc()
		}
		log.Info("applied", "change", change, "reason", why, "backend", a.s.Backend.Name(),
			"ipv4_intervals", len(a.desired.Ruleset.NonMasq4), "ipv6_intervals", len(a.desired.Ruleset.NonMasq6),
			"duration", time.Since(start).Round(time.Microsecond).String())
	} else {
		log.Debug("kernel already in step", "reason", why)
	}
	a.flushConntrack(change)
	a.notReady.Store(nil)
	if a.lastCfgErr == "" {
		report(&a.desired.Ruleset, nil, true)
	}
	if !a.everApplied {
		a.everApplied = true
		_ = a.s.Notify.Send("READY=1")
	}
	if !a.migrated && a.s.Migrate != nil {
		a.migrate()
	}
	return true
}

// rejected handles an invalid config: it says, once per distinct error and per change of what is in force,
// what is true on this node, and sets masqd_config_state and /readyz's body to match. It returns whether
// masqd's rules are in the kernel: applied by this process, or left by an earlier masqd, they stay; on a
// fresh node there are none, and masqd applies nothing (as ip-masq-agent) until the config is valid.
func (a *Agent) rejected(err error) (held bool) {
	held = a.everApplied
	if !held {
		present, perr := a.s.Backend.Present()
		// A kernel that cannot be read is reported as holding nothing: it is what masqd can vouch for.
		held = perr == nil && present
	}
	state := StateInvalidKept
	if !held {
		state = StateInvalidNone
	}
	changed := state != a.state
	a.setState(state)
	if msg := err.Error(); msg != a.lastCfgErr || changed { // once per distinct error, not every resync
		a.lastCfgErr = msg
		if held {
			a.s.Log.Error("invalid config; keeping the rules in force", "err", err)
		} else {
			a.s.Log.Error("invalid config; nothing applied: masqd holds no rules on this node and masquerades "+
				"nothing until the config is fixed (masqd check names the problem); it applies the config as soon as it is valid",
				"err", err, "config", a.configName())
		}
	}
	if held {
		note := "config rejected; the rules in force stay: " + err.Error()
		a.note.Store(&note)
		if !a.everApplied {
			msg := "not ready: " + note
			a.notReady.Store(&msg)
		}
		return true
	}
	msg := "not ready: nothing applied: the config is invalid, and masqd holds no rules on this node, so it " +
		"masquerades nothing until the config is fixed: " + err.Error()
	a.notReady.Store(&msg)
	return false
}

// configName names where the config comes from, for logs.
func (a *Agent) configName() string {
	if a.s.Source != nil {
		return "the Kubernetes API, else " + a.s.ConfigPath
	}
	return a.s.ConfigPath
}

// validState is the ConfigState of a valid cfg: the defaults because nothing is there to read, or a config.
// A file path that goes absent is logged as a warning once, with the path, each time it goes.
func (a *Agent) validState(cfg config.Config, fromSource bool) ConfigState {
	if len(cfg.Files) > 0 {
		return StateValid
	}
	if fromSource {
		if a.state != StateConfigMapAbsent {
			a.s.Log.Warn("the ConfigMap is absent; running the built-in defaults, as ip-masq-agent does")
		}
		return StateConfigMapAbsent
	}
	if a.state != StateFileAbsent {
		a.s.Log.Warn("no config file at --config; running the built-in defaults, as ip-masq-agent does "+
			"(is the path right? is the ConfigMap mounted there?)", "path", a.s.ConfigPath)
	}
	return StateFileAbsent
}

func (a *Agent) setState(s ConfigState) {
	a.state = s
	a.s.Metrics.SetState(s)
}

// migrate runs Settings.Migrate once the kernel reads back as holding the desired rules: from then on what
// it removes only duplicates them, so there is no moment without masquerade. A failure is logged and tried
// again after the next successful sync.
func (a *Agent) migrate() {
	log := a.s.Log
	if err := a.s.Backend.Verify(*a.desired); err != nil {
		log.Warn("not removing the rules masqd replaces yet: the kernel does not read back as applied", "err", err)
		return
	}
	removed, err := a.s.Migrate()
	for _, r := range removed {
		log.Info("removed rules masqd replaces", "removed", r)
	}
	if err != nil {
		log.Error("removing the rules masqd replaces failed; trying again after the next sync", "err", err)
		return
	}
	if len(removed) == 0 {
		log.Debug("no rules to migrate from")
	}
	a.migrated = true
}

// load reads the config: from the Source when it has one, else from the file. fromSource says which.
func (a *Agent) load() (cfg config.Config, warnings []config.Warning, fromSource bool, err error) {
	if a.s.Source != nil {
		cfg, warnings, ok, err := a.s.Source.Load(a.s.ConfigOptions)
		if ok {
			return cfg, warnings, true, err
		}
	}
	cfg, warnings, err = a.loader.Load(a.s.ConfigPath, a.s.ConfigOptions)
	return cfg, warnings, false, err
}

// withDiscovered adds the Nodes' pod ranges (--discover-pod-cidrs) to a valid cfg, once they are listed.
func (a *Agent) withDiscovered(cfg config.Config) config.Config {
	if a.s.PodCIDRs == nil {
		return cfg
	}
	pods, ok := a.s.PodCIDRs.NodePodCIDRs()
	if !ok {
		return cfg // not listed yet: the config's own ranges until then
	}
	a.s.Metrics.DiscoveredPodCIDRs.Set(float64(len(pods)))
	return config.WithNodePodCIDRs(cfg, pods)
}

func (a *Agent) logWarnings(ws []config.Warning) {
	var msgs []string
	for _, w := range ws {
		msgs = append(msgs, w.String())
	}
	if slices.Equal(msgs, a.lastWarns) {
		return
	}
	a.lastWarns = msgs
	for _, w := range ws {
		a.s.Log.Warn("config: "+w.Msg, "where", w.Source.String(), "key", w.Key)
	}
}

// watchKernel follows the backend's kernel changes: someone else's change to masqd's rules is repaired at
// once. When watching fails (notifications lost) it subscribes again after the apply retry's capped backoff
// and asks for a full compare; when it is not permitted it returns the error, and the agent stops: without
// CAP_NET_ADMIN it could not apply either.
func (a *Agent) watchKernel(ctx context.Context, w Watcher) error {
	after := a.s.After
	if after == nil {
		after = time.After
	}
	var delay time.Duration
	for {
		start := time.Now()
		err := w.Watch(ctx, func(d Drift) {
			if d.Suspect {
				a.kick(reasonCommit) // compare in full; a repair counts as drift
				return
			}
			a.drift.Store(true)
			a.s.Log.Warn("masqd's rules were changed by another process; repairing",
				"process", d.Process, "pid", d.PID, "generation", d.Gen)
			a.kick(reasonDrift)
		})
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
			return ruleset.NeedsNetAdmin(err)
		}
		if time.Since(start) > maxRetry {
			delay = 0 // it had been working: a new failure starts the backoff again
		}
		delay = min(max(2*delay, firstRetry), maxRetry)
		a.s.Log.Warn("kernel monitor failed; subscribing again and comparing in full", "err", err, "retry_in", delay.String())
		a.s.Backend.Forget()
		a.kick(reasonMonitor)
		select {
		case <-ctx.Done():
			return nil
		case <-after(delay):
		}
	}
}

// checkNode warns when the desired ruleset masquerades traffic to this node's own pod ranges (--node-name):
// pods on other nodes, under the same config, would reach this node's pods with their node's address. It
// logs once per change of the node's ranges or of the verdict, sets masqd_node_pod_cidr_masqueraded, and
// tells the NodeSource (which records an Event). It changes nothing in the kernel.
func (a *Agent) checkNode() {
	if a.s.Node == nil {
		return
	}
	pods, ok := a.s.Node.PodCIDRs()
	if !ok { // not read yet, or the node is absent: nothing to say, and no verdict left from before
		a.s.Metrics.SetNodePodCIDRs(nil, nil)
		a.nodeCheck = ""
		return
	}
	masq := a.desired.Ruleset.MasqueradedPodCIDRs(pods)
	ranges := map[netip.Prefix]string{}
	for _, p := range masq {
		ivs := a.desired.Ruleset.MasqueradedWithin(p)
		parts := make([]string, len(ivs))
		for i, iv := range ivs {
			parts[i] = iv.String()
		}
		ranges[p] = strings.Join(parts, ", ")
	}
	a.s.Metrics.SetNodePodCIDRs(pods, masq)
	a.s.Node.Report(masq, ranges)
	key := fmt.Sprint(pods, masq)
	if key == a.nodeCheck {
		return
	}
	a.nodeCheck = key
	switch {
	case len(pods) == 0:
		a.s.Log.Info("this node's Node has no spec.podCIDRs, so there is nothing to check: Kubernetes' node IPAM "+
			"(kube-controller-manager --allocate-node-cidrs) did not give it a range; a CNI with its own IPAM (Calico, "+
			"Cilium's cluster-pool) allocates pod addresses elsewhere", "node", a.nodeName())
	case len(masq) > 0:
		a.s.Log.Warn(PodCIDRMessage(a.nodeName(), masq, ranges), "pod_cidrs", fmt.Sprint(pods), "masqueraded", fmt.Sprint(masq))
	default:
		a.s.Log.Info("this node's pod ranges are kept non-masquerade", "pod_cidrs", fmt.Sprint(pods))
	}
}

// nodeName names this node in logs, as the NodeSource knows it.
func (a *Agent) nodeName() string {
	if n, ok := a.s.Node.(interface{ Name() string }); ok {
		return n.Name()
	}
	return "this node"
}

// resolveInterface resolves cfg's snatToInterface (the zero InterfaceAddrs when it has none). A family the
// interface has no address of, or an interface that is not there, keeps masquerade: traffic still leaves,
// with the outgoing interface's address, as it would without snatToInterface. That is logged as a warning
// once per change, and masqd_snat_interface_address says it.
func (a *Agent) resolveInterface(cfg config.Config) ruleset.InterfaceAddrs {
	name := cfg.SNATToInterface.Name
	a.followIface.Store(name != "")
	if name == "" {
		a.s.Metrics.SetSNATInterface(ruleset.InterfaceAddrs{}, false)
		return ruleset.InterfaceAddrs{}
	}
	got := ruleset.InterfaceAddrs{Name: name}
	var msg string
	if a.s.ResolveInterface == nil {
		msg = "snatToInterface cannot be resolved here; masquerading with the outgoing interface's address"
	} else if r, err := a.s.ResolveInterface(name); err != nil {
		msg = fmt.Sprintf("snatToInterface %s is not there (%v); masquerading with the outgoing interface's address until it is", name, err)
	} else {
		got = r
		switch {
		case !r.V4.IsValid():
			msg = fmt.Sprintf("snatToInterface %s has no usable IPv4 address; IPv4 traffic is masqueraded with the outgoing interface's address until it has one", name)
		case cfg.EnableIPv6 && !r.V6.IsValid():
			msg = fmt.Sprintf("snatToInterface %s has no usable IPv6 address; IPv6 traffic is masqueraded with the outgoing interface's address until it has one", name)
		}
	}
	if msg != a.ifaceErr {
		a.ifaceErr = msg
		if msg != "" {
			a.s.Log.Warn(msg, "interface", name)
		}
	}
	if got != a.iface {
		a.s.Log.Info("snatToInterface resolved", "interface", name, "ipv4", addrText(got.V4), "ipv6", addrText(got.V6))
	}
	a.s.Metrics.SetSNATInterface(got, cfg.EnableIPv6)
	return got
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "none (masquerade)"
	}
	return a.String()
}

// watchAddresses kicks a reconcile after every address change on the node while the config has
// snatToInterface. When the watch fails it is tried again after the apply retry's capped backoff; meanwhile
// each resync resolves the interface again.
func (a *Agent) watchAddresses(ctx context.Context) {
	after := a.s.After
	if after == nil {
		after = time.After
	}
	var delay time.Duration
	for {
		start := time.Now()
		err := a.s.WatchAddresses(ctx, func() {
			if a.followIface.Load() {
				a.kick(reasonAddress)
			}
		})
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > maxRetry {
			delay = 0
		}
		delay = min(max(2*delay, firstRetry), maxRetry)
		a.s.Log.Warn("address watch failed; snatToInterface follows its interface at each resync until it is back", "err", err, "retry_in", delay.String())
		a.kick(reasonAddress)
		select {
		case <-ctx.Done():
			return
		case <-after(delay):
		}
	}
}

// warnSNATTo warns about each snatTo address that is not one of this node's: traffic leaves with it, but
// replies to it are routed elsewhere, so connections fail. It is applied anyway (an address may be added
// later, or be routed to the node by the network).
func (a *Agent) warnSNATTo(cfg config.Config) {
	if len(cfg.SNATTo) == 0 {
		return
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		a.s.Log.Warn("cannot list this node's addresses to check snatTo", "err", err)
		return
	}
	local := map[netip.Addr]bool{}
	for _, ia := range ifaddrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				local[ip.Unmap()] = true
			}
		}
	}
	for _, s := range cfg.SNATTo {
		if !local[s.Addr] {
			a.s.Log.Warn("snatTo is not an address of this node: traffic leaves with it, but replies to it will not come back here unless the network routes it to the node",
				"address", s.Addr.String(), "where", s.Source.String())
		}
	}
}

// flushing reports whether the conntrack flush is on for the desired config.
func (a *Agent) flushing() bool {
	return a.s.Conntrack != nil && a.desired != nil && a.desired.Config.FlushConntrack
}

// readHeld reads, once before the first apply and only with the conntrack flush on, what the kernel's rules
// do: what a previous masqd (or ip-masq-agent's chain, in iptables mode) left there. The first commit's
// flips are counted from it. When nothing is there (a fresh node), nothing is known, and the first commit
// flushes nothing: which rules translated the flows in the table is not known.
func (a *Agent) readHeld() {
	if a.heldRead || !a.flushing() {
		return
	}
	a.heldRead = true
	h, ok := a.s.Backend.(Holder)
	if !ok {
		return
	}
	r, present, err := h.Held()
	switch {
	case err != nil:
		a.s.Log.Warn("cannot read the rules in the kernel before the first apply; its conntrack flush is skipped", "err", err)
	case !present:
		a.s.Log.Info("no masqd rules in the kernel before the first apply; its conntrack flush is skipped")
	default:
		a.held, a.heldKnown = r, true
	}
}

// flushConntrack runs after every successful apply: when the apply committed a change and the conntrack
// flush is on, it deletes the entries of flows to the destinations whose verdict flipped since the last
// commit (or since what the kernel held before the first), so that they take the new verdict. It never
// undoes or retries the commit: a failure is logged and counted. It then remembers the desired ruleset as
// what the kernel holds.
func (a *Agent) flushConntrack(change ruleset.Change) {
	prev, known := a.held, a.heldKnown
	a.held, a.heldKnown = a.desired.Ruleset, true
	if change == ruleset.Unchanged || !known || !a.flushing() {
		return
	}
	v4, v6 := ruleset.Flipped(prev, a.desired.Ruleset)
	if v4 == nil && v6 == nil {
		return
	}
	m, log := a.s.Metrics, a.s.Log
	start := time.Now()
	d4, d6, err := a.s.Conntrack.Flush(v4, v6)
	m.ConntrackDeleted.WithLabelValues("ipv4").Add(float64(d4))
	m.ConntrackDeleted.WithLabelValues("ipv6").Add(float64(d6))
	took := time.Since(start).Round(time.Microsecond).String()
	if err != nil {
		m.ConntrackFlushes.WithLabelValues("error").Inc()
		log.Error("conntrack flush failed; the new rules stay in force, and flows already tracked keep their "+
			"translation until they end", "err", err, "deleted_ipv4", d4, "deleted_ipv6", d6, "duration", took)
		return
	}
	m.ConntrackFlushes.WithLabelValues("success").Inc()
	log.Info("conntrack entries of flipped destinations deleted", "flipped", flippedText(v4, v6),
		"deleted_ipv4", d4, "deleted_ipv6", d6, "duration", took)
}

// flippedText lists flipped ranges for a log line, the first few of them.
func flippedText(v4, v6 []ruleset.Interval) string {
	const most = 8
	all := slices.Concat(v4, v6)
	var parts []string
	for i, iv := range all {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(all)-most))
			break
		}
		parts = append(parts, iv.String())
	}
	return strings.Join(parts, ", ")
}
