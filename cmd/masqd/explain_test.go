package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
	"github.com/masqd/masqd/status"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt from the commands' output (review the diff!)")

// runner is one of masqd's operator commands, as run() calls it.
type runner func(args []string, stdout, stderr io.Writer) int

// checkGolden runs `masqd name args...` and compares a transcript of it (the runner line, stdout, stderr,
// exit status) with testdata/golden/<golden>.txt.
func checkGolden(t *testing.T, golden, name string, cmd runner, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cmd(args, &stdout, &stderr)
	got := "$ masqd " + strings.Join(append([]string{name}, args...), " ") + "\n" + stdout.String()
	if stderr.Len() > 0 {
		got += "--- stderr\n" + stderr.String()
	}
	got += fmt.Sprintf("--- exit %d\n", code)
	path := filepath.Join("testdata", "golden", golden+".txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it, then review it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: -want +got:\n%s", path, cmp.Diff(string(want), got))
	}
}

// fakeKernel is table inet masqd as a test wants the kernel to hold it.
type fakeKernel struct {
	rs      ruleset.Ruleset
	present bool
	err     error
}

// testHost is a status.Host whose kernel, addresses, agent and clock are the test's. The node's addresses are the
// lab's: 10.128.0.5 on eth0 and 203.0.113.1 on lo. Agent answers map a URL to a status code and body; a URL
// not in it does not answer.
func testHost(k fakeKernel, agent map[string]string) status.Host {
	return status.Host{
		Kernel: func() (ruleset.Ruleset, bool, error) { return k.rs, k.present, k.err },
		Addrs: func() ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.128.0.5"),
				netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("::1")}, nil
		},
		Get: func(url string) (int, []byte, error) {
			answer, ok := agent[url]
			if !ok {
				return 0, nil, fmt.Errorf("Get %q: dial tcp: connect: connection refused", url)
			}
			code, body, _ := strings.Cut(answer, " ")
			var n int
			fmt.Sscan(code, &n)
			return n, []byte(body), nil
		},
		Now: func() time.Time { return time.Date(2026, 5, 4, 10, 0, 12, 0, time.UTC) },
	}
}

// withInterface is h resolving every interface to the IPv4 address v4, as the agent would on the node.
func withInterface(h status.Host, v4 string) status.Host {
	h.Interface = func(name string) (ruleset.InterfaceAddrs, error) {
		return ruleset.InterfaceAddrs{Name: name, V4: netip.MustParseAddr(v4)}, nil
	}
	return h
}

// compiled is the ruleset masqd applies for the config file at path.
func compiled(t *testing.T, path string, opts config.Options, nopts ruleset.Options) ruleset.Ruleset {
	t.Helper()
	cfg, _, err := config.Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ruleset.Compile(cfg, nopts)
}

func withHost(h status.Host, f func([]string, io.Writer, io.Writer, status.Host) int) runner {
	return func(args []string, stdout, stderr io.Writer) int { return f(args, stdout, stderr, h) }
}

var randomFully = ruleset.Options{RandomFully: true}

// TestExplainGolden explains destinations of the scenarios users bring.
func TestExplainGolden(t *testing.T) {
	none := testHost(fakeKernel{err: fmt.Errorf("no kernel in this test")}, nil)
	masqdWay := compiled(t, "testdata/private-endpoint-masqd.config", config.Options{}, randomFully)
	gkeDefaults := compiled(t, "testdata/absent", config.Options{NoMasqAllReservedRanges: true}, randomFully)
	foreign := masqdWay
	foreign.Foreign = []string{"rule 1 (handle 9) in chain postrouting"}
	// --discover-pod-cidrs: two Nodes' pod ranges, as the apiserver would list them.
	nodes := testHost(fakeKernel{err: fmt.Errorf("no kernel in this test")}, nil)
	nodes.PodCIDRs = discoveredNodes
	for _, tc := range []struct {
		golden string
		h      status.Host
		args   []string
	}{
		// The on-prem private endpoint solved with masqueradeCIDRs: the examples, a node address and IPv6.
		{"explain-private-endpoint-masqd", none, []string{"--config=testdata/private-endpoint-masqd.config",
			"10.2.1.100", "10.128.0.9", "169.254.169.254", "8.8.8.8", "10.128.0.5", "2001:db8::1"}},
		// The private-endpoint scenario's starting point: no ConfigMap on GKE, so every reserved range keeps the pod address, and
		// the private endpoint in 10/8 sees the pod.
		{"explain-private-endpoint-gke-default", none, []string{"--config=testdata/absent", "--nomasq-all-reserved-ranges",
			"10.2.1.100", "100.65.0.50", "34.120.0.1"}},
		{"explain-private-endpoint-as-is", none, []string{"--config=testdata/private-endpoint-as-is.config",
			"10.1.1.7", "10.1.2.200", "10.2.1.100", "10.128.0.9", "169.254.169.254"}},
		// The TO-BE ConfigMap as written: '#' right after ':' breaks it.
		{"explain-private-endpoint-to-be", none, []string{"--config=testdata/private-endpoint-to-be.config", "10.2.1.100"}},
		// The TO-BE as meant: the endpoint is masqueraded, and so is the rest of 10/8 but 10.1.1.0/24.
		{"explain-private-endpoint-to-be-fixed", none, []string{"--config=testdata/private-endpoint-to-be-fixed.config",
			"10.2.1.100", "10.1.1.7", "10.128.0.9", "10.48.1.5", "100.65.0.50", "240.0.0.1"}},
		{"explain-cilium-tke", none, []string{"--config=testdata/cilium-tke.config",
			"169.254.0.23", "10.0.1.1", "10.1.0.1", "172.18.3.3", "192.168.200.1", "203.0.113.1"}},
		{"explain-user-guide", none, []string{"--config=testdata/user-guide.config", "10.1.2.3", "172.16.0.1", "169.254.169.254"}},
		{"explain-no-ipv6", none, []string{"--config=testdata/user-guide.config", "2001:db8:100::9", "fe80::1", "::ffff:10.1.2.3"}},
		{"explain-ipv6", none, []string{"--config=testdata/check/ipv6.config", "--enable-ipv6",
			"2001:db8:100::9", "2001:db8:ff00::10", "fe80::1%eth0", "::1", "10.1.1.1"}},
		// The pod ranges typed once: the key with its line, the flag by name; masqueradeCIDRs still win inside them.
		{"explain-cluster-cidrs", none, []string{"--config=testdata/cluster-cidrs.config", "--cluster-cidr=172.31.0.0/16,fd00:10:64::/56",
			"100.64.3.4", "172.31.0.9", "100.64.9.9", "10.1.2.3", "8.8.8.8"}},
		{"explain-cluster-cidrs-flag-only", none, []string{"--config=testdata/absent", "--cluster-cidr=100.64.0.0/10",
			"--cluster-cidr", "172.31.0.0/16", "--output=json", "100.64.3.4", "172.31.0.9"}},
		{"explain-cluster-cidrs-bad-flag", none, []string{"--cluster-cidr=100.64.0.1/10", "100.64.3.4"}},
		// Discovered pod ranges: each named by its node; the key's range keeps its line; masqueradeCIDRs still cut.
		{"explain-discover-pod-cidrs", nodes, []string{"--config=testdata/cluster-cidrs.config", "--discover-pod-cidrs",
			"198.18.1.7", "198.18.2.7", "100.64.3.4", "100.64.9.9", "8.8.8.8"}},
		{"explain-masquerade-sources", none, []string{"--config=testdata/masquerade-sources.config", "198.51.100.10", "10.1.2.3"}},
		{"explain-snat", none, []string{"--config=testdata/snat.config", "198.51.100.10", "10.1.2.3"}},
		{"explain-snat-interface", withInterface(none, "10.128.0.5"), []string{"--config=testdata/snat-interface.config", "198.51.100.10"}},
		// flushConntrack, from the file and from the flag: explain says flows follow an edit at once.
		{"explain-flush-conntrack", none, []string{"--config=testdata/flush-conntrack.config", "192.0.2.7", "198.51.100.10"}},
		{"explain-flush-conntrack-flag", none, []string{"--config=testdata/masquerade-sources.config", "--flush-conntrack", "--output=json", "10.1.2.3"}},
		{"explain-bad-address", none, []string{"10.0.0.1", "10.0.0.300"}},
		{"explain-prefix", none, []string{"10.0.0.0/8"}},
		{"explain-no-address", none, []string{"--kernel"}},
		{"explain-manifest-as-config", none, []string{"--config=testdata/cilium-tke-configmap.yaml", "10.0.1.1"}},
		{"explain-kernel-agrees", testHost(fakeKernel{rs: masqdWay, present: true}, nil), []string{
			"--config=testdata/private-endpoint-masqd.config", "--kernel", "10.2.1.100", "10.128.0.9", "8.8.8.8", "10.128.0.5", "2001:db8::1"}},
		// The agent still holds GKE's defaults: the endpoint keeps the pod address, whatever the file says.
		{"explain-kernel-disagrees", testHost(fakeKernel{rs: gkeDefaults, present: true}, nil), []string{
			"--config=testdata/private-endpoint-masqd.config", "--kernel", "10.2.1.100", "10.128.0.9", "100.64.0.1", "8.8.8.8"}},
		{"explain-kernel-no-table", testHost(fakeKernel{}, nil), []string{
			"--config=testdata/private-endpoint-masqd.config", "--kernel", "10.2.1.100", "10.128.0.9"}},
		{"explain-kernel-foreign", testHost(fakeKernel{rs: foreign, present: true}, nil), []string{
			"--config=testdata/private-endpoint-masqd.config", "--kernel", "10.2.1.100"}},
		{"explain-kernel-permission", testHost(fakeKernel{err: fmt.Errorf("nftables: list table inet masqd: %w", os.ErrPermission)}, nil),
			[]string{"--kernel", "10.2.1.100"}},
		{"explain-json", testHost(fakeKernel{rs: gkeDefaults, present: true}, nil), []string{
			"--config=testdata/private-endpoint-masqd.config", "--kernel", "--output=json", "10.2.1.100", "10.128.0.9", "10.128.0.5"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			checkGolden(t, tc.golden, "explain", withHost(tc.h, explainMain), tc.args...)
		})
	}
}

func TestExplainHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"explain", "--help"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Usage: masqd explain") ||
		!strings.Contains(stdout.String(), "-kernel") || !strings.Contains(stdout.String(), "-enable-ipv6") || stderr.Len() > 0 {
		t.Errorf("masqd explain --help: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}

// TestExplainRun goes through run(), with this status.Host's addresses: loopback is local.
func TestExplainRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"explain", "--config=testdata/user-guide.config", "127.0.0.1", "10.1.2.3"}, nil, &stdout, &stderr)
	want := "127.0.0.1: local to this node: never masqueraded\n" +
		"10.1.2.3: source kept (nonMasqueradeCIDRs 10.0.0.0/8, testdata/user-guide.config line 2)\n"
	if code != 0 || stdout.String() != want {
		t.Errorf("exit %d, stdout:\n%s\nwant\n%s\nstderr: %s", code, stdout.String(), want, stderr.String())
	}
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		operands []string
		kernel   bool
	}{
		{[]string{"10.0.0.1", "--kernel", "10.0.0.2"}, []string{"10.0.0.1", "10.0.0.2"}, true},
		{[]string{"--kernel", "10.0.0.1"}, []string{"10.0.0.1"}, true},
		{[]string{"10.0.0.1", "--", "--kernel"}, []string{"10.0.0.1", "--kernel"}, false},
		{nil, nil, false},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		kernel := fs.Bool("kernel", false, "")
		got, err := parseCommand(fs, tc.args)
		if err != nil || strings.Join(got, " ") != strings.Join(tc.operands, " ") || *kernel != tc.kernel {
			t.Errorf("%q: operands %q, kernel %t, %v; want %q, %t", tc.args, got, *kernel, err, tc.operands, tc.kernel)
		}
	}
}

// discoveredNodes stands for the apiserver's Nodes under --discover-pod-cidrs: node-1 and node-2 with a range
// each, node-3 with one the config's clusterCIDRs already holds.
func discoveredNodes() ([]config.NodePodCIDR, error) {
	return []config.NodePodCIDR{
		{Node: "node-1", Prefix: netip.MustParsePrefix("198.18.1.0/24")},
		{Node: "node-2", Prefix: netip.MustParsePrefix("198.18.2.0/24")},
		{Node: "node-3", Prefix: netip.MustParsePrefix("100.64.0.0/10")}, // the key has it,
	}, nil
}
