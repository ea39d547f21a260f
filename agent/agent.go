package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
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
	// After is the clock the kernel watch waits on before it subscribes again (the retry backoff); nil means
	// time.After. Tests set it to see the delays without waiting them.
	After func(time.Duration) <-chan time.Time
}

// ConfigSource supplies the config from somewhere other than the file, such as a watched ConfigMap.
type ConfigSource interface {
	// Load returns the source's current config. ok false means the source has nothing to say yet (not
	// synced, API unreachable): the agent then reads the file.
	Load(opts config.Options) (cfg config.Config, warnings []config.Warning, ok bool, err error)
	// Run watches the source until ctx is done, calling changed after every change.
	Run(ctx context.Context, changed func()) error
	// Report tells the source what became of the config Load last returned: err is the config's or the
	// apply's error, or nil when the kernel now holds applied.
	Report(applied *ruleset.Ruleset, err error)
}

// Agent keeps the kernel in step with the config. Create it with New and start it with Run, once.
type Agent struct {
	s     Settings
	kicks chan reason // reasons to reconcile now; buffered, so sends coalesce

	// Owned by the loop goroutine.
	desired     *Desired // from the last valid config; nil until there is one
	resync      time.Duration
	lastCfgErr  string
	lastWarns   []string
	retryDelay  time.Duration
	everApplied bool
	migrated    bool
	desiredHash string        // ConfigHash of desired.Ruleset
	loader      config.Loader // parses only the config files that changed

	ready atomic.Bool // the kernel holds desired, as of the last apply or check
	drift atomic.Bool // someone else changed masqd's table since the last apply
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
	return &Agent{s: s, kicks: make(chan reason, 1), resync: config.DefaultResyncInterval}
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
)

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
	g.Go(func() error { return a.watchFile(ctx) })
	if a.s.Source != nil {
		g.Go(func() error { return a.s.Source.Run(ctx, func() { a.kick(reasonConfigMap) }) })
	}
	if w, ok := a.s.Backend.(Watcher); ok {
		g.Go(func() error { return a.watchKernel(ctx, w) })
	}
	g.Go(func() error { return a.loop(ctx) })
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
		case <-resync.C:
			why = reasonResync
		case <-retry.C:
			why = reasonRetry
		case <-watchdog:
			_ = a.s.Notify.Send("WATCHDOG=1")
			continue
		}
		ok := a.reconcile(why)
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
	report := func(applied *ruleset.Ruleset, err error) {
		if fromSource {
			a.s.Source.Report(applied, err)
		}
	}
	m.ConfigReloads.Inc()
	cfgChanged := false // the config differs from the one loaded before: a change it makes is no repair
	if err != nil {
		m.ConfigValid.Set(0)
		if msg := err.Error(); msg != a.lastCfgErr { // once per distinct error, not every resync
			a.lastCfgErr = msg
			log.Error("invalid config; keeping the rules in force", "err", err)
		}
		report(nil, err)
	} else {
		m.ConfigValid.Set(1)
		if a.lastCfgErr != "" {
			log.Info("config is valid again")
			a.lastCfgErr = ""
		}
		a.logWarnings(warnings)
		cfgChanged = a.desired == nil || !a.desired.Config.Equal(cfg)
		if cfgChanged { // a resync of an unchanged config compiles nothing
			want := ruleset.Compile(cfg, a.s.NFT)
			a.desiredHash = ConfigHash(want)
			a.desired = &Desired{Config: cfg, Ruleset: want}
			a.resync = cfg.ResyncInterval
			m.SetDesired(cfg, want)
		}
	}
	if a.desired == nil {
		return true // nothing valid to apply yet; the kernel is left as it is
	}
	// At a resync the backend compares what it cheaply can: the nftables backend, the ruleset generation
	// (any commit the monitor did not account for makes it rewrite the sets whole); the iptables backend
	// reads its chain. A failed monitor has made it Forget already.
	drifted := a.drift.Swap(false)
	start := time.Now()
	change, err := a.s.Backend.Apply(*a.desired)
	m.SyncDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		a.ready.Store(false)
		m.Ready.Set(0)
		m.Syncs.WithLabelValues("error").Inc()
		log.Error("apply failed; retrying", "reason", why, "err", err)
		report(nil, err)
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
	if a.lastCfgErr == "" {
		report(&a.desired.Ruleset, nil)
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
