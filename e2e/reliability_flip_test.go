//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// flipStep is one nft transaction of a flip variant and what the kernel holds after it: the class of lab.Internet
// (198.51.100.10) and of lab.VPC (10.130.0.9), written out by hand.
type flipStep struct {
	script                string
	internetMasq, vpcMasq bool
}

// flipVariant is one way of moving the two destinations' classes around the cycle X (internet masqueraded, VPC
// not) → Y (neither) → W (VPC only) → Z (both) → X, as nft scripts run one after the other with `nft -f`.
type flipVariant struct {
	name   string
	relied bool   // masqd's edits have this shape: it must show no stale datagram
	setup  string // the table, loaded before the traffic starts; its classes are X's
	steps  []flipStep
}

const flipTable = `table inet masqd {
	set nonmasq4 {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/8 }
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr != @nonmasq4 fib daddr type != local counter masquerade random,fully-random
	}
}
`

// The four states of masqd's flip configs (flipConfigs) as the intervals of nonmasq4, and the element changes
// masqd sends between them (intervals only in the old state are deleted, intervals only in the new one added).
var (
	flipX = "10.0.0.0/8"
	flipY = "10.0.0.0/8, 198.51.100.0/24"
	flipW = "10.0.0.0-10.130.0.8, 10.130.0.10-10.255.255.255, 198.51.100.0/24"
	flipZ = "10.0.0.0-10.129.255.255, 10.131.0.0-10.255.255.255"
)

func flipVariants() []flipVariant {
	set := "inet masqd nonmasq4"
	del := func(e string) string { return "delete element " + set + " { " + e + " }\n" }
	add := func(e string) string { return "add element " + set + " { " + e + " }\n" }
	refill := func(e string) string { return "flush set " + set + "\n" + add(e) }
	type delta struct{ del, add string }
	// X→Y, Y→W, W→Z, Z→X
	deltas := []delta{
		{"", "198.51.100.0/24"},
		{"10.0.0.0/8", "10.0.0.0-10.130.0.8, 10.130.0.10-10.255.255.255"},
		{"10.0.0.0-10.130.0.8, 10.130.0.10-10.255.255.255, 198.51.100.0/24", "10.0.0.0-10.129.255.255, 10.131.0.0-10.255.255.255"},
		{"10.0.0.0-10.129.255.255, 10.131.0.0-10.255.255.255", "10.0.0.0/8"},
	}
	states := []string{flipY, flipW, flipZ, flipX}
	classes := [][2]bool{{false, false}, {false, true}, {true, true}, {true, false}} // after each delta
	// After the deletions alone: Y less 10/8 keeps only 198.51.100.0/24; W and Z less theirs are empty.
	mids := [][2]bool{{}, {false, true}, {true, true}, {true, true}}
	var oneTx, twoTx, flush, autoMerge []flipStep
	for i, d := range deltas {
		s := ""
		if d.del != "" {
			s = del(d.del)
		}
		oneTx = append(oneTx, flipStep{s + add(d.add), classes[i][0], classes[i][1]})
		autoMerge = append(autoMerge, flipStep{s + add(d.add), classes[i][0], classes[i][1]})
		flush = append(flush, flipStep{refill(states[i]), classes[i][0], classes[i][1]})
		if d.del != "" {
			// In between, the deleted intervals are gone and the new ones not there yet.
			twoTx = append(twoTx, flipStep{s, mids[i][0], mids[i][1]})
		}
		twoTx = append(twoTx, flipStep{add(d.add), classes[i][0], classes[i][1]})
	}

	// One element per edit: 198.51.100.0/24 and 10.130.0.0/16 are added and deleted alone.
	single := []flipStep{
		{add("198.51.100.0/24"), false, false},
		{del("10.130.0.0/16"), false, true},
		{del("198.51.100.0/24"), true, true},
		{add("10.130.0.0/16"), true, false},
	}
	singleSetup := strings.Replace(flipTable, "elements = { 10.0.0.0/8 }", "elements = { 10.130.0.0/16 }", 1)

	// A set without the interval flag (a hash) holding the two addresses themselves.
	hashSetup := strings.NewReplacer("flags interval\n", "", "elements = { 10.0.0.0/8 }", "elements = { 10.130.0.9 }").Replace(flipTable)
	hash := []flipStep{
		{add("198.51.100.10"), false, false},
		{del("10.130.0.9"), false, true},
		{del("198.51.100.10"), true, true},
		{add("10.130.0.9"), true, false},
	}

	// Two sets; the rule reads one; an edit fills the other and points the rule at it.
	dbSetup := strings.Replace(flipTable, "\tchain postrouting", "\tset nonmasq4b {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n\n\tchain postrouting", 1)
	var dbOne, dbTwo []flipStep
	for i, st := range states {
		target := []string{"nonmasq4b", "nonmasq4"}[i%2]
		fill := "flush set inet masqd " + target + "\nadd element inet masqd " + target + " { " + st + " }\n"
		swap := "flush chain inet masqd postrouting\nadd rule inet masqd postrouting ip daddr != @" + target + " fib daddr type != local counter masquerade random,fully-random\n"
		dbOne = append(dbOne, flipStep{fill + swap, classes[i][0], classes[i][1]})
		prev := classes[(i+3)%4]
		dbTwo = append(dbTwo, flipStep{fill, prev[0], prev[1]}, flipStep{swap, classes[i][0], classes[i][1]})
	}

	return []flipVariant{
		{name: "interval set, masqd's element delta, one transaction", relied: true, setup: flipTable, steps: oneTx},
		{name: "interval set, flush and refill, one transaction", setup: flipTable, steps: flush},
		{name: "interval set, deletions then additions, two transactions", setup: flipTable, steps: twoTx},
		{name: "interval set with auto-merge, element delta", setup: strings.Replace(flipTable, "flags interval", "flags interval\n\t\tauto-merge", 1), steps: autoMerge},
		{name: "interval set, one element added or deleted per edit", setup: singleSetup, steps: single},
		{name: "hash set (no interval flag), one address added or deleted per edit", setup: hashSetup, steps: hash},
		{name: "two sets, fill the idle one and swap the rule, one transaction", setup: dbSetup, steps: dbOne},
		{name: "two sets, fill the idle one, then swap the rule", setup: dbSetup, steps: dbTwo},
	}
}

// flipStats is what one variant's traffic showed.
type flipStats struct {
	edits, sent, arrived int
	stale                int           // datagrams classified by no state between their send and their arrival
	windows              int           // runs of consecutive stale datagrams to one destination
	longestRun           int           // datagrams
	maxLag               time.Duration // from the end of the `nft -f` that committed the state to the send of a stale datagram
}

// runFlipVariant loads v.setup in a fresh lab, starts traffic, runs v's steps n times in all with `nft -f`
// (synchronous: it returns after the commit) and judges every datagram.
func runFlipVariant(t *testing.T, v flipVariant, n int) flipStats {
	t.Helper()
	testenv.RequireCommand(t, "conntrack", "conntrack")
	lab := newLab(t, labOptions{})
	keepUDPFlows(t, lab.Node)
	lab.Node.Run(t, "nft", "-f", writeNFT(t, v.setup))
	files := make([]string, len(v.steps))
	for i, s := range v.steps {
		files[i] = writeNFT(t, s.script)
	}
	// states[g] is the kernel's classes after edit g; 0 is the setup's (X).
	states := [][2]bool{{true, false}}
	var gen generation
	traffic := startUDPTraffic(t, lab, &gen, time.Millisecond)
	waitFor(t, 5*time.Second, "datagrams arriving", func() error {
		if a := traffic.arrivals(); a[0] == 0 || a[1] == 0 {
			return fmt.Errorf("arrivals %v", a)
		}
		return nil
	})
	committed := []time.Duration{0} // when `nft -f` of edit g returned, since the traffic started
	for i := 1; i <= n; i++ {
		s := v.steps[(i-1)%len(v.steps)]
		states = append(states, [2]bool{s.internetMasq, s.vpcMasq})
		gen.written.Store(int64(i))
		lab.Node.Run(t, "nft", "-f", files[(i-1)%len(files)])
		committed = append(committed, time.Since(traffic.start))
		gen.applied.Store(int64(i))
	}
	tail := traffic.sentCount() + 100
	waitFor(t, 5*time.Second, "traffic after the last edit", func() error {
		if c := traffic.sentCount(); c < tail {
			return fmt.Errorf("%d of %d sent", c, tail)
		}
		return nil
	})
	dgrams := traffic.stopAndSettle(t)
	checkUDPFlows(t, lab, traffic, dgrams)

	st := flipStats{edits: n}
	run := [2]int{}
	for _, d := range dgrams {
		st.sent++
		if !d.arrived {
			continue
		}
		st.arrived++
		masq := d.src == lab.NodeIP
		if d.src != lab.NodeIP && d.src != lab.PodIP {
			t.Errorf("a datagram to %s arrived from %s", traffic.dsts[d.dst], d.src)
			continue
		}
		ok := false
		for g := d.applied; g <= d.written && !ok; g++ {
			ok = states[g][d.dst] == masq
		}
		if ok {
			run[d.dst] = 0
			continue
		}
		st.stale++
		if run[d.dst] == 0 {
			st.windows++
		}
		run[d.dst]++
		st.longestRun = max(st.longestRun, run[d.dst])
		st.maxLag = max(st.maxLag, d.sent-committed[d.applied])
	}
	return st
}

// TestReliabilityFlipKernel asks the kernel alone (nft scripts, no masqd) whether a datagram sent after an
// `nft -f` that moved a destination's class has returned can still be classified by an earlier state. Each
// variant cycles the two destinations through all four classes while the pod sends a datagram from a fresh port
// to each every millisecond; `nft -f` returns after the commit, and the state's generation is raised before it
// starts and after it returns. By default only the shape masqd uses (element changes in one transaction) runs,
// 300 edits, and must show no stale datagram; MASQD_SOAK=1 runs every variant 2,000 times and reports them.
// MASQD_FLIP_EDITS and MASQD_FLIP_VARIANT (a substring of the name) narrow a run by hand.
func TestReliabilityFlipKernel(t *testing.T) {
	testenv.RequireKernel(t)
	soak := os.Getenv("MASQD_SOAK") == "1"
	n := soakSize(300, 2000)
	if s := os.Getenv("MASQD_FLIP_EDITS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("MASQD_FLIP_EDITS: %v", err)
		}
	}
	only := os.Getenv("MASQD_FLIP_VARIANT")
	var b strings.Builder
	fmt.Fprintf(&b, "The kernel alone: `nft -f` scripts moving 198.51.100.10 and 10.130.0.9 through all four classes (the states of the churn test's flip configs), %d edits per variant, while the pod sent a datagram from a fresh port to each every millisecond. A datagram is stale when it was sent after the `nft -f` that committed a state had returned and was classified by an earlier one; the lag is from that return to the stale datagram's send (a stale datagram may have crossed the node during the next `nft -f`).\n\n", n)
	b.WriteString("| change | masqd relies on it | edits | datagrams | stale | runs of stale | longest run | max lag |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	ran := 0
	var names []string
	for _, v := range flipVariants() {
		names = append(names, v.name)
		if only != "" && !strings.Contains(v.name, only) || only == "" && !soak && !v.relied {
			continue
		}
		ran++
		t.Run(strings.ReplaceAll(v.name, " ", "-"), func(t *testing.T) {
			st := runFlipVariant(t, v, n)
			t.Logf("%s: %+v", v.name, st)
			fmt.Fprintf(&b, "| %s | %t | %d | %d | **%d** | %d | %d | %v |\n", v.name, v.relied, st.edits, st.arrived, st.stale, st.windows, st.longestRun, st.maxLag.Round(time.Microsecond))
			if st.arrived < st.sent*99/100 {
				t.Errorf("only %d of %d datagrams arrived", st.arrived, st.sent)
			}
			if v.relied && st.stale > 0 {
				t.Errorf("%s: %d datagrams classified by an earlier state after the commit of a later one had returned, and masqd relies on this shape", v.name, st.stale)
			}
		})
	}
	if ran == 0 {
		t.Fatalf("MASQD_FLIP_VARIANT=%q names no variant; the variants are %q", only, names)
	}
	if !soak {
		b.WriteString("\nDefault size: masqd's shape only; `just soak` runs every variant.\n")
	}
	reportFigures(t, "kernel-flip", b.String())
}
