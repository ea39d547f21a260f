//go:build linux

package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// crashPrefixes is the size of the two big configs: this many prefixes per family.
const crashPrefixes = 100_000

// writeBigConfig writes a config of crashPrefixes IPv4 and IPv6 prefixes into dir as five ip-masq-* files
// (each under the 1 MiB a file may hold; the agent merges them). The two variants (0 and 1) have no prefix in
// common, so switching between them deletes and adds 200,000 intervals in one transaction.
func writeBigConfig(t *testing.T, dir string, variant int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const files = 5
	per := crashPrefixes / files
	for f := range files {
		path := filepath.Join(dir, fmt.Sprintf("ip-masq-%d", f))
		out, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(out)
		fmt.Fprintf(w, "enableIPv6: true\ncidrLimit: %d\nnonMasqueradeCIDRs:\n", 2*per)
		for i := f * per; i < (f+1)*per; i++ {
			v4 := 1<<24 + i*4 + variant*2 // 1.0.0.0 onwards: /31s with a gap between them
			fmt.Fprintf(w, "- %d.%d.%d.%d/31\n", v4>>24, v4>>16&0xff, v4>>8&0xff, v4&0xff)
			v6 := 2*i + variant // 2001:db8::/32, every other /64 so that none merge
			fmt.Fprintf(w, "- 2001:db8:%x:%x::/64\n", v6>>16, v6&0xffff)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// pointData points the config directory's ..data symlink at target, atomically, as the kubelet does.
func pointData(t *testing.T, dir, target string) {
	t.Helper()
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// tableHash is the SHA-256 of `nft list table inet masqd` in ns, counters zeroed; "" when there is no table.
func tableHash(t *testing.T, ns *NS) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "nft", "list", "table", "inet", "masqd").Output()
	if err != nil {
		if _, nerr := ns.RunErr("nft", "list", "tables"); nerr == nil {
			return "" // no table
		}
		t.Fatalf("nft list table: %v", err)
	}
	return textHash(zeroCounters(string(out)))
}

func textHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// waitReady waits until the agent's /readyz answers 200: the kernel holds what its config asks for. It fails
// at once if the agent exits.
func waitReady(t *testing.T, a *agentProc, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "the agent ready", func() error {
		select {
		case <-a.exited:
			t.Fatalf("agent exited:\n%s", a.Logs())
		default:
		}
		code, body, err := a.get("/readyz")
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("%d %s", code, strings.TrimSpace(body))
		}
		return nil
	})
}

// crashOutcome is what one kill left.
type crashOutcome struct {
	proc     string // "--once" or "agent"
	how      string // "random" (a random delay) or "near commit" (just before the commit time seen so far)
	after    time.Duration
	exited   bool   // the process had finished before the kill
	holds    string // "old", "new"
	pointsTo string
}

// TestReliabilityCrash kills masqd with SIGKILL while it applies a 100,000-prefix-per-family change, again and
// again, alternating `masqd --once` and the agent: after every kill the kernel must hold one complete ruleset,
// the old config's or the new one's (compared, counters aside, with `masqd --dry-run` of each, by hash). A
// restarted agent must then converge without deleting the table: the monitor sees no DELTABLE of inet masqd
// from masqd, and the table's kernel handle never changes.
func TestReliabilityCrash(t *testing.T) {
	testenv.RequireKernel(t)
	kills := soakSize(10, 100)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("random seed %d", seed)

	ns := newNS(t, "crash")
	dir := t.TempDir()
	writeBigConfig(t, filepath.Join(dir, "..A"), 0)
	writeBigConfig(t, filepath.Join(dir, "..B"), 1)
	for f := range 5 {
		name := fmt.Sprintf("ip-masq-%d", f)
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{ // hash → name
		textHash(dryRun(t, filepath.Join(dir, "..A"))): "A",
		textHash(dryRun(t, filepath.Join(dir, "..B"))): "B",
	}
	if len(want) != 2 {
		t.Fatal("configs A and B render the same ruleset")
	}
	pointData(t, dir, "..A")
	start := time.Now()
	runChild(t, ns, time.Minute, masqdBin, "--config="+dir, "--once")
	coldApply := time.Since(start)
	holds := func() string {
		t.Helper()
		h := tableHash(t, ns)
		name, ok := want[h]
		if !ok {
			t.Fatalf("the kernel holds neither A nor B (hash %q); table:\n%s", h,
				clipText(ns.Run(t, "nft", "list", "table", "inet", "masqd"), 4000))
		}
		return name
	}
	if got := holds(); got != "A" {
		t.Fatalf("after the first apply the kernel holds %s, want A", got)
	}
	handle := tableHandle(t, ns)
	w := watchCommits(t, ns) // from here on, masqd must never delete its table

	target := "A" // what ..data points at
	other := map[string]string{"A": "B", "B": "A"}
	var outcomes []crashOutcome
	var commits []kernelCommit
	commitAt := map[string]time.Duration{} // earliest commit seen after the start, by kind of run

	// One swap with --once, not killed: it must complete, and it tells when a --once swap commits.
	pointData(t, dir, "..B")
	begin := time.Now()
	if r := runChild(t, ns, time.Minute, masqdBin, "--config="+dir, "--once"); r.code != 0 {
		t.Fatalf("--once A→B: exit %d\n%s", r.code, r.stderr)
	}
	fullSwap := time.Since(begin)
	if got := holds(); got != "B" {
		t.Fatalf("after --once A→B the kernel holds %s", got)
	}
	for _, c := range w.drain() {
		commits = append(commits, c)
		if c.Process == "masqd" {
			commitAt["--once"] = c.At.Sub(begin)
		}
	}
	target = "B"
	calib := commitAt["--once"]
	swapMax := fullSwap * 3 / 2 // random kills fall anywhere in a swap, and some after it
	for i := range kills {
		o := crashOutcome{proc: "--once", how: "random"}
		if i%2 == 1 {
			o.proc = "agent"
		}
		delay := time.Duration(rng.Int64N(int64(swapMax)))
		if est, ok := commitAt[o.proc]; ok && i%4 >= 2 {
			// Aim at the transaction: the kernel works through the batch for up to a second or two before
			// the commit is notified.
			o.how = "near commit"
			delay = est - time.Duration(rng.Int64N(int64(min(1500*time.Millisecond, est/2))+1))
		}
		target = other[target]
		var cmd *exec.Cmd
		var exited chan struct{}
		if o.proc == "agent" {
			// The agent starts on the config the kernel may or may not hold (the last kill may have come
			// before the commit): it converges first, which is the restart under test. Then the config
			// changes under it.
			a := startAgent(t, ns, 9745+i, "--config="+dir, "--log-level=info")
			waitReady(t, a, 2*time.Minute)
			pointData(t, dir, ".."+target)
			cmd, exited = a.cmd, a.exited
		} else {
			pointData(t, dir, ".."+target)
			cmd = exec.Command("ip", "netns", "exec", ns.Name, masqdBin, "--config="+dir, "--once")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited = make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
		}
		begin := time.Now()
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-exited:
			timer.Stop()
		}
		o.after = time.Since(begin)
		select {
		case <-exited:
			o.exited = true
		default:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		}
		o.holds = holds()
		o.pointsTo = target
		// Learn when this kind of run commits, from the commits the monitor saw after the start.
		for _, c := range w.drain() {
			commits = append(commits, c)
			if c.At.After(begin) && c.Process == "masqd" {
				if d := c.At.Sub(begin); commitAt[o.proc] == 0 || d < commitAt[o.proc] {
					commitAt[o.proc] = d
				}
			}
		}
		if o.exited && o.proc == "--once" && o.holds != target {
			t.Fatalf("kill %d: --once exited before the kill, yet the kernel holds %s, not %s", i, o.holds, target)
		}
		outcomes = append(outcomes, o)
		t.Logf("kill %d: %s killed (%s) after %v (exited first: %t): kernel holds %s (config says %s)",
			i, o.proc, o.how, o.after.Round(time.Millisecond), o.exited, o.holds, target)
	}

	// The last restart: an agent converges on whatever the kernel holds now, without deleting the table.
	a := startAgent(t, ns, 9800, "--config="+dir, "--log-level=info")
	waitReady(t, a, 2*time.Minute)
	if got := holds(); got != target {
		t.Fatalf("final agent: kernel holds %s, want %s", got, target)
	}
	a.stop(syscall.SIGTERM)
	if err := w.Err(); err != nil {
		t.Fatalf("monitor lost notifications, so DELTABLE cannot be ruled out: %v", err)
	}
	commits = append(commits, w.drain()...)
	masqdCommits, deletes := 0, 0
	for _, c := range commits {
		if c.Process != "masqd" {
			t.Errorf("commit by another process: %v", c)
			continue
		}
		masqdCommits++
		if c.Ops["DELTABLE"] > 0 {
			deletes++
			t.Errorf("masqd deleted its table: %v", c)
		}
	}
	if h := tableHandle(t, ns); h != handle {
		t.Errorf("table inet masqd has handle %d, was %d: it was replaced", h, handle)
	}

	// Figures.
	var b strings.Builder
	fmt.Fprintf(&b, "Two configs A and B of %d IPv4 and %d IPv6 prefixes each (five files of a ConfigMap-style directory; no prefix in common, so a switch deletes and adds %d intervals in one transaction). Cold apply of A with `--once`: %v; one A→B swap with `--once`, not killed: %v (commit after %v). Then %d times: point the directory at the other config, start `masqd --once` or an agent (alternately), and `kill -9` it — after a random delay up to %v, or (every other time, once a commit time is known) at a random point in the 1.5 s (at most half the time) before the earliest commit time seen so far for that kind of run, while masqd sends and the kernel works through the batch. After each kill, `nft list table inet masqd` (counters zeroed) was hashed and compared with `masqd --dry-run` of A and of B.\n\n",
		crashPrefixes, crashPrefixes, 4*crashPrefixes, coldApply.Round(time.Millisecond), fullSwap.Round(time.Millisecond), calib.Round(time.Millisecond), kills, swapMax)
	b.WriteString("| # | killed | when | after | had exited | kernel holds | config says |\n|---:|---|---|---:|---|---|---|\n")
	tally := map[string]int{}
	for i, o := range outcomes {
		state := "old (complete)"
		if o.holds == o.pointsTo {
			state = "new (complete)"
		}
		tally[state]++
		fmt.Fprintf(&b, "| %d | %s | %s | %v | %t | %s %s | %s |\n", i+1, o.proc, o.how, o.after.Round(time.Millisecond), o.exited, o.holds, state, o.pointsTo)
	}
	fmt.Fprintf(&b, "\n%d kills: %d left the old ruleset, %d the new one, 0 anything else. Every agent start after a kill converged in place; over %d commits by masqd the monitor saw %d DELTABLE of inet masqd, and the table's kernel handle stayed %d throughout.\n",
		kills, tally["old (complete)"], tally["new (complete)"], masqdCommits, deletes, handle)
	reportFigures(t, "crash", b.String())
}
