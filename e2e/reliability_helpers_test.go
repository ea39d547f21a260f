//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/nft"
)

// The reliability suite (issue 7). Each test has a default size that keeps the whole suite to a few minutes
// on a two-core machine, and a long size run by `just soak` (MASQD_SOAK=1). Each test logs its figures as a
// section of RELIABILITY.md; e2e/internal/reliabilityreport puts them there from the run's output.

// soakSize returns n, or long when MASQD_SOAK=1.
func soakSize(n, long int) int {
	if os.Getenv("MASQD_SOAK") == "1" {
		return long
	}
	return n
}

// reportFigures logs section's Markdown for RELIABILITY.md, where e2e/internal/reliabilityreport finds it in
// `go test -v` output. The figures of a failed test are marked: they are the evidence.
func reportFigures(t *testing.T, section, markdown string) {
	t.Helper()
	if t.Failed() {
		markdown = "**" + t.Name() + " failed in this run** (its output says why); these are the figures it measured.\n\n" + markdown
	}
	t.Logf("RELIABILITY.md section %q:\n%s", section, markdown)
}

// kernelCommit is one nftables transaction as watchCommits sees it: who committed it, when the monitor read
// it, and which messages of it named table inet masqd (or the tables watchTableCommits was given).
type kernelCommit struct {
	Gen     uint32
	PID     uint32
	Process string
	At      time.Time      // when the commit's NEWGEN notification was read
	Ops     map[string]int // notification type → count, for masqd's table only: "DELTABLE": 1, "NEWSETELEM": 20000
}

func (c kernelCommit) String() string {
	return fmt.Sprintf("generation %d by %s[%d]: %v", c.Gen, c.Process, c.PID, c.Ops)
}

// commitWatch follows every nftables commit of a namespace. Unlike nft.Monitor it keeps the message types,
// which is what tells an in-place update from a table deleted and created again.
type commitWatch struct {
	ch   chan kernelCommit
	mu   sync.Mutex
	err  error // a receive error: notifications were lost
	live chan struct{}
}

// Err reports a receive error (ENOBUFS: notifications were lost, so absence of a message proves nothing).
func (w *commitWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// next waits for the next commit that touched masqd's table (the watched tables).
func (w *commitWatch) next(t *testing.T, what string, timeout time.Duration) kernelCommit {
	t.Helper()
	select {
	case c := <-w.ch:
		return c
	case <-time.After(timeout):
		t.Fatalf("%s: no commit to table inet masqd within %v (monitor error: %v)", what, timeout, w.Err())
	}
	return kernelCommit{}
}

// kernelGeneration is ns's nftables ruleset generation now: the Gen of the last commit.
func kernelGeneration(t *testing.T, ns *NS) uint32 {
	t.Helper()
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := nft.NewConn(int(f.Fd()))
	defer c.Close()
	gen, err := c.Generation()
	if err != nil {
		t.Fatalf("nftables generation in %s: %v", ns.Name, err)
	}
	return gen
}

// drain returns the commits received so far without waiting.
func (w *commitWatch) drain() []kernelCommit {
	var out []kernelCommit
	for {
		select {
		case c := <-w.ch:
			out = append(out, c)
		default:
			return out
		}
	}
}

var nftMsgNames = map[uint16]string{
	unix.NFT_MSG_NEWTABLE: "NEWTABLE", unix.NFT_MSG_DELTABLE: "DELTABLE",
	unix.NFT_MSG_NEWCHAIN: "NEWCHAIN", unix.NFT_MSG_DELCHAIN: "DELCHAIN",
	unix.NFT_MSG_NEWRULE: "NEWRULE", unix.NFT_MSG_DELRULE: "DELRULE",
	unix.NFT_MSG_NEWSET: "NEWSET", unix.NFT_MSG_DELSET: "DELSET",
	unix.NFT_MSG_NEWSETELEM: "NEWSETELEM", unix.NFT_MSG_DELSETELEM: "DELSETELEM",
	unix.NFT_MSG_NEWOBJ: "NEWOBJ", unix.NFT_MSG_DELOBJ: "DELOBJ",
	unix.NFT_MSG_NEWFLOWTABLE: "NEWFLOWTABLE", unix.NFT_MSG_DELFLOWTABLE: "DELFLOWTABLE",
}

// watchCommits subscribes to nftables notifications in ns and sends each commit that touched table inet
// masqd. It returns once the subscription is known to be live, and stops when the test ends.
func watchCommits(t *testing.T, ns *NS) *commitWatch {
	t.Helper()
	return watchTableCommits(t, ns, func(family byte, table string) bool {
		return family == unix.NFPROTO_INET && table == "masqd"
	})
}

// watchTableCommits is watchCommits for the tables that match says (by family, NFPROTO_*, and name): Ops counts
// their messages.
func watchTableCommits(t *testing.T, ns *NS, match func(family byte, table string) bool) *commitWatch {
	t.Helper()
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	w := &commitWatch{ch: make(chan kernelCommit, 1<<16), live: make(chan struct{})}
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(done)
		cur := map[string]int{}
		err := nft.Listen(ctx, int(f.Fd()), func(n nft.Notification) {
			if n.Type != unix.NFT_MSG_NEWGEN {
				if name, ok := nftMsgNames[n.Type]; ok && match(n.Family, n.Table()) {
					cur[name]++
				}
				return
			}
			c := kernelCommit{At: time.Now(), Ops: cur}
			c.Gen, c.PID, c.Process = n.Commit()
			cur = map[string]int{}
			select {
			case <-w.live:
			default:
				close(w.live)
			}
			if len(c.Ops) == 0 {
				return
			}
			select {
			case w.ch <- c:
			default:
				w.setErr(errors.New("commit channel full: the test stopped reading commits"))
			}
		})
		if err != nil {
			w.setErr(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; f.Close() })
	waitFor(t, 5*time.Second, "nftables monitor subscribed", func() error {
		if err := w.Err(); err != nil {
			return err
		}
		ns.Run(t, "nft", "add table ip masqd-probe; delete table ip masqd-probe")
		select {
		case <-w.live:
			return nil
		default:
			return errors.New("no commit seen yet")
		}
	})
	return w
}

func (w *commitWatch) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// nftaTableHandle is NFTA_TABLE_HANDLE (linux/netfilter/nf_tables.h), which x/sys/unix does not define.
const nftaTableHandle = 4

// tableHandle returns the kernel's handle of table inet masqd in ns. A table deleted and created again gets a
// new handle, so an unchanged handle proves the table was never replaced.
func tableHandle(t *testing.T, ns *NS) uint64 {
	t.Helper()
	var handle uint64
	err := ns.Do(func() error {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer nl.Close()
		attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: []byte("masqd\x00")}})
		if err != nil {
			return err
		}
		msgs, err := nl.Execute(netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETTABLE), Flags: netlink.Request},
			Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
		})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				return err
			}
			for ad.Next() {
				if ad.Type() == nftaTableHandle {
					handle = binary.BigEndian.Uint64(ad.Bytes())
				}
			}
		}
		return nil
	})
	if err != nil || handle == 0 {
		t.Fatalf("handle of table inet masqd in %s: %d, %v", ns.Name, handle, err)
	}
	return handle
}

// childRun is one finished child process: its output, exit code and peak resident memory.
type childRun struct {
	stdout, stderr string
	code           int
	maxRSS         int64 // bytes (ru_maxrss)
	elapsed        time.Duration
}

// runChild runs argv inside ns (`ip netns exec` execs argv in the same process) with a deadline, and returns
// what happened. A process still running at the deadline fails the test. argv runs under peakrss, which
// reports argv's own peak memory: the ru_maxrss the test would see itself includes the test process's.
func runChild(t *testing.T, ns *NS, timeout time.Duration, argv ...string) childRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rssFile := filepath.Join(t.TempDir(), "peak-rss")
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, peakRSSBin, rssFile}, argv...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := childRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after %v (killed)\nstderr: %s", argv, timeout, clipText(r.stderr, 2000))
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", argv, err)
	}
	kib, err := os.ReadFile(rssFile)
	if err != nil {
		t.Fatalf("%v: no peak memory from peakrss (exit %d, stderr %s): %v", argv, r.code, clipText(r.stderr, 2000), err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(kib)), 10, 64)
	if err != nil {
		t.Fatalf("%v: peakrss wrote %q: %v", argv, kib, err)
	}
	r.maxRSS = n << 10
	return r
}

// peakRSS is a running process's peak resident memory (VmHWM), in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// replaceAtomically makes path hold content in one step (write a temporary file, rename it over path), as editors and
// the kubelet do: a reader sees the old file or the new one, never a half-written one.
func replaceAtomically(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// clipText shortens s for a test message.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("… (%d bytes in all)", len(s))
}

// inMiB formats bytes as MiB with one decimal.
func inMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// faultProbes sends the lab pod's probes during a fault and counts them: a leak is a probe whose source, as
// the echo server saw it, is not the one the rules in force should give (the node's address to a
// non-masquerade destination, or the pod's to a masqueraded one).
//
// Every UDP probe comes from a source port no probe of the test used before: a reused port could match a
// conntrack entry of an earlier probe, and be translated as the rules in force then said, not now.
type faultProbes struct {
	lab         *Lab
	sent, leaks int
	phases      int
	ports       atomic.Int32 // UDP source ports used, from firstProbePort
}

// firstProbePort is the first UDP source port of faultProbes; it uses at most maxProbePorts.
const (
	firstProbePort = 10000
	maxProbePorts  = 55000
)

// port returns a UDP source port never used by p before; past maxProbePorts it fails the test (it may be
// called from a probing goroutine) and returns 0, a port the kernel picks.
func (p *faultProbes) port(t *testing.T) int {
	n := p.ports.Add(1)
	if n > maxProbePorts {
		t.Errorf("more than %d UDP probes: no fresh source port left", maxProbePorts)
		return 0
	}
	return firstProbePort + int(n)
}

// check sends TCP and UDP from the pod to each case's destination and fails the test on a leak or a lost
// probe; when says which phase of the fault it is.
func (p *faultProbes) check(t *testing.T, when string, cases []expect) {
	t.Helper()
	p.phases++
	for _, proto := range []string{"tcp", "udp"} {
		for _, c := range cases {
			_, ports := p.lab.echoFor(c.dst)
			var (
				got netip.Addr
				err error
			)
			if proto == "tcp" {
				got, err = sourceSeenTCP(p.lab.Pod, c.dst, ports.tcp, probeTimeout)
			} else {
				got, err = sourceSeenUDPFrom(p.lab.Pod, fromPort(p.port(t)), c.dst, ports.udp, probeTimeout)
			}
			p.sent++
			switch {
			case err != nil:
				t.Errorf("%s: %s to %s lost: %v", when, proto, c.dst, err)
			case got != c.src:
				p.leaks++
				t.Errorf("%s: %s to %s left as %s, want %s", when, proto, c.dst, got, c.src)
			}
		}
	}
}

// table is RELIABILITY.md's row for one fault, with the fault table's header.
func (p *faultProbes) table(fault, happened string) string {
	return fmt.Sprintf("| fault | what happened | packets checked | leaks |\n|---|---|---:|---:|\n| %s | %s | %d (TCP and UDP, %d phases) | %d |\n",
		fault, happened, p.sent, p.phases, p.leaks)
}

// probeEvery paces faultProbes.during: 50 probes a second, 15,000 over a five-minute fault.
const probeEvery = 20 * time.Millisecond

// during runs fn while UDP probes go from the lab's pod to dst, one every probeEvery, each from a new socket and
// source port (a new flow, so classified by the rules in force when it crosses the node), and counts them: a
// probe that left with another source than want is a leak, one that got no answer is lost; both fail the
// test. At least one probe is sent, after fn returns if fn was quicker.
func (p *faultProbes) during(t *testing.T, when string, dst, want netip.Addr, fn func()) {
	t.Helper()
	p.phases++
	_, ports := p.lab.echoFor(dst)
	stop := make(chan struct{})
	type tally struct{ sent, leaks, lost int }
	done := make(chan tally, 1)
	go func() {
		var n tally
		pace := time.NewTicker(probeEvery) // pacing the traffic, not waiting for a condition
		defer pace.Stop()
		for {
			got, err := sourceSeenUDPFrom(p.lab.Pod, fromPort(p.port(t)), dst, ports.udp, probeTimeout)
			n.sent++
			switch {
			case err != nil:
				n.lost++
			case got != want:
				n.leaks++
			}
			select {
			case <-stop:
				done <- n
				return
			case <-pace.C:
			}
		}
	}()
	fn()
	close(stop)
	n := <-done
	p.sent += n.sent
	p.leaks += n.leaks
	if n.leaks > 0 || n.lost > 0 {
		t.Errorf("%s: of %d probes to %s, %d left with another source than %s and %d got no answer", when, n.sent, dst, n.leaks, want, n.lost)
	}
}
