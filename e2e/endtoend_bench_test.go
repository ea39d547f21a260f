//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// BenchmarkEndToEnd measures masqd the way a user meets it: whole processes started from the shell, reading a
// real config directory (four ip-masq-agent-N files holding the prefixes between them, as on a bare VM), and,
// where the figure is about packets, UDP from the lab's pod namespace through the node to the outside, whose
// echo server says which source address it saw. Beside masqd, in the same run, what users run today:
// iptables-legacy-restore and iptables-nft-restore of ip-masq-agent's chain, and, when
// MASQD_BENCH_IP_MASQ_AGENT names an ip-masq-agent binary built from kubernetes-sigs/ip-masq-agent, upstream's
// own first sync and resync.
//
// Sub-benchmarks are family=…/figure=…/impl=…, each figure a time per operation (ns/op) unless it says
// otherwise in its own unit. `just bench-e2e` runs them and keeps the output in bench/endtoend.txt;
// BENCHMARKS.md, "End to end", quotes it. Sizes: MASQD_BENCH_E2E_PREFIXES (default 100000) per family.
func BenchmarkEndToEnd(b *testing.B) {
	testenv.RequireKernel(b)
	n := 100_000
	if s := os.Getenv("MASQD_BENCH_E2E_PREFIXES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("MASQD_BENCH_E2E_PREFIXES=%q: %v", s, err)
		}
	}
	for _, fam := range []struct {
		name   string
		n4, n6 int
	}{{"ipv4", n, 0}, {"ipv6", 0, n}, {"dual", n, n}} {
		w := newWholePath(b, fam.n4, fam.n6)
		b.Run(fmt.Sprintf("family=%s/prefixes=%d", fam.name, n), func(b *testing.B) {
			b.Run("figure=apply/impl=masqd", w.benchOnce)
			for _, v := range []string{"legacy", "nft"} {
				b.Run("figure=apply/impl=iptables-"+v+"-restore", func(b *testing.B) { w.benchRestore(b, v) })
			}
			if up := os.Getenv("MASQD_BENCH_IP_MASQ_AGENT"); up != "" {
				b.Run("figure=apply/impl=ip-masq-agent", func(b *testing.B) { w.benchUpstreamSync(b, up) })
			}
			b.Run("figure=ready/impl=masqd", func(b *testing.B) { w.benchReady(b, false) })
			b.Run("figure=ready-restart/impl=masqd", func(b *testing.B) { w.benchReady(b, true) })
			b.Run("figure=edit-to-packet/impl=masqd", w.benchEdit)
			b.Run("figure=drift-to-packet/impl=masqd", w.benchDrift)
			b.Run("figure=resync/impl=masqd", w.benchResync)
			if up := os.Getenv("MASQD_BENCH_IP_MASQ_AGENT"); up != "" {
				b.Run("figure=resync/impl=ip-masq-agent", func(b *testing.B) { w.benchUpstreamResync(b, up) })
			}
			b.Run("figure=status/impl=masqd", w.benchStatus)
			b.Run("figure=explain/impl=masqd", func(b *testing.B) {
				w.benchCommand(b, "explain", "--config="+w.dir, "--enable-ipv6", internet.String(), "11.0.0.5", "2001:db8:a000:2::1")
			})
			b.Run("figure=check/impl=masqd", func(b *testing.B) {
				w.benchCommand(b, "check", "--enable-ipv6", filepath.Join(w.single, "ip-masq-agent"))
			})
		})
	}
}

// wholePath is one size of the end-to-end benchmark: its config directory (four files), the same prefixes
// as one file (for ip-masq-agent, which reads one file, and masqd check), and ip-masq-agent's chain as
// iptables-restore input.
type wholePath struct {
	n4, n6          int
	dir, single     string
	payload4        []byte // iptables-restore input of ip-masq-agent's chain
	payload6        []byte
	edit            string // the line the edit adds to the first file: a prefix holding the lab's internet host
	files           [][]byte
	ipv6, probeDest netip.Addr
	port            int // the source port of the last probe
}

// wholePathPrefixes returns n4 IPv4 /25s and n6 IPv6 /64s, none adjacent to another and none holding a lab
// address.
func wholePathPrefixes(n4, n6 int) (v4, v6 []netip.Prefix) {
	for i := range n4 {
		v4 = append(v4, netip.PrefixFrom(netip.AddrFrom4([4]byte{11 + byte(i>>16), byte(i >> 8), byte(i), 0}), 25))
	}
	for i := range n6 {
		v6 = append(v6, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xa0, byte(i >> 15), byte(i >> 7), byte(i << 1)}), 64))
	}
	return v4, v6
}

// wholePathFile is a config file as a user writes one: a block list, a comment, the other keys.
func wholePathFile(prefixes []netip.Prefix, ipv6 bool, resync, extra string) []byte {
	var b bytes.Buffer
	b.WriteString("# ip-masq-agent config written by the end-to-end benchmark\ncidrLimit: 1000000\n")
	if ipv6 {
		b.WriteString("enableIPv6: true\n")
	}
	b.WriteString("nonMasqueradeCIDRs:\n")
	b.WriteString(extra)
	for _, p := range prefixes {
		b.WriteString("  - ")
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "masqLinkLocal: false\nresyncInterval: %s\n", resync)
	return b.Bytes()
}

func newWholePath(b *testing.B, n4, n6 int) *wholePath {
	v4, v6 := wholePathPrefixes(n4, n6)
	all := slices.Concat(v4, v6)
	w := &wholePath{n4: n4, n6: n6, dir: b.TempDir(), single: b.TempDir(), probeDest: internet,
		edit: "  - " + netip.PrefixFrom(internet, 25).Masked().String() + "\n"}
	if n4 == 0 {
		w.probeDest = internet6
		w.edit = "  - " + netip.PrefixFrom(internet6, 64).Masked().String() + "\n"
	}
	const files = 4
	for f := range files {
		part := all[f*len(all)/files : (f+1)*len(all)/files]
		w.files = append(w.files, wholePathFile(part, n6 > 0, "60s", ""))
		mustWriteB(b, filepath.Join(w.dir, fmt.Sprintf("ip-masq-agent-%d", f)), w.files[f])
	}
	mustWriteB(b, filepath.Join(w.single, "ip-masq-agent"), wholePathFile(all, n6 > 0, "60s", ""))
	w.payload4 = ipMasqAgentPayload(v4, "169.254.0.0/16")
	w.payload6 = ipMasqAgentPayload(v6, "fe80::/10")
	return w
}

func mustWriteB(b testing.TB, path string, data []byte) {
	b.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// enableIPv6 is the flag masqd and ip-masq-agent need for IPv6 prefixes.
func (w *wholePath) enableIPv6() []string {
	if w.n6 > 0 {
		return []string{"--enable-ipv6"}
	}
	return nil
}

// timedChild runs argv in ns under peakrss (stdin from stdin when not nil) and returns how long the whole
// process took and its peak resident memory. A failure fails the benchmark.
func timedChild(b *testing.B, ns *NS, stdin []byte, argv ...string) (time.Duration, int64) {
	b.Helper()
	rssFile := filepath.Join(b.TempDir(), "peak-rss")
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, peakRSSBin, rssFile}, argv...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		b.Fatalf("%v: %v\n%s", argv, err, clipText(out.String(), 2000))
	}
	kib, err := os.ReadFile(rssFile)
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(kib)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return elapsed, n << 10
}

// reportPeak reports the largest peak resident memory of the runs, in MiB.
func reportPeak(b *testing.B, peaks []int64) {
	b.ReportMetric(float64(slices.Max(peaks))/(1<<20), "peak-MiB")
}

// benchOnce: `masqd --once` into a node namespace without masqd's table: read the directory, detect the
// backend, compile, apply in one transaction, verify, look for ip-masq-agent's chains to remove, exit.
func (w *wholePath) benchOnce(b *testing.B) {
	var peaks []int64
	var total time.Duration
	for range b.N {
		ns := newNS(b, "e2e")
		d, peak := timedChild(b, ns, nil, append([]string{masqdBin, "--once", "--config=" + w.dir, "--log-format=json"}, w.enableIPv6()...)...)
		total += d
		peaks = append(peaks, peak)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	reportPeak(b, peaks)
}

// benchRestore: ip-masq-agent's chain through `iptables-VARIANT-restore --noflush` (and ip6tables' for IPv6)
// into a fresh namespace: the work of its first sync, without the rest of its process.
func (w *wholePath) benchRestore(b *testing.B, variant string) {
	var peaks []int64
	var total time.Duration
	for range b.N {
		ns := newNS(b, "e2e")
		if w.n4 > 0 {
			d, peak := timedChild(b, ns, w.payload4, "iptables-"+variant+"-restore", "--noflush", "-w", "5")
			total += d
			peaks = append(peaks, peak)
		}
		if w.n6 > 0 {
			d, peak := timedChild(b, ns, w.payload6, "ip6tables-"+variant+"-restore", "--noflush", "-w", "5")
			total += d
			peaks = append(peaks, peak)
		}
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	reportPeak(b, peaks)
}

// startWholeAgent starts the agent in ns on w's directory and waits until it is ready; it returns the agent
// and how long readiness took from the process's start.
func (w *wholePath) startWholeAgent(b *testing.B, ns *NS, dir string) (*agentProc, time.Duration) {
	b.Helper()
	start := time.Now()
	a := startAgentAs(b, ns, 9745, nil, masqdBin, append([]string{"--config=" + dir, "--log-level=info"}, w.enableIPv6()...)...)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, _, err := a.get("/readyz")
		if err == nil && code == http.StatusOK {
			return a, time.Since(start)
		}
		select {
		case <-a.exited:
			b.Fatalf("masqd exited before it was ready:\n%s", clipText(a.Logs(), 4000))
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("masqd not ready within 2 minutes:\n%s", clipText(a.Logs(), 4000))
		}
		// Polled, not slept on: the next GET is the wait, a few hundred microseconds.
	}
}

// benchReady: the agent's start to /readyz answering 200, on a fresh node (no table) or on a restart (the
// table there from the process before). It also reports the agent's resident memory once at rest.
func (w *wholePath) benchReady(b *testing.B, restart bool) {
	var total time.Duration
	var rss, peak []int64
	for range b.N {
		ns := newNS(b, "e2e")
		if restart {
			mustMasqd(b, ns, append([]string{"--once", "--config=" + w.dir}, w.enableIPv6()...)...)
		}
		a, d := w.startWholeAgent(b, ns, w.dir)
		total += d
		settle(b, a.cmd.Process.Pid)
		kib, _, _, err := procStats(a.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		rss = append(rss, int64(kib)<<10)
		peak = append(peak, peakRSS(b, a.cmd.Process.Pid))
		a.stop(syscall.SIGTERM)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(slices.Max(rss))/(1<<20), "rest-RSS-MiB")
	reportPeak(b, peak)
}

// wholeLab is the pod → node → outside lab with the agent running on a copy of w's directory.
func (w *wholePath) wholeLab(b *testing.B) (*Lab, *agentProc, string) {
	lab := newLab(b, labOptions{})
	dir := b.TempDir()
	for f, data := range w.files {
		mustWriteB(b, filepath.Join(dir, fmt.Sprintf("ip-masq-agent-%d", f)), data)
	}
	a, _ := w.startWholeAgent(b, lab.Node, dir)
	return lab, a, dir
}

// waitSource sends fresh UDP flows from the pod to w's probe destination until the outside sees want as
// their source, and returns when it did. Each probe is a new flow from a source port no earlier probe of
// the run used (the node's conntrack is flushed between runs), so no earlier translation decides it.
func (w *wholePath) waitSource(b *testing.B, lab *Lab, want netip.Addr, limit time.Duration) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		w.port = 20000 + (max(w.port, 20000)-20000+1)%40000
		got, err := sourceSeenUDPFrom(lab.Pod, fromPort(w.port), w.probeDest, lab.outsideEcho.udp, time.Second)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			rules, _ := lab.Node.RunErr("sh", "-c", "nft list tables; nft list ruleset | grep -v '/' | head -30")
			b.Fatalf("after %v the outside still sees %v (%v) from the pod, want %v; the node's tables:\n%s", limit, got, err, want, rules)
		}
	}
}

// forgetFlows empties the node's conntrack table between two measurements, so that the probes of one do
// not meet the translations of the last.
func forgetFlows(b *testing.B, lab *Lab) {
	b.Helper()
	if out, err := lab.Node.RunErr("conntrack", "-F"); err != nil && !strings.Contains(out, "0 flow entries") {
		b.Fatal(err)
	}
}

// podAndNode are the addresses the outside sees for the probe destination's family: the pod's (not
// masqueraded) and the node's (masqueraded).
func (w *wholePath) podAndNode(lab *Lab) (pod, node netip.Addr) {
	if w.probeDest.Is6() {
		return lab.PodIP6, lab.NodeIP6
	}
	return lab.PodIP, lab.NodeIP
}

// benchEdit: one prefix added to (then removed from) one of the four files, written whole with a rename as
// an editor does, until a new flow from the pod leaves with the source address the edit asks for.
func (w *wholePath) benchEdit(b *testing.B) {
	lab, _, dir := w.wholeLab(b)
	pod, node := w.podAndNode(lab)
	w.waitSource(b, lab, node, 10*time.Second)
	first := filepath.Join(dir, "ip-masq-agent-0")
	edited := bytes.Replace(w.files[0], []byte("nonMasqueradeCIDRs:\n"), []byte("nonMasqueradeCIDRs:\n"+w.edit), 1)
	var total, worst time.Duration
	for i := range b.N {
		content, want := edited, pod
		if i%2 == 1 {
			content, want = w.files[0], node
		}
		forgetFlows(b, lab)
		start := time.Now()
		tmp := first + ".tmp"
		if err := os.WriteFile(tmp, content, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, first); err != nil {
			b.Fatal(err)
		}
		w.waitSource(b, lab, want, 30*time.Second)
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
}

// benchDrift: someone deletes table inet masqd (`nft delete table`, timed from the command's start); until the
// agent puts it back, pod traffic to the internet leaves with the pod's address. The figure is the time
// until a new flow leaves with the node's address again.
func (w *wholePath) benchDrift(b *testing.B) {
	lab, _, _ := w.wholeLab(b)
	_, node := w.podAndNode(lab)
	w.waitSource(b, lab, node, 10*time.Second)
	var total, worst time.Duration
	for range b.N {
		forgetFlows(b, lab)
		start := time.Now()
		lab.Node.Run(b, "nft", "delete", "table", "inet", "masqd")
		w.waitSource(b, lab, node, 30*time.Second)
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
}

// benchResync: the agent's CPU time per resync at rest (resyncInterval 2s: the figure is per resync, whatever
// the interval), over five resyncs after it has settled, and its resident memory.
func (w *wholePath) benchResync(b *testing.B) {
	ns := newNS(b, "e2e")
	dir := b.TempDir()
	for f, data := range w.files {
		mustWriteB(b, filepath.Join(dir, fmt.Sprintf("ip-masq-agent-%d", f)), bytes.Replace(data, []byte("resyncInterval: 60s"), []byte("resyncInterval: 2s"), 1))
	}
	a, _ := w.startWholeAgent(b, ns, dir)
	pid := a.cmd.Process.Pid
	_, _, _, err := procStats(pid)
	if err != nil {
		b.Fatal(err)
	}
	const resyncs = 5
	var perResync []time.Duration
	var rss []int64
	b.ResetTimer()
	for range b.N {
		_, before, _, err := procStats(pid)
		if err != nil {
			b.Fatal(err)
		}
		window := time.NewTimer(resyncs * 2 * time.Second)
		<-window.C // a measurement window, not a wait for a condition
		kib, after, _, err := procStats(pid)
		if err != nil {
			b.Fatal(err)
		}
		perResync = append(perResync, (after-before)/resyncs)
		rss = append(rss, int64(kib)<<10)
	}
	b.StopTimer()
	var sum time.Duration
	for _, d := range perResync {
		sum += d
	}
	b.ReportMetric(float64(sum.Microseconds())/1000/float64(len(perResync)), "cpu-ms/resync")
	b.ReportMetric(float64(slices.Max(rss))/(1<<20), "RSS-MiB")
	b.ReportMetric(0, "ns/op")
}

// benchStatus: `masqd status` of a node holding the config (applied with --once): it reads the config and
// the kernel's table, and compares them.
func (w *wholePath) benchStatus(b *testing.B) {
	ns := newNS(b, "e2e")
	mustMasqd(b, ns, append([]string{"--once", "--config=" + w.dir}, w.enableIPv6()...)...)
	w.benchCommandIn(b, ns, append([]string{"status", "--config=" + w.dir, "--http-address="}, w.enableIPv6()...)...)
}

// benchCommand: one of masqd's commands that needs no kernel, as a whole process.
func (w *wholePath) benchCommand(b *testing.B, args ...string) {
	w.benchCommandIn(b, newNS(b, "e2e"), args...)
}

func (w *wholePath) benchCommandIn(b *testing.B, ns *NS, args ...string) {
	var total time.Duration
	var peaks []int64
	for range b.N {
		d, peak := timedChild(b, ns, nil, append([]string{masqdBin}, args...)...)
		total += d
		peaks = append(peaks, peak)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	reportPeak(b, peaks)
}

// upstreamCmd runs ip-masq-agent in ns reading dir as /etc/config (it reads no other path): a private mount
// namespace binds dir there. /etc/config is created on the host if it is missing (an empty directory,
// removed again at the end).
func (w *wholePath) upstreamCmd(b *testing.B, ns *NS, bin, dir string) *exec.Cmd {
	b.Helper()
	if _, err := os.Stat("/etc/config"); os.IsNotExist(err) {
		if err := os.Mkdir("/etc/config", 0o755); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.Remove("/etc/config") })
	}
	script := fmt.Sprintf("mount --bind %s /etc/config && exec %s --logtostderr %s", dir, bin, strings.Join(w.enableIPv6(), " "))
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// upstreamSynced reports whether ip-masq-agent's chains in ns end in their MASQUERADE rule (written last, in
// the same iptables-restore as the rest), through the iptables it uses (the distribution's default).
func (w *wholePath) upstreamSynced(ns *NS) bool {
	rule := []string{"-w", "5", "-t", "nat", "-C", benchChain, "-m", "comment", "--comment",
		"ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)", "-j", "MASQUERADE", "--random-fully"}
	if w.n4 > 0 {
		if _, err := ns.RunErr(append([]string{"iptables"}, rule...)...); err != nil {
			return false
		}
	}
	if w.n6 > 0 {
		if _, err := ns.RunErr(append([]string{"ip6tables"}, rule...)...); err != nil {
			return false
		}
	}
	return true
}

// benchUpstreamSync: ip-masq-agent's start to the end of its first sync, reading the same prefixes from
// its one file.
func (w *wholePath) benchUpstreamSync(b *testing.B, bin string) {
	var total time.Duration
	for range b.N {
		ns := newNS(b, "e2e")
		cmd := w.upstreamCmd(b, ns, bin, w.single)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for !w.upstreamSynced(ns) {
			if time.Now().After(deadline) {
				b.Fatalf("ip-masq-agent did not sync within 5 minutes:\n%s", clipText(logs.String(), 4000))
			}
		}
		total += time.Since(start)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
}

// benchUpstreamResync: ip-masq-agent's CPU per resync (its own and its iptables children's), resyncInterval
// 10s, over three resyncs after its first.
func (w *wholePath) benchUpstreamResync(b *testing.B, bin string) {
	ns := newNS(b, "e2e")
	dir := b.TempDir()
	mustWriteB(b, filepath.Join(dir, "ip-masq-agent"), bytes.Replace(readFileB(b, filepath.Join(w.single, "ip-masq-agent")), []byte("resyncInterval: 60s"), []byte("resyncInterval: 10s"), 1))
	cmd := w.upstreamCmd(b, ns, bin, dir)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for !w.upstreamSynced(ns) && ctx.Err() == nil {
	}
	const resyncs = 3
	var per []time.Duration
	for range b.N {
		before := treeCPU(b, cmd.Process.Pid)
		window := time.NewTimer(resyncs * 10 * time.Second)
		<-window.C // a measurement window, not a wait for a condition
		per = append(per, (treeCPU(b, cmd.Process.Pid)-before)/resyncs)
	}
	var sum time.Duration
	for _, d := range per {
		sum += d
	}
	b.ReportMetric(float64(sum.Microseconds())/1000/float64(len(per)), "cpu-ms/resync")
	b.ReportMetric(0, "ns/op")
}

// treeCPU is the CPU time of pid and of the children it has waited for (utime, stime, cutime, cstime), and
// of its own children still alive (ip netns exec and unshare exec; the agent is a descendant).
func treeCPU(b *testing.B, pid int) time.Duration {
	var total time.Duration
	var walk func(pid int)
	walk = func(pid int) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+2:]))
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.Atoi(f[i])
			total += time.Duration(v) * time.Second / 100
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, c := range strings.Fields(string(children)) {
			if n, err := strconv.Atoi(c); err == nil {
				walk(n)
			}
		}
	}
	walk(pid)
	return total
}

func readFileB(b *testing.B, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
