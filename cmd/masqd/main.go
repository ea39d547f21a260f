// Command masqd keeps a node's IP masquerade rules in nftables, reading ip-masq-agent's configuration.
//
// See the README for every flag and mode. main only parses flags and wires the packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/lmittmann/tint"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/masqd/masqd/agent"
	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/nft"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// options are the parsed command line.
type options struct {
	configPath  string
	cfg         config.Options
	nft         nft.Options
	masqChain   string
	dryRun      bool
	once        bool
	cleanup     bool
	showVersion bool
	httpAddress string
	logLevel    slog.Level
	logFormat   string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs passed in; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "masqd: %v\n", err)
		return 2
	}
	if opts.showVersion {
		fmt.Fprintf(stdout, "masqd %s\n", version)
		return 0
	}
	log := newLogger(stderr, opts.logLevel, opts.logFormat)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runMode(ctx, opts, stdout, log); err != nil {
		fmt.Fprintf(stderr, "masqd: %v\n", err)
		return 1
	}
	return 0
}

func runMode(ctx context.Context, opts options, stdout io.Writer, log *slog.Logger) error {
	conn := nft.NewConn(0)
	if opts.cleanup {
		if err := conn.Delete(); err != nil {
			return err
		}
		log.Info("removed masqd's rules", "table", "inet "+nft.TableName)
		return nil
	}
	if !opts.dryRun && !opts.once {
		// The agent reads the config itself: an invalid one at start is reported and waited out, not fatal.
		return runAgent(ctx, opts, conn, log)
	}
	cfg, err := loadConfig(opts, log)
	if err != nil {
		return err
	}
	want := nft.Compile(cfg, opts.nft)
	if opts.dryRun {
		_, err := io.WriteString(stdout, want.String())
		return err
	}
	change, err := conn.Apply(want)
	if err != nil {
		return err
	}
	log.Info("applied", "change", change, "ipv4_intervals", len(want.NonMasq4), "ipv6_intervals", len(want.NonMasq6))
	return nil
}

// loadConfig reads the config and logs its warnings.
func loadConfig(opts options, log *slog.Logger) (config.Config, error) {
	cfg, warnings, err := config.Load(opts.configPath, opts.cfg)
	for _, w := range warnings {
		log.Warn("config: "+w.Msg, "where", w.Source.String(), "key", w.Key)
	}
	return cfg, err
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("masqd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: masqd [flags]\n\nKeeps this node's IP masquerade rules (nftables table inet masqd) in step with\nip-masq-agent's configuration. With no mode flag it runs as an agent.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// ip-masq-agent's flags, with its names and defaults.
	fs.StringVar(&o.configPath, "config", config.DefaultPath, "config `file`, or a directory whose ip-masq* files are merged")
	fs.BoolVar(&o.cfg.NoMasqAllReservedRanges, "nomasq-all-reserved-ranges", false, "by default, keep the pod source address for every reserved range, not only RFC 1918")
	fs.BoolVar(&o.cfg.EnableIPv6, "enable-ipv6", false, "also masquerade IPv6 (adds fe80::/10 and the config's IPv6 prefixes)")
	fs.BoolVar(&o.nft.RandomFully, "random-fully", true, "masquerade with fully randomised source ports")
	fs.StringVar(&o.masqChain, "masq-chain", "IP-MASQ-AGENT", "iptables chain name for the iptables backend")
	// Accepted so that ip-masq-agent's DaemonSet arguments keep working; they change nothing.
	fs.Int("v", 0, "ignored (ip-masq-agent's glog verbosity); use --log-level")
	fs.Bool("logtostderr", true, "ignored (ip-masq-agent's glog flag); masqd always logs to stderr")
	// masqd's own.
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the nftables ruleset the config gives and exit; needs no privilege")
	fs.BoolVar(&o.once, "once", false, "apply the ruleset once and exit")
	fs.BoolVar(&o.cleanup, "cleanup", false, "remove everything masqd made and exit")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&o.httpAddress, "http-address", "127.0.0.1:9745", "`address` serving /healthz, /readyz and /metrics in agent mode; empty to serve nothing")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "auto", "log `format`: auto (text on a terminal, JSON otherwise), text or json")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (masqd takes only flags)", fs.Arg(0))
	}
	switch o.logFormat {
	case "auto", "text", "json":
	default:
		return o, fmt.Errorf("--log-format=%q: want auto, text or json", o.logFormat)
	}
	modes := 0
	for _, on := range []bool{o.dryRun, o.once, o.cleanup} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return o, errors.New("--dry-run, --once and --cleanup are exclusive: pick one")
	}
	return o, nil
}

// newLogger logs text with colours on a terminal and JSON otherwise (journald and kubectl logs read either).
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "tint"
			}
		}
	}
	switch format {
	case "tint":
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level}))
	case "text":
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, NoColor: true}))
	default:
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
}

// runAgent is the long-running mode; see package agent.
func runAgent(ctx context.Context, opts options, conn *nft.Conn, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := agent.NewMetrics(reg, conn)
	metrics.BuildInfo.WithLabelValues(version, "nftables").Set(1)
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)
	log.Info("starting", "version", version, "backend", "nftables", "config", opts.configPath, "http", opts.httpAddress)
	return agent.New(agent.Settings{
		ConfigPath:    opts.configPath,
		ConfigOptions: opts.cfg,
		NFT:           opts.nft,
		Conn:          conn,
		Log:           log,
		Metrics:       metrics,
		HTTPAddress:   opts.httpAddress,
		Gatherer:      reg,
		Reload:        reload,
		Notify:        agent.NotifierFromEnv(),
	}).Run(ctx)
}
