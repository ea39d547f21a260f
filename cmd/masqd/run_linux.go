package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/masqd/masqd/agent"
	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/ruleset"
)

// runMode runs the mode the flags select: --cleanup, --dry-run, --once, or the agent.
func runMode(ctx context.Context, opts options, stdout io.Writer, log *slog.Logger) error {
	if opts.cleanup {
		gone, err := iptables.Cleanup(opts.masqChain)
		for _, g := range gone {
			log.Info("removed masqd's rules (if there were any)", "what", g)
		}
		return ruleset.NeedsNetAdmin(err)
	}
	var cfg config.Config
	if opts.dryRun || opts.once {
		// The agent reads the config itself: an invalid one at start is reported and waited out, not fatal.
		var err error
		if cfg, err = loadConfig(opts, log); err != nil {
			return err
		}
	}
	if opts.dryRun {
		return dryRunOutput(stdout, cfg, opts, log)
	}
	b, facts, err := chooseBackend(opts.mode, func() (iptables.Facts, error) { return iptables.GatherFacts("", opts.mode) })
	if err != nil {
		return err
	}
	backend, err := agent.NewBackend(b, opts.masqChain, opts.nft, log)
	if err != nil {
		return err
	}
	migrate := iptables.Migrator(b, facts, opts.masqChain, opts.migrateFrom)
	if !opts.once {
		return runAgent(ctx, opts, backend, migrate, log)
	}
	d := agent.Desired{Config: cfg, Ruleset: ruleset.Compile(cfg, resolvedOptions(cfg, opts.nft, log))}
	flush := onceFlush(cfg, backend, log)
	change, err := backend.Apply(d)
	if err != nil {
		return ruleset.NeedsNetAdmin(err)
	}
	log.Info("applied", "change", change, "backend", backend.Name(),
		"ipv4_intervals", len(d.Ruleset.NonMasq4), "ipv6_intervals", len(d.Ruleset.NonMasq6))
	if change != ruleset.Unchanged {
		flush(d.Ruleset)
	}
	if err := backend.Verify(d); err != nil {
		return fmt.Errorf("not removing the rules masqd replaces: %w", err)
	}
	removed, err := migrate()
	for _, r := range removed {
		log.Info("removed rules masqd replaces", "removed", r)
	}
	return err
}

// runAgent is the long-running mode; see package agent.
func runAgent(ctx context.Context, opts options, backend agent.Backend, migrate func() ([]string, error), log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := agent.NewMetrics(reg, backend)
	build := currentBuild()
	metrics.BuildInfo.WithLabelValues(build.Version, build.Revision, strconv.FormatBool(build.Modified), build.GoVersion, backend.Name()).Set(1)
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)
	log.Info("starting", "version", build.Version, "revision", build.Revision, "backend", backend.Name(), "mode", opts.mode, "config", opts.configPath, "http", opts.httpAddress)
	source, err := newConfigMapSource(opts, log)
	if err != nil {
		return err
	}
	node, err := newNodeWatch(opts, log)
	if err != nil {
		return err
	}
	discovery, err := newDiscovery(opts, log)
	if err != nil {
		return err
	}
	if discovery != nil {
		metrics.RegisterDiscovery(reg)
	}
	return agent.New(agent.Settings{
		ConfigPath:    opts.configPath,
		ConfigOptions: opts.cfg,
		NFT:           opts.nft,
		Backend:       backend,
		Migrate:       migrate,
		Log:           log,
		Metrics:       metrics,
		HTTPAddress:   opts.httpAddress,
		Gatherer:      reg,
		Reload:        reload,
		Notify:        agent.NotifierFromEnv(),
		Source:        source,
		Node:          node,
		PodCIDRs:      discovery,

		ResolveInterface: agent.InterfaceAddrs,
		WatchAddresses:   agent.WatchAddresses,
		Conntrack:        agent.NewConntrack(),
	}).Run(ctx)
}

// onceFlush reads, with the conntrack flush on, what the kernel's rules do before --once applies, and returns
// what flushes the entries of the flows the apply flipped; a failure is logged, and the apply stands.
func onceFlush(cfg config.Config, backend agent.Backend, log *slog.Logger) func(applied ruleset.Ruleset) {
	h, ok := backend.(agent.Holder)
	if !cfg.FlushConntrack || !ok {
		return func(ruleset.Ruleset) {}
	}
	held, present, err := h.Held()
	switch {
	case err != nil:
		log.Warn("cannot read the rules in the kernel before applying; the conntrack flush is skipped", "err", err)
		return func(ruleset.Ruleset) {}
	case !present:
		log.Info("no masqd rules in the kernel before applying; the conntrack flush is skipped")
		return func(ruleset.Ruleset) {}
	}
	return func(applied ruleset.Ruleset) {
		v4, v6 := ruleset.Flipped(held, applied)
		if v4 == nil && v6 == nil {
			return
		}
		d4, d6, err := agent.NewConntrack().Flush(v4, v6)
		if err != nil {
			log.Error("conntrack flush failed; the new rules stay in force", "err", ruleset.NeedsNetAdmin(err), "deleted_ipv4", d4, "deleted_ipv6", d6)
			return
		}
		log.Info("conntrack entries of flipped destinations deleted", "deleted_ipv4", d4, "deleted_ipv6", d6)
	}
}

// newConfigMapSource returns the Kubernetes ConfigMap source, or nil when it is off: --configmap= (empty), or
// neither --kubeconfig nor a pod's ServiceAccount and --configmap left at its default (a node run by systemd).
// An explicit --configmap with no way to reach a cluster is an error.
func newConfigMapSource(opts options, log *slog.Logger) (agent.ConfigSource, error) {
	if len(opts.configMaps.refs) == 0 {
		return nil, nil
	}
	client, err := agent.NewKubeClient(opts.kubeconfig, "masqd/"+currentBuild().Version)
	if errors.Is(err, rest.ErrNotInCluster) && !opts.configMaps.set {
		log.Debug("not in a Kubernetes pod and no --kubeconfig: reading the config file only")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--configmap: %w", err)
	}
	klog.SetSlogLogger(log)        // client-go's global logging; the watch itself logs through its context
	node := os.Getenv("NODE_NAME") // the downward API's spec.nodeName
	if node == "" {
		node, _ = os.Hostname() // an empty host is allowed in an Event's source
	}
	log.Info("watching ConfigMaps; they override the file once listed", "configmaps", opts.configMaps.String(), "node", node)
	source, err := agent.NewConfigMapSource(client, opts.configMaps.refs, node, log)
	if err != nil {
		return nil, fmt.Errorf("--configmap: %w", err)
	}
	return source, nil
}

// newNodeWatch returns the watch of this node's pod ranges, or nil without --node-name. It needs the API:
// --kubeconfig or the pod's ServiceAccount.
func newNodeWatch(opts options, log *slog.Logger) (agent.NodeSource, error) {
	if opts.nodeName == "" {
		return nil, nil
	}
	client, err := agent.NewKubeClient(opts.kubeconfig, "masqd/"+currentBuild().Version)
	if err != nil {
		return nil, fmt.Errorf("--node-name: %w", err)
	}
	klog.SetSlogLogger(log)
	log.Info("checking this node's pod ranges against the config", "node", opts.nodeName)
	return agent.NewNodeWatch(client, opts.nodeName, log), nil
}

// newDiscovery returns the informer of every Node's pod ranges, or nil without --discover-pod-cidrs. It needs
// the API: --kubeconfig or the pod's ServiceAccount.
func newDiscovery(opts options, log *slog.Logger) (agent.PodCIDRSource, error) {
	if !opts.discover {
		return nil, nil
	}
	client, err := agent.NewKubeClient(opts.kubeconfig, "masqd/"+currentBuild().Version)
	if err != nil {
		return nil, fmt.Errorf("--discover-pod-cidrs: %w", err)
	}
	klog.SetSlogLogger(log)
	return agent.NewDiscovery(client, log), nil
}
