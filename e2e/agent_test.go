//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

const (
	cfgVPCOnly     = "nonMasqueradeCIDRs: [10.0.0.0/8]\n"
	cfgWithNetDocs = "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n"
)

// kernelTable is masqd's table as nft lists it in ns, counters zeroed.
func kernelTable(t testing.TB, ns *NS) string {
	t.Helper()
	return zeroCounters(ns.Run(t, "nft", "list", "table", "inet", "masqd"))
}

// dryRun is what `masqd --dry-run` prints for the config in path (absent: defaults).
func dryRun(t testing.TB, path string, flags ...string) string {
	t.Helper()
	return mustMasqd(t, nil, append([]string{"--config=" + path, "--dry-run"}, flags...)...)
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// TestAgentFileEdits: every way a config file is replaced reaches the kernel, and packets follow.
func TestAgentFileEdits(t *testing.T) {
	testenv.RequireKernel(t)
	type layout struct {
		path  string                       // what --config names
		write func(t *testing.T, c string) // replaces the config
	}
	layouts := map[string]func(dir string) layout{
		"write": func(dir string) layout {
			p := filepath.Join(dir, "ip-masq-agent")
			return layout{p, func(t *testing.T, c string) { mustWrite(t, p, c) }}
		},
		"rename": func(dir string) layout { // an editor's write-then-rename
			p := filepath.Join(dir, "ip-masq-agent")
			return layout{p, func(t *testing.T, c string) {
				tmp := p + ".swp"
				mustWrite(t, tmp, c)
				if err := os.Rename(tmp, p); err != nil {
					t.Fatal(err)
				}
			}}
		},
		"kubelet": func(dir string) layout { // a ConfigMap volume: ip-masq-agent -> ..data/ip-masq-agent, ..data -> ..<ts>
			n := 0
			swap := func(t *testing.T, c string) {
				n++
				ts := filepath.Join(dir, fmt.Sprintf("..2026_11_23_%d", n))
				if err := os.Mkdir(ts, 0o755); err != nil {
					t.Fatal(err)
				}
				mustWrite(t, filepath.Join(ts, "ip-masq-agent"), c)
				tmp := filepath.Join(dir, "..data_tmp")
				if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(dir, "ip-masq-agent")
			return layout{p, func(t *testing.T, c string) {
				swap(t, c)
				if _, err := os.Lstat(p); os.IsNotExist(err) {
					if err := os.Symlink("..data/ip-masq-agent", p); err != nil {
						t.Fatal(err)
					}
				}
			}}
		},
	}
	for name, mk := range layouts {
		t.Run(name, func(t *testing.T) {
			lab := newLab(t, labOptions{})
			l := mk(t.TempDir())
			l.write(t, cfgVPCOnly)
			ch := commits(t, lab.Node)
			a := startAgent(t, lab.Node, 9745, "--config="+l.path)
			nextCommit(t, ch, "first apply")
			a.waitStatus("/readyz", http.StatusOK)
			assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP)

			var lat []time.Duration
			for i := range 20 {
				c := cfgWithNetDocs
				if i%2 == 1 {
					c = cfgVPCOnly
				}
				start := time.Now()
				l.write(t, c)
				if cm := nextCommit(t, ch, "edit"); !cm.Own && cm.Process != "masqd" {
					t.Fatalf("edit %d: commit by %q, want masqd", i, cm.Process)
				}
				lat = append(lat, time.Since(start))
			}
			if got, want := kernelTable(t, lab.Node), dryRun(t, l.path); got != want {
				t.Fatalf("kernel after edits:\n%s\nwant\n%s", got, want)
			}
			assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP) // the last edit was cfgVPCOnly
			l.write(t, cfgWithNetDocs)
			nextCommit(t, ch, "edit")
			assertSource(t, lab, "tcp", lab.Internet, lab.PodIP)
			t.Logf("%s: edit→kernel over %d edits: p50 %v, max %v", name, len(lat), percentile(lat, 0.5), percentile(lat, 1))
		})
	}
}

// TestAgentFileDeleteAndCreate: a deleted file means defaults, as in ip-masq-agent; a file that appears
// later is picked up.
func TestAgentFileDeleteAndCreate(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	dir := t.TempDir()
	path := filepath.Join(dir, "ip-masq-agent")
	mustWrite(t, path, "nonMasqueradeCIDRs: [198.51.100.0/24]\n")
	ch := commits(t, lab.Node)
	a := startAgent(t, lab.Node, 9745, "--config="+path)
	nextCommit(t, ch, "first apply")
	a.waitStatus("/readyz", http.StatusOK)
	assertSource(t, lab, "tcp", lab.Internet, lab.PodIP)
	assertSource(t, lab, "tcp", lab.VPC, lab.NodeIP)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	nextCommit(t, ch, "delete")
	if got, want := kernelTable(t, lab.Node), dryRun(t, "/nonexistent"); got != want {
		t.Fatalf("after delete:\n%s\nwant the defaults\n%s", got, want)
	}
	assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP)
	assertSource(t, lab, "tcp", lab.VPC, lab.PodIP)

	mustWrite(t, path, "nonMasqueradeCIDRs: [198.51.100.0/24]\n")
	nextCommit(t, ch, "create")
	assertSource(t, lab, "tcp", lab.Internet, lab.PodIP)
}

// TestAgentInvalidConfig: an invalid config never changes the kernel; readiness and metrics say so.
func TestAgentInvalidConfig(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	dir := t.TempDir()
	path := filepath.Join(dir, "ip-masq-agent")
	mustWrite(t, path, "nonMasqueradeCIDRs: [10.0.0.1/8]\n")
	ch := commits(t, lab.Node)
	a := startAgent(t, lab.Node, 9745, "--config="+path)

	// Never valid: nothing applied, not ready, but alive.
	waitFor(t, 10*time.Second, "config rejected", func() error {
		if code, _, err := a.get("/healthz"); err != nil || code != http.StatusOK {
			return fmt.Errorf("healthz %d %v", code, err)
		}
		return nil
	})
	if v := a.metric("masqd_config_valid"); v != 0 {
		t.Errorf("masqd_config_valid = %v, want 0", v)
	}
	a.waitStatus("/readyz", http.StatusServiceUnavailable)
	if out, err := lab.Node.RunErr("nft", "list", "table", "inet", "masqd"); err == nil {
		t.Fatalf("table exists though the config was never valid:\n%s", out)
	}

	// Fixed: applied.
	mustWrite(t, path, cfgVPCOnly)
	nextCommit(t, ch, "fixed config")
	a.waitStatus("/readyz", http.StatusOK)
	if v := a.metric("masqd_config_valid"); v != 1 {
		t.Errorf("masqd_config_valid = %v, want 1", v)
	}
	before := lab.Node.Run(t, "nft", "list", "ruleset")

	// Broken again, and reloaded several times: the kernel keeps the last good rules, the error is logged
	// once, and the agent stays ready (the kernel holds the last good ruleset).
	reloads := a.metric("masqd_config_reloads_total")
	mustWrite(t, path, "nonMasqueradeCIDRs: [not-a-cidr]\n")
	for range 3 {
		if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the broken config read", func() error {
		if a.metric("masqd_config_valid") != 0 || a.metric("masqd_config_reloads_total") < reloads+2 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if after := lab.Node.Run(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("kernel changed by an invalid config:\n%s\nwas\n%s", after, before)
	}
	if n := strings.Count(a.Logs(), "not-a-cidr"); n != 1 {
		t.Errorf("the error was logged %d times, want once:\n%s", n, a.Logs())
	}
	a.waitStatus("/readyz", http.StatusOK)
	select {
	case c := <-ch:
		t.Fatalf("commit to masqd's table while the config was invalid: %+v", c)
	default:
	}
}

// TestAgentDrift: whatever else changes masqd's table, the agent puts it back, and counts it.
func TestAgentDrift(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	lab.Node.Run(t, "nft", "add table ip bystander")
	ch := commits(t, lab.Node)
	a := startAgent(t, lab.Node, 9745, "--config=/nonexistent/ip-masq-agent")
	nextCommit(t, ch, "first apply")
	a.waitStatus("/readyz", http.StatusOK)
	want := dryRun(t, "/nonexistent/ip-masq-agent")

	tampers := [][]string{
		{"delete", "table", "inet", "masqd"},
		{"delete", "element", "inet", "masqd", "nonmasq4", "{ 10.0.0.0/8 }"},
		{"add", "element", "inet", "masqd", "nonmasq4", "{ 198.51.100.0/24 }"},
		{"add", "rule", "inet", "masqd", "postrouting", "counter"},
		{"flush", "chain", "inet", "masqd", "postrouting"},
		{"flush", "ruleset"},
	}
	var lat []time.Duration
	for _, tamper := range tampers {
		start := time.Now()
		lab.Node.Run(t, append([]string{"nft"}, tamper...)...)
		if c := nextCommit(t, ch, "tamper"); c.Process != "nft" {
			t.Fatalf("nft %v: first commit by %q, want nft", tamper, c.Process)
		}
		if c := nextCommit(t, ch, "repair"); c.Process != "masqd" {
			t.Fatalf("nft %v: repair commit by %q, want masqd", tamper, c.Process)
		}
		lat = append(lat, time.Since(start))
		if got := kernelTable(t, lab.Node); got != want {
			t.Fatalf("after nft %v and repair:\n%s\nwant\n%s", tamper, got, want)
		}
	}
	assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP)
	if got := a.metric("masqd_drift_repairs_total"); got != float64(len(tampers)) {
		t.Errorf("masqd_drift_repairs_total = %v, want %d", got, len(tampers))
	}
	t.Logf("tamper→repaired (including the nft command): p50 %v, max %v over %d tampers",
		percentile(lat, 0.5), percentile(lat, 1), len(lat))
}

// TestAgentRestart: SIGTERM leaves the rules in place, and a restarted agent sends nothing when nothing
// changed.
func TestAgentRestart(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	path := writeConfig(t, cfgVPCOnly)
	ch := commits(t, lab.Node)
	a := startAgent(t, lab.Node, 9745, "--config="+path)
	nextCommit(t, ch, "first apply")
	a.waitStatus("/readyz", http.StatusOK)
	before := lab.Node.Run(t, "nft", "list", "ruleset")
	a.stop(syscall.SIGTERM)
	if after := lab.Node.Run(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("ruleset after SIGTERM:\n%s\nwant it unchanged\n%s", after, before)
	}
	assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP)

	b := startAgent(t, lab.Node, 9746, "--config="+path)
	b.waitStatus("/readyz", http.StatusOK)
	if v := b.metric(`masqd_sync_total{result="success"}`); v < 1 {
		t.Fatalf("restarted agent: masqd_sync_total{result=\"success\"} = %v, want ≥ 1", v)
	}
	select {
	case c := <-ch:
		t.Fatalf("restarted agent changed the table though nothing changed: %+v", c)
	default:
	}
}

// TestAgentMetrics: counters follow known traffic, and the build info names the backend.
func TestAgentMetrics(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	a := startAgent(t, lab.Node, 9745, "--config="+writeConfig(t, cfgVPCOnly))
	a.waitStatus("/readyz", http.StatusOK)
	if v := a.metric("masqd_ready"); v != 1 {
		t.Errorf("masqd_ready = %v while /readyz answers 200, want 1", v)
	}
	const sample = `masqd_masqueraded_packets_total{family="ipv4"}`
	before := a.metric(sample)
	const n = 7
	for range n {
		assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP) // masqueraded: one new connection each
		assertSource(t, lab, "tcp", lab.VPC, lab.PodIP)       // not masqueraded: not counted
	}
	if got := a.metric(sample) - before; got != n {
		t.Errorf("%s grew by %v after %d masqueraded connections, want %d", sample, got, n, n)
	}
	if v := a.metric(`masqd_nonmasquerade_intervals{family="ipv4"}`); v != 2 { // 10/8 and link-local
		t.Errorf("masqd_nonmasquerade_intervals{family=\"ipv4\"} = %v, want 2", v)
	}
	fams := a.families()
	build := map[string]string{}
	if info := fams["masqd_build_info"].GetMetric(); len(info) == 1 && info[0].GetGauge().GetValue() == 1 {
		for _, l := range info[0].Label {
			build[l.GetName()] = l.GetValue()
		}
	}
	if build["backend"] != "nftables" || build["goversion"] != runtime.Version() || build["version"] == "" {
		t.Errorf("masqd_build_info labels %v, want backend nftables, goversion %s and a version", build, runtime.Version())
	}
	for _, l := range []string{"revision", "modified"} {
		if _, ok := build[l]; !ok {
			t.Errorf("masqd_build_info has no %s label", l)
		}
	}
	// IPv6 is off: no ipv6 series at all.
	for _, name := range []string{"masqd_nonmasquerade_intervals", "masqd_masqueraded_packets_total", "masqd_masqueraded_bytes_total"} {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.Label {
				if l.GetName() == "family" && l.GetValue() != "ipv4" {
					t.Errorf("%s has a %s series with IPv6 off", name, l.GetValue())
				}
			}
		}
	}
	// One config, one hash.
	if info := fams["masqd_config_info"].GetMetric(); len(info) != 1 || len(info[0].Label) != 1 || len(info[0].Label[0].GetValue()) != 12 {
		t.Errorf("masqd_config_info: %v, want one series with a 12-digit hash", info)
	}
}

// systemdExposure is `systemd-analyze security`'s overall exposure score of deploy/systemd/masqd.service as
// recorded in deploy/systemd/README.md (0 is the most locked down, 10 the least). A change to the unit may
// lower it; raising it needs a reason, and this number and the README changed with it.
const systemdExposure = 2.1

// TestSystemdUnit: the shipped unit passes systemd-analyze verify, and its security exposure score is no
// worse than the recorded one.
func TestSystemdUnit(t *testing.T) {
	testenv.RequireCommand(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("../deploy/systemd/masqd.service")
	if err != nil {
		t.Fatal(err)
	}
	// Point ExecStart at the binary under test, since /usr/local/bin/masqd is not installed here.
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/masqd", masqdBin)
	path := filepath.Join(t.TempDir(), "masqd.service")
	mustWrite(t, path, text)
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for masqd\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no overall exposure level:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security: exposure %.1f (recorded %.1f)", score, systemdExposure)
	if score > systemdExposure {
		t.Errorf("exposure %.1f is worse than the recorded %.1f:\n%s", score, systemdExposure, out)
	}
	readme, err := os.ReadFile("../deploy/systemd/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("exposure level %.1f", systemdExposure); !strings.Contains(string(readme), want) {
		t.Errorf("deploy/systemd/README.md does not record %q", want)
	}
}

// TestAgentConfigDirectory: --config names a directory; every ip-masq* file in it is merged (a user and a
// platform ConfigMap side by side, as Azure's ip-masq-agent-v2 mounts them), and an edit to either lands.
func TestAgentConfigDirectory(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "ip-masq-agent"), "nonMasqueradeCIDRs: [10.128.0.0/16]\n")
	mustWrite(t, filepath.Join(dir, "ip-masq-agent-reconciled"), "nonMasqueradeCIDRs: [10.130.0.0/16]\n")
	mustWrite(t, filepath.Join(dir, "unrelated"), "not: [a config]\n")
	ch := commits(t, lab.Node)
	a := startAgent(t, lab.Node, 9745, "--config="+dir)
	nextCommit(t, ch, "first apply")
	a.waitStatus("/readyz", http.StatusOK)
	checkSources(t, lab, []expect{
		{lab.VPC, lab.PodIP}, // 10.130.0.9, from the second file
		{lab.Endpoint, lab.NodeIP},
		{lab.Internet, lab.NodeIP},
	})
	mustWrite(t, filepath.Join(dir, "ip-masq-agent"), "nonMasqueradeCIDRs: [10.128.0.0/16, 198.51.100.0/24]\n")
	nextCommit(t, ch, "edit of the first file")
	checkSources(t, lab, []expect{{lab.Internet, lab.PodIP}, {lab.VPC, lab.PodIP}})
	if err := os.Remove(filepath.Join(dir, "ip-masq-agent-reconciled")); err != nil {
		t.Fatal(err)
	}
	nextCommit(t, ch, "removal of the second file")
	checkSources(t, lab, []expect{{lab.VPC, lab.NodeIP}, {lab.Internet, lab.PodIP}})
}
