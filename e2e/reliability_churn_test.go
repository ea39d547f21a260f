//go:build linux

package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/internal/testenv"
)

// churnConfig is one config of the churn test, with what it means for the two destinations, written out by
// hand rather than computed by masqd's compiler.
type churnConfig struct {
	text                  string
	internetMasq, vpcMasq bool // the class of lab.Internet (198.51.100.10) and lab.VPC (10.130.0.9)
}

// churnConfigs are n+1 configs that never change the class of either destination: they move other prefixes,
// so masqd updates set elements in place. With rebuild, every edit also turns IPv6 on or off, which changes
// the ruleset's shape: masqd then replaces the whole table (inside one transaction).
func churnConfigs(n int, rebuild bool) []churnConfig {
	out := make([]churnConfig, n+1)
	for i := range out {
		var b strings.Builder
		ipv6 := rebuild && i%2 == 1
		fmt.Fprintf(&b, "enableIPv6: %t\nnonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 100.64.%d.0/24\n", ipv6, i%256)
		if i%2 == 1 {
			b.WriteString("  - 192.0.2.0/24\n")
		}
		if ipv6 {
			b.WriteString("  - 2001:db8:100::/48\n")
		}
		fmt.Fprintf(&b, "masqueradeCIDRs: [10.200.%d.0/24]\n", i%256)
		out[i] = churnConfig{text: b.String(), internetMasq: true, vpcMasq: false}
	}
	return out
}

// flipConfigs cycle through every combination of the two destinations' classes, one destination flipping at
// each edit: X (internet masq, VPC not) → Y (neither) → W (VPC only) → Z (both) → X.
var flipConfigs = []churnConfig{
	{text: "nonMasqueradeCIDRs: [10.0.0.0/8]\n", internetMasq: true, vpcMasq: false},
	{text: "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n", internetMasq: false, vpcMasq: false},
	{text: "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\nmasqueradeCIDRs: [10.130.0.9/32]\n", internetMasq: false, vpcMasq: true},
	{text: "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.130.0.0/16]\n", internetMasq: true, vpcMasq: true},
}

// generation is the config generation shared by the edit loop and the traffic: written is the last config
// about to be written to the file (raised before the write, since masqd may apply it at once), applied the last
// one whose commit the monitor has seen (raised after). The kernel's config is always between the two.
type generation struct{ written, applied atomic.Int64 }

// datagram is one UDP datagram of the traffic generator, each from a source port and to a destination port
// never used before in the test, so each is a new conntrack flow classified by the ruleset in force.
type datagram struct {
	dst     int   // 0: lab.Internet, 1: lab.VPC
	applied int64 // generation.applied just before the send: the kernel had at least this config
	arrived bool
	src     netip.Addr
	written int64         // generation.written when it arrived: the kernel had at most this config
	sent    time.Duration // since the traffic started, just before the send
}

// udpTraffic sends datagrams from the lab's pod to two destinations and records, at a listener of each in the
// outside namespace, the source address every datagram arrived with.
type udpTraffic struct {
	lab   *Lab
	gen   *generation
	dsts  [2]netip.Addr
	ports [2][4]int // listener ports per destination

	start time.Time // when the generator started; datagram.sent counts from it

	mu       sync.Mutex
	dgrams   []datagram
	sendErrs int
	late     int // arrivals of unknown or repeated sequence numbers

	stop, done chan struct{}
}

const (
	firstSourcePort = 1024
	sourcePorts     = 65536 - firstSourcePort
)

// startUDPTraffic starts listeners and a generator that sends one datagram to each destination every
// interval. Stop it with stopAndSettle.
func startUDPTraffic(t *testing.T, lab *Lab, gen *generation, interval time.Duration) *udpTraffic {
	t.Helper()
	u := &udpTraffic{lab: lab, gen: gen, dsts: [2]netip.Addr{lab.Internet, lab.VPC},
		stop: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	var conns []*net.UDPConn
	err := lab.Outside.Do(func() error {
		for d, dst := range u.dsts {
			for k := range u.ports[d] {
				c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 0)))
				if err != nil {
					return err
				}
				if raw, err := c.SyscallConn(); err == nil {
					_ = raw.Control(func(fd uintptr) {
						_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
					})
				}
				conns = append(conns, c)
				u.ports[d][k] = c.LocalAddr().(*net.UDPAddr).Port
			}
		}
		return nil
	})
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	if err != nil {
		t.Fatalf("listeners in %s: %v", lab.Outside.Name, err)
	}
	for _, c := range conns {
		go u.listen(c)
	}
	go u.send(interval)
	t.Cleanup(func() {
		select {
		case <-u.stop:
		default:
			close(u.stop)
		}
		<-u.done
	})
	return u
}

func (u *udpTraffic) listen(c *net.UDPConn) {
	buf := make([]byte, 64)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		written := u.gen.written.Load()
		u.mu.Lock()
		seq := uint64(0)
		if n >= 8 {
			seq = binary.BigEndian.Uint64(buf[:8])
		}
		if n < 8 || seq >= uint64(len(u.dgrams)) || u.dgrams[seq].arrived {
			u.late++
		} else {
			d := &u.dgrams[seq]
			d.arrived, d.src, d.written = true, from.Addr().Unmap(), written
		}
		u.mu.Unlock()
	}
}

// send runs on an OS thread switched into the pod's namespace for good: the thread ends with the goroutine.
func (u *udpTraffic) send(interval time.Duration) {
	defer close(u.done)
	runtime.LockOSThread()
	f, err := u.lab.Pod.Open()
	if err != nil {
		u.fail()
		return
	}
	err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	f.Close()
	if err != nil {
		u.fail()
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	payload := make([]byte, 16)
	src := unix.SockaddrInet4{Addr: u.lab.PodIP.As4()}
	for {
		select {
		case <-u.stop:
			return
		case <-tick.C:
		}
		for d := range u.dsts {
			u.mu.Lock()
			seq := len(u.dgrams)
			u.dgrams = append(u.dgrams, datagram{dst: d, applied: u.gen.applied.Load(), sent: time.Since(u.start)})
			u.mu.Unlock()
			k := seq / 2 // datagrams so far to this destination
			src.Port = firstSourcePort + k%sourcePorts
			dst := unix.SockaddrInet4{Addr: u.dsts[d].As4(), Port: u.ports[d][(k/sourcePorts)%len(u.ports[d])]}
			binary.BigEndian.PutUint64(payload, uint64(seq))
			if err := sendFrom(&src, &dst, payload); err != nil {
				u.fail()
			}
		}
	}
}

func (u *udpTraffic) fail() {
	u.mu.Lock()
	u.sendErrs++
	u.mu.Unlock()
}

// sendFrom sends one datagram from a socket bound to src, then closes it.
func sendFrom(src, dst *unix.SockaddrInet4, payload []byte) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := unix.Bind(fd, src); err != nil {
		return err
	}
	return unix.Sendto(fd, payload, 0, dst)
}

// sentCount is the number of datagrams sent so far.
func (u *udpTraffic) sentCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.dgrams)
}

// arrivals counts the datagrams that arrived at each destination.
func (u *udpTraffic) arrivals() (perDst [2]int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, d := range u.dgrams {
		if d.arrived {
			perDst[d.dst]++
		}
	}
	return perDst
}

// stopAndSettle stops sending and waits until every datagram has arrived, or until arrivals stop for a
// while; it returns the datagrams.
func (u *udpTraffic) stopAndSettle(t *testing.T) []datagram {
	t.Helper()
	close(u.stop)
	<-u.done
	last, quiet := -1, 0
	waitFor(t, 10*time.Second, "datagrams in flight to arrive", func() error {
		a := u.arrivals()
		got := a[0] + a[1]
		if got == u.sentCount() {
			return nil
		}
		if got == last {
			quiet++
			if quiet >= 25 { // 500 ms without an arrival: the rest are lost
				return nil
			}
		} else {
			last, quiet = got, 0
		}
		return fmt.Errorf("%d of %d arrived", got, u.sentCount())
	})
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.sendErrs > 0 {
		t.Errorf("%d datagrams could not be sent", u.sendErrs)
	}
	return u.dgrams
}

// TestReliabilityChurn is issue 7's first test. UDP datagrams from fresh source ports go from the pod to a
// masquerade destination (lab.Internet) and a non-masquerade one (lab.VPC) while the running agent is
// reconfigured 1,000 times (10,000 with MASQD_SOAK=1) by configs that change other prefixes: not one datagram
// may reach the internet with the pod's address, nor the VPC with the node's. Then configs flip the two
// destinations' classes: each datagram must be classified by a config that was in force between its send and
// its arrival — the old one or the new one, never anything else.
func TestReliabilityChurn(t *testing.T) {
	testenv.RequireKernel(t)
	edits, flips := soakSize(1000, 10000), soakSize(200, 2000)
	cfgs := churnConfigs(edits, false)
	for i := range flips {
		cfgs = append(cfgs, flipConfigs[(i+1)%len(flipConfigs)])
	}
	// The last churn config and the first flip config agree on both classes, so the phases join cleanly.
	res := runChurn(t, cfgs, edits, time.Millisecond, "")
	var b strings.Builder
	fmt.Fprintf(&b, "The running agent (`masqd --config=FILE`, file replaced by rename) was reconfigured %d times by configs that move other prefixes (masqd updates set elements in place), then %d times by configs that flip a destination's class. Each edit waited for masqd's commit before the next. Meanwhile the pod sent UDP datagrams to each destination (one per tick of a 1 ms ticker), each from a never-used source port (a new conntrack flow, so classified by the ruleset in force); a listener per destination in the outside namespace recorded the source address of every datagram.\n\n", edits, flips)
	res.table(&b, fmt.Sprintf("%d edits of other prefixes", edits), fmt.Sprintf("%d class flips", flips))
	reportFigures(t, "churn", b.String())
}

// TestReliabilityChurnRebuild is the churn test with edits that change the ruleset's shape: every edit turns
// IPv6 on or off, so masqd rebuilds its table: the new set with its elements in one transaction, then the rules
// in a second (RELIABILITY.md, finding 1: a rule that reads a set created in the same transaction misses now and
// then on Linux 6.18, as TestReliabilityRebuildAtomicity shows with nft alone). The classes of the two
// destinations never change, so any datagram to the VPC with the node's address is a third state.
func TestReliabilityChurnRebuild(t *testing.T) {
	testenv.RequireKernel(t)
	edits := soakSize(500, 5000)
	// Four datagrams per millisecond to each destination: the window is short, and more flows cross it.
	res := runChurn(t, churnConfigs(edits, true), edits, 250*time.Microsecond, "")
	var b strings.Builder
	fmt.Fprintf(&b, "The same agent and traffic (one datagram per tick of a 250 µs ticker to each destination), reconfigured %d times by configs that turn IPv6 on and off, so that every edit changes the table's shape and masqd rebuilds it: a new set, when there is one, with its elements first, then the rules (%d commits changed rules).\n\n", edits, res.rebuilds)
	res.table(&b, fmt.Sprintf("%d rebuilds", edits), "")
	reportFigures(t, "churn-rebuild", b.String())
}

// TestReliabilityChurnLarge is the churn test at the scale users run: 100,000 IPv4 prefixes stay in force (a
// second file of the config directory holds them, as on a bare VM), so every edit is an element update of a
// set of 100,000 intervals, and the agent merges and compiles 100,000 prefixes each time. 300 edits (3,000
// with MASQD_SOAK=1) under traffic: not one datagram may leave with the wrong source.
func TestReliabilityChurnLarge(t *testing.T) {
	testenv.RequireKernel(t)
	edits := soakSize(300, 3000)
	v4, _ := wholePathPrefixes(100_000, 0)
	var bg strings.Builder
	bg.WriteString("cidrLimit: 1000000\nnonMasqueradeCIDRs:\n")
	for _, p := range v4 {
		fmt.Fprintf(&bg, "  - %s\n", p)
	}
	res := runChurn(t, churnConfigs(edits, false), edits, time.Millisecond, bg.String())
	var b strings.Builder
	fmt.Fprintf(&b, "The same agent and traffic, its config a directory of two files: one holding 100,000 IPv4 /25s that stay, the other reconfigured %d times as in the churn test above (masqd merges the two, compiles 100,000 prefixes and updates the elements of a 100,000-interval set in place at each edit).\n\n", edits)
	res.table(&b, fmt.Sprintf("%d edits beside 100,000 prefixes", edits), "")
	reportFigures(t, "churn-large", b.String())
}

// churnTally counts the datagrams of one phase to one destination.
type churnTally struct{ sent, arrived, pod, node, other, bad int }

// churnResult is what runChurn saw.
type churnResult struct {
	churn, flip [2]churnTally // per destination: 0 internet, 1 VPC
	rebuilds    int
	flows       int // UDP conntrack entries in the node namespace, each seen once (see runChurn)
	lat         []time.Duration
	rate        float64 // datagrams per second to each destination
}

func (r churnResult) table(b *strings.Builder, churnPhase, flipPhase string) {
	b.WriteString("| phase | destination | sent | arrived | with pod IP | with node IP | leaks / impossible |\n|---|---|---:|---:|---:|---:|---:|\n")
	row := func(phase, dst string, x churnTally, leaks int) {
		fmt.Fprintf(b, "| %s | %s | %d | %d | %d | %d | **%d** |\n", phase, dst, x.sent, x.arrived, x.pod, x.node, leaks)
	}
	row(churnPhase, "198.51.100.10 (masquerade)", r.churn[0], r.churn[0].pod+r.churn[0].other)
	row(churnPhase, "10.130.0.9 (non-masquerade)", r.churn[1], r.churn[1].node+r.churn[1].other)
	if flipPhase == "" {
		b.WriteString("\n")
	} else {
		row(flipPhase, "198.51.100.10 (flips)", r.flip[0], r.flip[0].bad)
		row(flipPhase, "10.130.0.9 (flips)", r.flip[1], r.flip[1].bad)
		b.WriteString("\nIn the flip phase a datagram counts as impossible when its source matches no config between the last one whose commit the monitor had reported before it was sent and the last one whose file had been (or was being) written when it arrived.")
	}
	fmt.Fprintf(b, " Traffic: %.0f datagrams a second to each destination; afterwards `conntrack -L` in the node namespace listed %d flows of it, each of one datagram.", r.rate, r.flows)
	fmt.Fprintf(b, " Edit (file rename) → masqd's commit seen by the monitor: p50 %v, p99 %v, max %v over %d edits.\n",
		percentile(r.lat, 0.5).Round(time.Microsecond), percentile(r.lat, 0.99).Round(time.Microsecond), percentile(r.lat, 1).Round(time.Microsecond), len(r.lat))
}

// runChurn runs the agent in a lab on cfgs[0], sends traffic every interval, applies cfgs[1:] one after the
// other (each waiting for masqd's commit), and judges every datagram; the configs after the first edits are
// the flip phase. A background config, when not "", stays in force beside them: the agent then reads a
// directory of two files, the background and the edited one.
func runChurn(t *testing.T, cfgs []churnConfig, edits int, interval time.Duration, background string) churnResult {
	t.Helper()
	testenv.RequireCommand(t, "conntrack", "conntrack")
	lab := newLab(t, labOptions{})
	keepUDPFlows(t, lab.Node)
	dir := t.TempDir()
	path, configArg := filepath.Join(dir, "ip-masq-agent"), filepath.Join(dir, "ip-masq-agent")
	if background != "" {
		replaceAtomically(t, filepath.Join(dir, "ip-masq-agent-background"), []byte(background))
		configArg = dir
	}
	replaceAtomically(t, path, []byte(cfgs[0].text))
	w := watchCommits(t, lab.Node)
	startAgent(t, lab.Node, 9745, "--config="+configArg, "--log-level=info")
	c := w.next(t, "first apply", 10*time.Second)
	for c.Process == "masqd" && c.Ops["NEWSET"] > 0 && c.Ops["NEWRULE"] == 0 {
		c = w.next(t, "first apply, rules", 10*time.Second)
	}
	if c.Process != "masqd" {
		t.Fatalf("first apply by %q", c.Process)
	}
	var gen generation // 0 applied and written
	traffic := startUDPTraffic(t, lab, &gen, interval)
	trafficStart := time.Now()
	waitFor(t, 5*time.Second, "datagrams arriving at both destinations", func() error {
		if a := traffic.arrivals(); a[0] == 0 || a[1] == 0 {
			return fmt.Errorf("arrivals per destination: %v", a)
		}
		return nil
	})

	var res churnResult
	for i := 1; i < len(cfgs); i++ {
		// Raised before the rename, never after: masqd sees the rename and may commit config i before this
		// goroutine runs again (on two busy cores it was seen to lose the CPU for over 10 ms just there), and a
		// datagram arriving meanwhile would be judged against configs up to i-1 only.
		gen.written.Store(int64(i))
		start := time.Now()
		replaceAtomically(t, path, []byte(cfgs[i].text))
		c := w.next(t, fmt.Sprintf("edit %d", i), 10*time.Second)
		// A change of shape takes masqd two transactions when it needs a new set: the set first (no rule
		// reads it yet, so packets see no change), then the rules. The edit is in force after the second.
		for c.Process == "masqd" && c.Ops["NEWSET"] > 0 && c.Ops["NEWRULE"] == 0 {
			c = w.next(t, fmt.Sprintf("edit %d, rules", i), 10*time.Second)
		}
		if c.Process != "masqd" {
			t.Fatalf("edit %d: commit %v, want masqd's", i, c)
		}
		gen.applied.Store(int64(i))
		res.lat = append(res.lat, c.At.Sub(start))
		if c.Ops["NEWRULE"]+c.Ops["DELRULE"] > 0 {
			res.rebuilds++
		}
	}
	// Keep sending a little under the last config, so that it is exercised too.
	tail := traffic.sentCount() + 200
	waitFor(t, 5*time.Second, "traffic after the last edit", func() error {
		if n := traffic.sentCount(); n < tail {
			return fmt.Errorf("%d of %d sent", n, tail)
		}
		return nil
	})
	dgrams := traffic.stopAndSettle(t)
	res.rate = float64(len(dgrams)) / 2 / time.Since(trafficStart).Seconds()
	if err := w.Err(); err != nil {
		t.Errorf("monitor: %v", err)
	}
	res.flows = checkUDPFlows(t, lab, traffic, dgrams)

	// Judge every datagram against the configs that can have been in force.
	churn, flip := &res.churn, &res.flip
	var examples []string
	for seq, d := range dgrams {
		ph := &churn[d.dst]
		if d.applied > int64(edits) || (d.arrived && d.written > int64(edits)) {
			ph = &flip[d.dst]
		}
		ph.sent++
		if !d.arrived {
			continue
		}
		ph.arrived++
		masq := false
		switch d.src {
		case lab.PodIP:
			ph.pod++
		case lab.NodeIP:
			ph.node++
			masq = true
		default:
			ph.other++
			ph.bad++
			examples = append(examples, fmt.Sprintf("datagram %d to %s arrived from %s", seq, traffic.dsts[d.dst], d.src))
			continue
		}
		ok := false
		for g := d.applied; g <= d.written && !ok; g++ {
			want := cfgs[g].internetMasq
			if d.dst == 1 {
				want = cfgs[g].vpcMasq
			}
			ok = masq == want
		}
		if !ok {
			ph.bad++
			if len(examples) < 10 {
				examples = append(examples, fmt.Sprintf("datagram %d to %s arrived from %s; configs %d..%d were possible:\n%s",
					seq, traffic.dsts[d.dst], d.src, d.applied, d.written, cfgs[d.applied].text))
			}
		}
	}
	for d := range 2 {
		for _, ph := range []churnTally{churn[d], flip[d]} {
			if ph.sent > 0 && ph.arrived < ph.sent*99/100 {
				t.Errorf("to %s: only %d of %d datagrams arrived; the test saw too little", traffic.dsts[d], ph.arrived, ph.sent)
			}
		}
	}
	if churn[0].pod != 0 || churn[1].node != 0 || churn[0].bad+churn[1].bad > 0 {
		t.Errorf("leaks: %d datagrams reached the internet with the pod's address, %d the VPC with the node's:\n%s",
			churn[0].pod, churn[1].node, strings.Join(examples, "\n"))
	} else if flip[0].bad+flip[1].bad > 0 {
		t.Errorf("%d flip-phase datagrams match no config that can have been in force between their send and their arrival:\n%s",
			flip[0].bad+flip[1].bad, strings.Join(examples, "\n"))
	}
	if len(cfgs) > edits+1 && (flip[0].pod == 0 || flip[0].node == 0 || flip[1].pod == 0 || flip[1].node == 0) {
		t.Errorf("the flip phase did not see both classes at both destinations: internet %+v, VPC %+v", flip[0], flip[1])
	}
	traffic.mu.Lock()
	late := traffic.late
	traffic.mu.Unlock()
	if late > 0 {
		t.Errorf("%d datagrams arrived twice or with an unknown sequence number", late)
	}

	return res
}

// keepUDPFlows makes ns's conntrack count packets per flow and keep unreplied UDP flows for 10 minutes rather
// than 30 s, so that checkUDPFlows sees every flow of a test at CI size.
func keepUDPFlows(t *testing.T, ns *NS) {
	t.Helper()
	ns.Run(t, "sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1", "net.netfilter.nf_conntrack_udp_timeout=600")
}

// checkUDPFlows lists the node's UDP conntrack entries (`conntrack -L`) and checks that the traffic's datagrams
// were each a flow of their own: no entry from the pod to a destination counted more than one packet, and there
// are as many entries as datagrams that crossed the node (except in long runs, which outlive the timeout). It
// returns the number of entries.
func checkUDPFlows(t *testing.T, lab *Lab, u *udpTraffic, dgrams []datagram) int {
	t.Helper()
	// Standard output only: conntrack's summary line goes to standard error.
	out, err := exec.Command("ip", "netns", "exec", lab.Node.Name, "conntrack", "-L", "-p", "udp").Output()
	if err != nil {
		t.Fatalf("conntrack -L in %s: %v", lab.Node.Name, err)
	}
	srcs := "src=" + lab.PodIP.String() + " dst="
	entries, reused := 0, 0
	var example string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != "udp" || !strings.Contains(line, srcs+u.dsts[0].String()+" ") && !strings.Contains(line, srcs+u.dsts[1].String()+" ") {
			continue
		}
		entries++
		for _, x := range f {
			if p, ok := strings.CutPrefix(x, "packets="); ok { // the original direction comes first
				if p != "1" {
					reused++
					example = strings.TrimSpace(line)
				}
				break
			}
		}
	}
	if reused > 0 {
		t.Errorf("%d conntrack entries of the test traffic carried more than one datagram (a datagram was classified with an earlier one's flow), e.g. %s", reused, example)
	}
	arrived := 0
	for _, d := range dgrams {
		if d.arrived {
			arrived++
		}
	}
	if os.Getenv("MASQD_SOAK") != "1" && entries != arrived {
		t.Errorf("%d datagrams crossed the node, and conntrack lists %d flows of theirs", arrived, entries)
	}
	return entries
}
