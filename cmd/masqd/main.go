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
	"strings"
	"syscall"

	"github.com/lmittmann/tint"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/masqd/masqd/agent"
	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/ruleset"
	"github.com/masqd/masqd/status"
)

// options are the parsed command line.
type options struct {
	configPath  string
	cfg         config.Options
	nft         ruleset.Options
	masqChain   string
	mode        string   // --mode: auto, nftables or iptables
	migrateFrom []string // --migrate-from-chain
	dryRun      bool
	once        bool
	cleanup     bool
	showVersion bool
	httpAddress string
	logLevel    slog.Level
	logFormat   string
	configMaps  configMapFlag
	kubeconfig  string
	nodeName    string // --node-name: this node, whose pod ranges the agent checks
	discover    bool   // --discover-pod-cidrs: every Node's pod ranges join the non-masquerade set
}

// configMapFlag is the repeatable --configmap. The first use replaces the default; an empty value turns the
// Kubernetes source off.
type configMapFlag struct {
	refs []agent.ConfigMapRef
	set  bool // given on the command line
}

func (f *configMapFlag) String() string {
	if f == nil {
		return ""
	}
	var s []string
	for _, r := range f.refs {
		s = append(s, r.String())
	}
	return strings.Join(s, ",")
}

func (f *configMapFlag) Set(v string) error {
	if !f.set {
		f.refs, f.set = nil, true
	}
	if v == "" {
		f.refs = nil
		return nil
	}
	r, err := agent.ParseConfigMapRef(v)
	if err != nil {
		return err
	}
	f.refs = append(f.refs, r)
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs passed in; it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "explain":
			return explainMain(args[1:], stdout, stderr, nodeHost())
		case "status":
			return statusMain(args[1:], stdout, stderr, nodeHost())
		case "check":
			return checkMain(args[1:], stdin, stdout, stderr)
		case "help":
			return helpMain(args[1:], stdin, stdout, stderr)
		case "completion":
			return completionMain(args[1:], stdout, stderr)
		}
	}
	opts, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "masqd: %v (masqd --help lists the flags)\n", err)
		return 2
	}
	if opts.showVersion {
		fmt.Fprintln(stdout, currentBuild())
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

// dryRunOutput prints what --dry-run shows. It runs nothing and needs no privilege: with --mode=auto or
// nftables, the nftables table (what auto picks wherever nftables can NAT); with --mode=iptables, the
// iptables-restore inputs, as if iptables supported --random-fully (1.6.2 and later).
func dryRunOutput(w io.Writer, cfg config.Config, opts options, log *slog.Logger) error {
	if opts.mode != iptables.KindIPTables {
		_, err := io.WriteString(w, ruleset.Compile(cfg, resolvedOptions(cfg, opts.nft, log)).String())
		return err
	}
	if err := iptables.Unsupported(cfg); err != nil {
		return err
	}
	rules := iptables.CompileIPTables(cfg, iptables.IPTablesOptions{Chain: opts.masqChain, RandomFully: opts.nft.RandomFully,
		RandomFullySupported: true, ToPorts: opts.nft.ToPorts})
	_, err := io.WriteString(w, rules.String())
	return err
}

// nodeHost is the machine status and explain run on, resolving snatToInterface as the agent does.
func nodeHost() status.Host {
	h := status.NodeHost()
	h.Interface = agent.InterfaceAddrs
	return h
}

// resolvedOptions is nopts with cfg's snatToInterface resolved on this machine, as the agent resolves it on
// the node: --dry-run and --once then show and apply what the agent would. A family the interface has no
// usable address of (or all, when it is not there or this is not Linux) keeps masquerade, with a warning.
func resolvedOptions(cfg config.Config, nopts ruleset.Options, log *slog.Logger) ruleset.Options {
	name := cfg.SNATToInterface.Name
	if name == "" {
		return nopts
	}
	nopts, a, err := resolveHere(cfg, nopts)
	switch {
	case err != nil:
		log.Warn("snatToInterface is not resolved here; its families are shown masqueraded", "interface", name, "err", err)
	case !a.V4.IsValid() || cfg.EnableIPv6 && !a.V6.IsValid():
		log.Warn("snatToInterface has no usable address of a family here; that family is shown masqueraded", "interface", name,
			"ipv4", a.V4.IsValid(), "ipv6", a.V6.IsValid())
	}
	return nopts
}

// loadConfig reads the config and logs its warnings.
func loadConfig(opts options, log *slog.Logger) (config.Config, error) {
	cfg, warnings, err := config.Load(opts.configPath, opts.cfg)
	for _, w := range warnings {
		log.Warn("config: "+w.Msg, "where", w.Source.String(), "key", w.Key)
	}
	return cfg, err
}

// rootUsage is the top of `masqd --help`; the flags follow.
const rootUsage = `Usage: masqd [flags]
       masqd COMMAND [flags] [ARGS]

Keeps this node's IP masquerade rules (nftables table inet masqd, or ip-masq-agent's
iptables chain with --mode=iptables) in step with ip-masq-agent's configuration.
With no mode flag it runs as an agent.

Commands for operators:
  explain ADDRESS...  is traffic to ADDRESS masqueraded, and which config line decided it
  status              does the kernel hold the config; counters; the agent's last sync
  check [FILE|-]      lint a config file or an ip-masq-agent ConfigMap manifest before applying it
  help [COMMAND]      this text, or a command's
  completion SHELL    a completion script for bash, zsh or fish

Flags:
`

// parseFlags parses the agent's command line. On -h or --help it prints the usage to stdout and returns
// flag.ErrHelp; other errors are returned, not printed.
func parseFlags(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := newFlagSet("masqd")
	// ip-masq-agent's flags, with its names and defaults.
	addConfigFlags(fs, &o.configPath, &o.cfg, &o.nft)
	fs.StringVar(&o.masqChain, "masq-chain", iptables.DefaultIPTablesChain, "iptables `chain` name for the iptables backend")
	// masqd's backends.
	fs.StringVar(&o.mode, "mode", "auto", "`backend`: auto (nftables where the kernel can, else iptables), nftables or iptables")
	migrateFrom := fs.String("migrate-from-chain", defaultMigrateFrom, "ip-masq-agent `chains` to remove from iptables (legacy and nft) once masqd's rules are verified; empty for none")
	// Accepted so that ip-masq-agent's DaemonSet arguments keep working; they change nothing.
	fs.Int("v", 0, "ignored (ip-masq-agent's glog verbosity); use --log-level")
	fs.Bool("logtostderr", true, "ignored (ip-masq-agent's glog flag); masqd always logs to stderr")
	// masqd's own.
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the nftables ruleset (with --mode=iptables: the iptables-restore input) the config gives and exit; needs no privilege")
	fs.BoolVar(&o.once, "once", false, "apply the ruleset once (then migrate, as the agent does) and exit")
	fs.BoolVar(&o.cleanup, "cleanup", false, "remove everything masqd made (table inet masqd; the --masq-chain chain in iptables-legacy and iptables-nft) and exit")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&o.httpAddress, "http-address", "127.0.0.1:9745", "`address` serving /healthz, /readyz and /metrics in agent mode, such as $(HOST_IP):9745 in a DaemonSet (an IPv6 host may be written without brackets); empty to serve nothing")
	o.configMaps.refs = []agent.ConfigMapRef{agent.DefaultConfigMap()}
	fs.Var(&o.configMaps, "configmap", "`NAMESPACE/NAME` of a ConfigMap to watch in agent mode; repeat to merge several in order; empty for none. The source is on in a pod or with --kubeconfig")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig `file` for the ConfigMap watch; default: the pod's ServiceAccount")
	fs.BoolVar(&o.discover, "discover-pod-cidrs", false, "keep every Node's spec.podCIDRs non-masquerade, as --cluster-cidr's, read through the API (an informer over all Nodes); needs list and watch on nodes")
	fs.StringVar(&o.nodeName, "node-name", "", "this node's `name` (in a DaemonSet: $(NODE_NAME) from the downward API's spec.nodeName): warn when the config masquerades traffic to the Node's spec.podCIDRs; needs get, list and watch on nodes")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "auto", "log `format`: auto (text on a terminal, JSON otherwise), text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, rootUsage)
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (masqd takes only flags)", fs.Arg(0))
	}
	o.httpAddress = bracketIPv6(o.httpAddress)
	switch o.logFormat {
	case "auto", "text", "json":
	default:
		return o, fmt.Errorf("--log-format=%q: want auto, text or json", o.logFormat)
	}
	switch o.mode {
	case "auto", iptables.KindNFTables, iptables.KindIPTables:
	default:
		return o, fmt.Errorf("--mode=%q: want auto, nftables or iptables", o.mode)
	}
	if err := iptables.ValidateChainName(o.masqChain); err != nil {
		return o, fmt.Errorf("--masq-chain: %w", err)
	}
	var err error
	if o.migrateFrom, err = parseChains(*migrateFrom); err != nil {
		return o, fmt.Errorf("--migrate-from-chain=%q: %w (chain names separated by commas; --migrate-from-chain= for none)", *migrateFrom, err)
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
	if o.nodeName != "" {
		if errs := validation.IsDNS1123Subdomain(o.nodeName); len(errs) > 0 {
			return o, fmt.Errorf("--node-name=%q: %s", o.nodeName, strings.Join(errs, "; "))
		}
	}
	return o, nil
}

// addConfigFlags registers ip-masq-agent's flags that say how the config is read and compiled: --config,
// --nomasq-all-reserved-ranges, --enable-ipv6, --random-fully and --to-ports, kube-proxy's --cluster-cidr, and
// masqd's --flush-conntrack. The
// agent and every command share them, so that a command sees the config as the agent does when given the agent's
// flags.
func addConfigFlags(fs *flag.FlagSet, path *string, cfg *config.Options, nopts *ruleset.Options) {
	fs.StringVar(path, "config", config.DefaultPath, "config `file`, or a directory whose ip-masq* files are merged")
	fs.BoolVar(&cfg.NoMasqAllReservedRanges, "nomasq-all-reserved-ranges", false, "by default, keep the pod source address for every reserved range, not only RFC 1918")
	fs.BoolVar(&cfg.EnableIPv6, "enable-ipv6", false, "also masquerade IPv6 (adds fe80::/10 and the config's IPv6 prefixes)")
	fs.BoolVar(&nopts.RandomFully, "random-fully", true, "masquerade with fully randomised source ports")
	fs.Func("to-ports", "masquerade TCP, UDP and SCTP to these source `ports`, e.g. 1024-29999,32768-65535, each range taking new connections in proportion to its size", func(s string) error {
		ports, err := ruleset.ParsePortRanges(s)
		if err != nil {
			return fmt.Errorf("%w (ports or ranges separated by commas, e.g. --to-ports=1024-29999,32768-65535)", err)
		}
		nopts.ToPorts = ports
		return nil
	})
	fs.BoolVar(&cfg.FlushConntrack, "flush-conntrack", false, "after each commit that flips destinations between masquerade and not, delete the conntrack entries of flows from non-local sources to them, so that existing flows take the new verdict (or flushConntrack: true in the config)")
	fs.Func("cluster-cidr", "the cluster's pod `CIDRs`, as kube-proxy's flag: repeatable or separated by commas, IPv4 and IPv6; kept non-masquerade with the config's clusterCIDRs and nonMasqueradeCIDRs (IPv6 ones with --enable-ipv6)", func(s string) error {
		prefixes, err := config.ParseClusterCIDRs(s)
		if err != nil {
			return err
		}
		cfg.ClusterCIDRs = append(cfg.ClusterCIDRs, prefixes...)
		return nil
	})
}

// parseCommand parses a command's arguments with flags and operands in any order ("masqd explain 10.0.0.1
// --kernel"); everything after "--" is an operand. It returns the operands.
func parseCommand(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(operands, rest...), nil
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
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
