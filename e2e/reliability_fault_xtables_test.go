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

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/iptables"
)

// xtablesLock is the lock file iptables-legacy takes (flock) before it changes a table, private to one test:
// XTABLES_LOCKFILE points every iptables command of the test process and its children (masqd included) at
// it, so holding it blocks no iptables on the host.
type xtablesLock struct {
	path string
	f    *os.File
}

func newXtablesLock(t *testing.T) *xtablesLock {
	t.Helper()
	l := &xtablesLock{path: filepath.Join(t.TempDir(), "xtables.lock")}
	t.Setenv("XTABLES_LOCKFILE", l.path)
	t.Cleanup(l.release)
	return l
}

// hold takes the lock as another process's iptables would, and keeps it until release.
func (l *xtablesLock) hold(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		t.Fatalf("flock %s: %v", l.path, err)
	}
	l.f = f
}

func (l *xtablesLock) release() {
	if l.f != nil {
		l.f.Close() // closing the only descriptor drops the flock
		l.f = nil
	}
}

// TestReliabilityFaultXtablesLock: in iptables mode (iptables-legacy), another process holds the xtables lock.
// Started while it is held, masqd waits for it a bounded time (-w 5) per attempt, says why (log, /readyz,
// masqd_sync_total{result="error"}), stays alive (one process, /healthz 200: no crash loop) and retries;
// once the lock is released it applies. Held again while a config edit arrives, the rules in force stay
// and keep classifying packets as before; released, the edit applies. Packets are checked at every step.
func TestReliabilityFaultXtablesLock(t *testing.T) {
	testenv.RequireKernel(t)
	requireIPTables(t)
	const (
		cfgBefore = "nonMasqueradeCIDRs: [10.0.0.0/8]\n"
		cfgAfter  = "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n"
	)
	lock := newXtablesLock(t)
	lab := newLab(t, labOptions{})
	probes := &faultProbes{lab: lab}
	// A bystander rule in iptables-legacy makes it the variant --mode=iptables picks.
	lab.Node.Run(t, "iptables-legacy", "-w", "5", "-t", "nat", "-A", "POSTROUTING", "-d", "192.0.2.99/32", "-j", "RETURN")
	path := writeConfig(t, cfgBefore)
	chain := func() string {
		return strings.Join(iptablesChainLines(t, lab.Node, iptables.VariantLegacy, iptables.DefaultIPTablesChain, false), "\n")
	}
	want := func(content string) string {
		return strings.Join(wantChainLines(parseConfig(t, content, config.Options{}), false), "\n")
	}
	waitRule := func(content, what string) {
		t.Helper()
		// Bound: an attempt waits 5s for the lock; the retry after it comes within the backoff.
		waitFor(t, 45*time.Second, what, func() error {
			if got := chain(); got != want(content) {
				return fmt.Errorf("iptables-legacy-save shows:\n%s\nwant:\n%s", got, want(content))
			}
			return nil
		})
	}
	waitErrors := func(a *agentProc, above float64, what string) {
		t.Helper()
		waitFor(t, 30*time.Second, what, func() error {
			if _, _, err := a.get("/metrics"); err != nil {
				return err
			}
			if v := a.metric(`masqd_sync_total{result="error"}`); v <= above {
				return fmt.Errorf("masqd_sync_total{result=\"error\"} = %v", v)
			}
			return nil
		})
	}

	// Held at start: nothing can be applied, and the node is as it was (nothing masquerades).
	lock.hold(t)
	a := startAgent(t, lab.Node, 9745, "--config="+path, "--mode=iptables")
	waitErrors(a, 0, "a failed attempt")
	if got := a.labels("masqd_build_info")["backend"]; got != "iptables-legacy" {
		t.Fatalf("backend %q, want iptables-legacy", got)
	}
	code, body, err := a.get("/readyz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "xtables lock") {
		t.Errorf("/readyz = %d %q %v, want 503 naming the xtables lock", code, body, err)
	}
	if code, _, err := a.get("/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz = %d %v while waiting for the lock, want 200", code, err)
	}
	if !strings.Contains(a.Logs(), "apply failed; retrying") || !strings.Contains(a.Logs(), "xtables lock") {
		t.Errorf("the log does not say the apply failed on the xtables lock")
	}
	if got := chain(); got != "" {
		t.Errorf("a chain was written while the lock was held:\n%s", got)
	}
	probes.check(t, "lock held before the first apply (nothing applied: nothing masquerades)", []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})
	heldStart := a.metric(`masqd_sync_total{result="error"}`)

	lock.release()
	waitRule(cfgBefore, "the config applied once the lock is free")
	a.waitStatus("/readyz", http.StatusOK)
	probes.check(t, "applied after the release", []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})

	// Held while the config changes: the rules in force stay, and so do the packets' sources.
	lock.hold(t)
	failed := a.metric(`masqd_sync_total{result="error"}`)
	mustWrite(t, path, cfgAfter)
	waitErrors(a, failed, "a failed attempt at the edit")
	if got := chain(); got != want(cfgBefore) {
		t.Errorf("the chain changed while the lock was held:\n%s", got)
	}
	probes.check(t, "lock held during an edit (the rules in force stay)", []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})
	if err := a.exitErr(); err != nil {
		t.Fatalf("masqd stopped while the lock was held: %v", err)
	}
	heldEdit := a.metric(`masqd_sync_total{result="error"}`) - failed

	lock.release()
	waitRule(cfgAfter, "the edit applied once the lock is free")
	probes.check(t, "the edit applied after the release", []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})
	if err := a.exitErr(); err != nil {
		t.Errorf("masqd stopped: %v", err)
	}
	reportFigures(t, "fault-xtables", probes.table("iptables mode (iptables-legacy): another process holds the xtables lock, at start and during a config edit",
		fmt.Sprintf("each attempt waited 5s for the lock (`-w 5`) and failed, logged \"apply failed; retrying\" naming the lock, /readyz 503 with the error, `masqd_sync_total{result=\"error\"}` +%v at start and +%v during the edit; one process throughout (/healthz 200, no restart), /metrics answered; the rules in force stayed; each release was followed by the apply within the retry backoff", heldStart, heldEdit)))
}
