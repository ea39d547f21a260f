//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// The flood of TestReliabilityFaultMonitorOverrun: floodRounds rounds of two foreign commits, one adding
// floodElements elements with a comment each to a table of the test's own and one deleting them. Their
// notifications (about 1.5 GB in all with the comments) must overflow masqd's monitor socket (64 MiB, which the
// kernel doubles) while masqd does not read; the set stays small.
const (
	floodElements = 100_000
	floodRounds   = 6
)

// TestReliabilityFaultMonitorOverrun: the nftables monitor overruns (ENOBUFS) under a flood of foreign
// commits. masqd is stopped (SIGSTOP) so that it cannot read; another process changes masqd's table (an
// element for 192.0.2.0/24, which no probe uses, so classification is unchanged) and then floods commits
// to a table of its own. The change's notification is lost in the overrun, so only a full comparison can
// find it. Resumed, masqd reads ENOBUFS, says so, subscribes again, compares in full and removes the
// element; its table is again what the config gives. Packets are checked before, while masqd is stopped
// and after.
func TestReliabilityFaultMonitorOverrun(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	probes := &faultProbes{lab: lab}
	path := writeConfig(t, cfgVPCOnly)
	want := dryRun(t, path)
	a := startAgent(t, lab.Node, 9745, "--config="+path)
	a.waitStatus("/readyz", http.StatusOK)
	sources := []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}}
	probes.check(t, "before", sources)

	// The flood: a foreign table, and a batch that fills its set and one that empties it.
	lab.Node.Run(t, "nft", "add table inet flood; add set inet flood s { type ipv4_addr; size 1048576; }")
	dir := t.TempDir()
	var add, del strings.Builder
	add.WriteString("add element inet flood s { ")
	del.WriteString("delete element inet flood s { ")
	comment := strings.Repeat("x", 120)
	for i := range floodElements {
		if i > 0 {
			add.WriteString(", ")
			del.WriteString(", ")
		}
		e := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		fmt.Fprintf(&add, "%s comment %q", e, comment)
		del.WriteString(e)
	}
	add.WriteString(" }\n")
	del.WriteString(" }\n")
	addPath, delPath := filepath.Join(dir, "add.nft"), filepath.Join(dir, "del.nft")
	for p, text := range map[string]string{addPath: add.String(), delPath: del.String()} {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	lab.Node.Run(t, "nft", "add element inet masqd nonmasq4 { 192.0.2.0/24 }")
	for range floodRounds {
		lab.Node.Run(t, "nft", "-f", addPath)
		lab.Node.Run(t, "nft", "-f", delPath)
	}
	if got := kernelTable(t, lab.Node); got == want {
		t.Fatal("the foreign change to masqd's table did not take")
	}
	probes.check(t, "masqd stopped, its table changed, the flood sent", sources)
	resume()

	waitFor(t, 30*time.Second, "the full comparison after the overrun", func() error {
		if got := kernelTable(t, lab.Node); got != want {
			return fmt.Errorf("masqd's table is\n%s\nwant\n%s", got, want)
		}
		return nil
	})
	logs := a.Logs()
	if !strings.Contains(logs, "kernel monitor failed; subscribing again and comparing in full") ||
		!strings.Contains(logs, "no buffer space available") {
		t.Errorf("the log does not say the monitor overran (ENOBUFS) and masqd compared in full")
	}
	if !strings.Contains(logs, `"reason":"monitor"`) {
		t.Errorf("no reconcile for the monitor's failure in the log")
	}
	a.waitStatus("/readyz", http.StatusOK)
	probes.check(t, "after the full comparison", sources)
	reportFigures(t, "fault-enobufs", probes.table(fmt.Sprintf("nftables monitor overrun (ENOBUFS): masqd stopped (SIGSTOP) while another process added an element to masqd's set, "+
		"then made %d commits to a table of its own, each adding or deleting %d commented elements", 2*floodRounds, floodElements),
		"resumed, masqd read ENOBUFS, logged \"kernel monitor failed; subscribing again and comparing in full\", subscribed again and compared in full: the element whose notification was lost was removed, the table is again byte for byte what `--dry-run` prints; ready throughout after the resume"))
}
