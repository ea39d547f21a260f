//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/nft"
	"github.com/masqd/masqd/ruleset"
)

// Benchmarks comparing masqd with "the iptables way": what ip-masq-agent does on every sync, an
// `iptables-restore --noflush` of its chain (one RETURN per prefix, then MASQUERADE) after ensuring the
// POSTROUTING jump, for IPv4 and IPv6. Sub-benchmarks are named .../impl=NAME so that
// `benchstat -col /impl` shows each figure side by side with the ratio. `just bench` runs them all and
// keeps the raw output in bench/.

var benchPrefixes = []int{10, 1_000, 10_000, 100_000}

const benchChain = "IP-MASQ-AGENT"

// benchCIDRs returns n IPv4 /31s and n IPv6 /64s, none covering the lab's addresses and none adjacent to
// another, so that each is an interval of its own in masqd's sets (adjacent prefixes would merge).
func benchCIDRs(n int) (v4, v6 []netip.Prefix) {
	for i := range n {
		v4 = append(v4, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + i>>14), byte(i >> 6), byte(i << 2), 0}), 31))
		v6 = append(v6, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xa0, byte(i >> 15), byte(i >> 7), byte(i << 1)}), 64))
	}
	return v4, v6
}

// benchInput is one config as each implementation starts from: the prefix lists ip-masq-agent formats into
// its chain, and the parsed config masqd compiles. Both are made before the clock starts; turning them into
// a chain or a ruleset is timed.
type benchInput struct {
	v4, v6 []netip.Prefix
	cfg    config.Config
}

// newBenchInput lists v6's prefixes first in the config, then v4's.
func newBenchInput(v4, v6 []netip.Prefix) benchInput {
	cfg := config.Config{EnableIPv6: true, NonMasqueradeCIDRs: make([]config.CIDR, 0, len(v4)+len(v6))}
	for _, p := range slices.Concat(v6, v4) {
		cfg.NonMasqueradeCIDRs = append(cfg.NonMasqueradeCIDRs, config.CIDR{Prefix: p})
	}
	return benchInput{v4, v6, cfg}
}

func (in benchInput) compile() ruleset.Ruleset {
	return ruleset.Compile(in.cfg, ruleset.Options{RandomFully: true})
}

// ipMasqAgentPayload is the iptables-restore input ip-masq-agent writes for prefixes: the chain flushed
// and rewritten, link-local first.
func ipMasqAgentPayload(prefixes []netip.Prefix, linkLocal string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*nat\n:%s - [0:0]\n", benchChain)
	for _, p := range slices.Concat([]netip.Prefix{netip.MustParsePrefix(linkLocal)}, prefixes) {
		fmt.Fprintf(&b, "-A %s -d %s -m comment --comment \"ip-masq-agent: local traffic is not subject to MASQUERADE\" -j RETURN\n", benchChain, p)
	}
	fmt.Fprintf(&b, "-A %s -m comment --comment \"ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)\" -j MASQUERADE --random-fully\nCOMMIT\n", benchChain)
	return b.Bytes()
}

// iptablesWay applies prefixes the way ip-masq-agent does, with the given variant ("nft" or "legacy"),
// inside ns. The commands are forked from a thread inside ns, so no `ip netns exec` cost is counted.
type iptablesWay struct {
	ns      *NS
	variant string
}

func (w iptablesWay) run(stdin []byte, bin string, args ...string) error {
	return w.ns.Do(func() error {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %v: %w: %s", bin, args, err, out)
		}
		return nil
	})
}

func (w iptablesWay) apply(in benchInput) error {
	for _, fam := range []struct {
		tool      string
		prefixes  []netip.Prefix
		linkLocal string
	}{{"iptables", in.v4, "169.254.0.0/16"}, {"ip6tables", in.v6, "fe80::/10"}} {
		tool := fam.tool + "-" + w.variant
		// Ensure the chain and the jump, as ip-masq-agent does: check, then append.
		_ = w.run(nil, tool, "-w", "5", "-t", "nat", "-N", benchChain)
		jump := []string{"POSTROUTING", "-m", "comment", "--comment", "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom " + benchChain + " chain",
			"-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", benchChain}
		if w.run(nil, tool, append([]string{"-w", "5", "-t", "nat", "-C"}, jump...)...) != nil {
			if err := w.run(nil, tool, append([]string{"-w", "5", "-t", "nat", "-A"}, jump...)...); err != nil {
				return err
			}
		}
		if err := w.run(ipMasqAgentPayload(fam.prefixes, fam.linkLocal), tool+"-restore", "--noflush", "-w", "5"); err != nil {
			return err
		}
	}
	return nil
}

// reset removes everything, for a cold apply.
func (w iptablesWay) reset() error {
	for _, tool := range []string{"iptables", "ip6tables"} {
		if err := w.run([]byte("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"), tool+"-"+w.variant+"-restore"); err != nil {
			return err
		}
		_ = w.run(nil, tool+"-"+w.variant, "-w", "5", "-t", "nat", "-F", benchChain)
		_ = w.run(nil, tool+"-"+w.variant, "-w", "5", "-t", "nat", "-X", benchChain)
	}
	return nil
}

// impls lists the implementations the host can run: masqd always; iptables-nft and iptables-legacy when
// their binaries exist (legacy also needs the kernel's legacy tables).
func impls(b *testing.B) []string {
	out := []string{"masqd"}
	for _, v := range []string{"nft", "legacy"} {
		if _, err := exec.LookPath("iptables-" + v + "-restore"); err == nil {
			out = append(out, "iptables-"+v)
		}
	}
	return out
}

// applier is one implementation's apply and reset inside ns.
type applier struct {
	apply func(benchInput) error
	reset func() error
}

func newApplier(b *testing.B, ns *NS, impl string) applier {
	if variant, ok := strings.CutPrefix(impl, "iptables-"); ok {
		w := iptablesWay{ns, variant}
		return applier{w.apply, w.reset}
	}
	f, err := ns.Open()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	conn := nft.NewConn(int(f.Fd()))
	b.Cleanup(func() { conn.Close() })
	return applier{
		apply: func(in benchInput) error { _, err := conn.Apply(in.compile()); return err },
		reset: func() error { conn.Forget(); return conn.Delete() },
	}
}

// BenchmarkFullApply: N prefixes per family into a namespace that holds none of the implementation's rules.
func BenchmarkFullApply(b *testing.B) {
	testenv.RequireKernel(b)
	for _, n := range benchPrefixes {
		in := newBenchInput(benchCIDRs(n))
		for _, impl := range impls(b) {
			b.Run(fmt.Sprintf("prefixes=%d/impl=%s", n, impl), func(b *testing.B) {
				ns := newNS(b, "bench")
				a := newApplier(b, ns, impl)
				for b.Loop() {
					b.StopTimer()
					if err := a.reset(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if err := a.apply(in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOnePrefixChange: one IPv4 prefix added to or removed from an N-prefix config, the steady-state
// edit. ip-masq-agent rewrites its whole chain; masqd sends the two changed set elements.
func BenchmarkOnePrefixChange(b *testing.B) {
	testenv.RequireKernel(b)
	extra := netip.MustParsePrefix("203.0.113.0/24")
	for _, n := range benchPrefixes {
		// base and more share their memory (more is base with extra last), so that the garbage collector,
		// which runs during the benchmark, scans one copy of the harness's lists, not two.
		v4, v6 := benchCIDRs(n)
		more := newBenchInput(append(v4, extra), v6)
		base := benchInput{v4, v6, more.cfg}
		base.cfg.NonMasqueradeCIDRs = more.cfg.NonMasqueradeCIDRs[:len(more.cfg.NonMasqueradeCIDRs)-1]
		for _, impl := range impls(b) {
			b.Run(fmt.Sprintf("prefixes=%d/impl=%s", n, impl), func(b *testing.B) {
				ns := newNS(b, "bench")
				a := newApplier(b, ns, impl)
				if err := a.apply(base); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					cur := base
					if i%2 == 0 {
						cur = more
					}
					i++
					if err := a.apply(cur); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(fmt.Sprintf("prefixes=%d/impl=kernel-floor", n), func(b *testing.B) {
			benchKernelFloor(b, base, extra)
		})
	}
}

// benchKernelFloor times the kernel's share of BenchmarkOnePrefixChange: the same edit of masqd's table,
// sent as the smallest batch there is, the two set elements of extra (encoded by google/nftables on every
// op; microseconds), with no compile, no diff and no read of the table. No tool can make the edit faster
// than this; what masqd takes beyond it is its own.
func benchKernelFloor(b *testing.B, base benchInput, extra netip.Prefix) {
	ns := newNS(b, "bench")
	if err := newApplier(b, ns, "masqd").apply(base); err != nil {
		b.Fatal(err)
	}
	f, err := ns.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	nc, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.CloseLasting()
	set := &nftables.Set{
		Table:    &nftables.Table{Name: ruleset.TableName, Family: nftables.TableFamilyINet},
		Name:     ruleset.Set4Name,
		KeyType:  nftables.TypeIPAddr,
		Interval: true,
	}
	end := ruleset.PrefixInterval(extra).Last().Next()
	elems := []nftables.SetElement{{Key: extra.Addr().AsSlice()}, {Key: end.AsSlice(), IntervalEnd: true}}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			err = nc.SetAddElements(set, elems)
		} else {
			err = nc.SetDeleteElements(set, elems)
		}
		i++
		if err == nil {
			err = nc.Flush()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	// The edits reached the kernel: after an odd number of them the prefix is in the set.
	if i%2 == 0 {
		if err := nc.SetAddElements(set, elems); err != nil {
			b.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	got, err := nc.GetSetElements(set)
	if err != nil {
		b.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(e nftables.SetElement) bool { return !e.IntervalEnd && bytes.Equal(e.Key, extra.Addr().AsSlice()) }) {
		b.Fatalf("%s is not in set %s after the edits", extra, ruleset.Set4Name)
	}
}

// BenchmarkConnect: one new TCP connection from the pod through the node's NAT to an outside host that is
// masqueraded (so every rule or the set is consulted), per op. Only a connection's first packet passes the
// NAT rules, so connections, not bytes, show the cost of N prefixes. conns/s is the figure to compare.
func BenchmarkConnect(b *testing.B) {
	testenv.RequireKernel(b)
	for _, n := range []int{10, 10_000} {
		in := newBenchInput(benchCIDRs(n))
		for _, impl := range impls(b) {
			b.Run(fmt.Sprintf("prefixes=%d/impl=%s", n, impl), func(b *testing.B) {
				lab := newLab(b, labOptions{})
				// Many short connections: let the pod reuse ports quickly.
				lab.Pod.Run(b, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1")
				if err := newApplier(b, lab.Node, impl).apply(in); err != nil {
					b.Fatal(err)
				}
				dst := net.JoinHostPort(lab.Internet.String(), strconv.Itoa(lab.outsideEcho.tcp))
				// Warm up, and check the path masquerades.
				if got, err := sourceSeenTCP(lab.Pod, lab.Internet, lab.outsideEcho.tcp, time.Second); err != nil || got != lab.NodeIP {
					b.Fatalf("warm-up: saw %s (%v), want %s", got, err, lab.NodeIP)
				}
				b.ResetTimer()
				err := lab.Pod.Do(func() error {
					for b.Loop() {
						c, err := net.DialTimeout("tcp", dst, 2*time.Second)
						if err != nil {
							return err
						}
						_, _ = io.Copy(io.Discard, c) // the server writes and closes first: no TIME_WAIT here
						c.Close()
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
			})
		}
	}
}

// BenchmarkEditToKernel: a config file edit until masqd's commit is seen in the kernel, through the running
// agent. ip-masq-agent has no such path: it re-reads the file every resyncInterval (60 s), after the
// kubelet's volume sync (up to about 60 s more) for a ConfigMap.
func BenchmarkEditToKernel(b *testing.B) {
	testenv.RequireKernel(b)
	lab := newLab(b, labOptions{})
	path := filepath.Join(b.TempDir(), "ip-masq-agent")
	mustWrite(b, path, cfgVPCOnly)
	ch := commits(b, lab.Node)
	startAgent(b, lab.Node, 9745, "--config="+path, "--log-level=warn")
	nextCommit(b, ch, "first apply")
	var lat []time.Duration
	i := 0
	for b.Loop() {
		c := cfgWithNetDocs
		if i%2 == 1 {
			c = cfgVPCOnly
		}
		i++
		start := time.Now()
		mustWrite(b, path, c)
		nextCommit(b, ch, "edit")
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// BenchmarkKubeEditToKernel: a ConfigMap update through a real kube-apiserver until masqd's commit is seen in
// the kernel, the agent watching kube-system/ip-masq-agent through the API as in the DaemonSet. ip-masq-agent
// has no such path: the kubelet syncs the mounted volume within about a minute, and it re-reads the file every
// resyncInterval (60 s). Each edit changes one prefix; TestKube makes the same edits and checks they land.
func BenchmarkKubeEditToKernel(b *testing.B) {
	testenv.RequireKernel(b)
	lab := newLab(b, labOptions{})
	cp := startControlPlane(b, lab.Node, kubeTools(b), lab.NodeIP.String())
	cms := cp.Admin.CoreV1().ConfigMaps(cmNamespace)
	cm, err := cms.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName},
		Data: map[string]string{"config": cfgVPCOnly}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ch := commits(b, lab.Node)
	// The file says the same as the ConfigMap, so whichever is read first makes the only first commit.
	a := startAgent(b, lab.Node, 9745, "--config="+writeConfig(b, cfgVPCOnly), "--kubeconfig="+cp.AdminKubeconfig, "--log-level=warn")
	nextCommit(b, ch, "first apply")
	a.waitStatus("/readyz", 200)
	cm, _ = editConfigMap(b, cms, cm, ch, cfgWithNetDocs) // the watch is live: edits are not listed late
	var lat []time.Duration
	i := 0
	for b.Loop() {
		var d time.Duration
		cm, d = editConfigMap(b, cms, cm, ch, fmt.Sprintf("nonMasqueradeCIDRs: [10.0.0.0/8, 192.168.%d.0/24]\n", i%256))
		lat = append(lat, d)
		i++
	}
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// procStats reads a process's resident memory and its CPU time and context switches, summed over threads.
// settle waits until the agent has spent a second without CPU time or a context switch, so that the idle
// window measures it at rest rather than the tail of its first apply (the kernel's notifications of its own
// commit, the API watch starting, the first Events). After 30 s it gives up and the window measures what is.
func settle(b *testing.B, pid int) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	_, cpu, sw, err := procStats(pid)
	for err == nil && time.Now().Before(deadline) {
		tick := time.NewTimer(time.Second)
		<-tick.C
		_, cpu2, sw2, err2 := procStats(pid)
		if cpu2 == cpu && sw2 == sw {
			return
		}
		cpu, sw, err = cpu2, sw2, err2
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("the agent did not come to rest within 30 s")
}

func procStats(pid int) (rssKiB int, cpu time.Duration, switches int, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKiB, _ = strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	const ticks = 100 // USER_HZ
	for _, task := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, task.Name())
		if st, err := os.ReadFile(dir + "stat"); err == nil {
			f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+2:]))
			u, _ := strconv.Atoi(f[11])
			s, _ := strconv.Atoi(f[12])
			cpu += time.Duration(u+s) * time.Second / ticks
		}
		if ts, err := os.ReadFile(dir + "status"); err == nil {
			for _, line := range strings.Split(string(ts), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					n, _ := strconv.Atoi(strings.TrimSpace(v))
					switches += n
				}
				if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
					n, _ := strconv.Atoi(strings.TrimSpace(v))
					switches += n
				}
			}
		}
	}
	return rssKiB, cpu, switches, nil
}

// BenchmarkAgentCost: the agent's resident memory, CPU and wakeups over a quiet window and over a window
// with one config edit per second, at N prefixes per family. impl=masqd reads a file; impl=masqd-configmap
// watches the ConfigMap through a real kube-apiserver (the Kubernetes source on, as in a DaemonSet), and the
// edits are ConfigMap updates. Run with -benchtime=1x.
func BenchmarkAgentCost(b *testing.B) {
	testenv.RequireKernel(b)
	window := 20 * time.Second
	if testing.Short() {
		window = 5 * time.Second
	}
	for _, n := range []int{10, 100_000} {
		for _, impl := range []string{"masqd", "masqd-configmap"} {
			if impl == "masqd-configmap" && n > 10 {
				continue // a ConfigMap holds at most 1 MiB
			}
			b.Run(fmt.Sprintf("prefixes=%d/impl=%s", n, impl), func(b *testing.B) {
				benchAgentCost(b, n, impl == "masqd-configmap", window)
			})
		}
	}
}

func benchAgentCost(b *testing.B, n int, configMap bool, window time.Duration) {
	lab := newLab(b, labOptions{})
	// A file holds at most 1 MiB (about 20,000 prefixes per family), so larger configs are a directory of
	// ip-masq* files that masqd merges; the edits go to the last one.
	const perFile = 20_000
	v4, v6 := benchCIDRs(n)
	var files []string
	for start := 0; start < n; start += perFile {
		var cfg strings.Builder
		cfg.WriteString("enableIPv6: true\ncidrLimit: 1000000\nnonMasqueradeCIDRs:\n")
		for _, p := range slices.Concat(v4[start:min(n, start+perFile)], v6[start:min(n, start+perFile)]) {
			fmt.Fprintf(&cfg, "  - %s\n", p)
		}
		files = append(files, cfg.String())
	}
	dir := b.TempDir()
	for i, f := range files[:len(files)-1] {
		mustWrite(b, filepath.Join(dir, fmt.Sprintf("ip-masq-agent-%d", i)), f)
	}
	path := filepath.Join(dir, fmt.Sprintf("ip-masq-agent-%d", len(files)-1))
	write := func(c string) { mustWrite(b, path, c) }
	args := []string{"--config=" + dir, "--log-level=warn"}
	base := files[len(files)-1]
	if configMap {
		if len(files) > 1 {
			b.Fatalf("%d prefixes per family do not fit one ConfigMap", n)
		}
		cp := startControlPlane(b, lab.Node, kubeTools(b), lab.NodeIP.String())
		cms := cp.Admin.CoreV1().ConfigMaps(cmNamespace)
		cm, err := cms.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName},
			Data: map[string]string{"config": base}}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		write = func(c string) {
			cm.Data["config"] = c
			if cm, err = cms.Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		args = append(args, "--kubeconfig="+cp.AdminKubeconfig)
	}
	write(base)
	ch := commits(b, lab.Node)
	a := startAgent(b, lab.Node, 9745, args...)
	nextCommit(b, ch, "first apply")
	a.waitStatus("/readyz", 200)
	pid := a.cmd.Process.Pid
	settle(b, pid)
	for b.Loop() {
		// Quiet: nothing changes.
		_, cpu0, sw0, err := procStats(pid)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), window)
		<-ctx.Done()
		cancel()
		rss, cpu1, sw1, err := procStats(pid)
		if err != nil {
			b.Fatal(err)
		}
		perMin := float64(time.Minute) / float64(window)
		b.ReportMetric(float64(rss)/1024, "idle-RSS-MiB")
		b.ReportMetric(float64((cpu1-cpu0).Milliseconds())*perMin, "idle-CPU-ms/min")
		b.ReportMetric(float64(sw1-sw0)*perMin, "idle-wakeups/min")
		// One edit per second: add and remove one prefix.
		tick := time.NewTicker(time.Second)
		deadline := time.Now().Add(window)
		edits := 0
		for now := range tick.C {
			if now.After(deadline) {
				break
			}
			c := base
			if edits%2 == 0 {
				c += "  - 203.0.113.0/24\n"
			}
			write(c)
			nextCommit(b, ch, "edit")
			edits++
		}
		tick.Stop()
		rss2, cpu2, _, err := procStats(pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rss2)/1024, "busy-RSS-MiB")
		b.ReportMetric(float64((cpu2-cpu1).Milliseconds())*perMin, "busy-CPU-ms/min")
	}
}

// TestBenchCIDRsStaySeparate: the benchmarks' prefixes compile to one interval each (plus link-local per
// family), so that "N prefixes" is N intervals in masqd's sets as it is N rules in the iptables chain.
func TestBenchCIDRsStaySeparate(t *testing.T) {
	const n = 100_000
	r := newBenchInput(benchCIDRs(n)).compile()
	if len(r.NonMasq4) != n+1 || len(r.NonMasq6) != n+1 {
		t.Fatalf("%d prefixes per family compile to %d IPv4 and %d IPv6 intervals, want %d each",
			n, len(r.NonMasq4), len(r.NonMasq6), n+1)
	}
}
