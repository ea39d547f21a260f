//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// Memory bounds for hostile input, chosen from measurements with margin (RELIABILITY.md has the measured
// peaks). masqd's own baseline is about 35 MiB (the binary links client-go).
const (
	onceRSSBound = 128 << 20 // masqd --once, any single input
	// agentRSSBound is the DaemonSet's memory limit (deploy/kubernetes/base: limits.memory 128Mi, with
	// the GOMEMLIMIT of daemonSetGOMEMLIMIT): the agent must get through every input in turn without being
	// OOM-killed.
	agentRSSBound = 128 << 20
	stderrBound   = 4 << 10 // an error is a sentence or two, whatever the input
)

// daemonSetGOMEMLIMIT is the GOMEMLIMIT the DaemonSet of deploy/kubernetes/base gives masqd, which the
// agent tests set as it does.
func daemonSetGOMEMLIMIT(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../deploy/kubernetes/base/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`- name: GOMEMLIMIT\n\s+value: (\S+)\n`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/kubernetes/base/daemonset.yaml sets no GOMEMLIMIT value")
	}
	return string(m[1])
}

// hostileInput is one bad config: how to put it at a path, and a substring its error must contain.
type hostileInput struct {
	name string
	want string
	// path is what --config names for --once.
	path string
	// install puts the input at path for the agent (replacing what is there in one rename); nil when the
	// input is not a single file (a directory).
	install func(t *testing.T, path string)
}

// hostileInputs returns the files of testdata/hostile with the substrings of expectations.tsv, and the inputs
// generated here because they are large or not regular files.
func hostileInputs(t *testing.T) []hostileInput {
	t.Helper()
	dir, err := filepath.Abs("testdata/hostile")
	if err != nil {
		t.Fatal(err)
	}
	tsv, err := os.ReadFile(filepath.Join(dir, "expectations.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var inputs []hostileInput
	listed := map[string]bool{}
	for line := range strings.Lines(string(tsv)) {
		line = strings.TrimRight(line, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, want, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("expectations.tsv: bad line %q", line)
		}
		listed[name] = true
		path := filepath.Join(dir, name)
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, hostileInput{name: name, want: want, path: path,
			install: func(t *testing.T, p string) { replaceAtomically(t, p, content) }})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "expectations.tsv" && !listed[e.Name()] {
			t.Errorf("testdata/hostile/%s has no line in expectations.tsv", e.Name())
		}
	}

	gen := t.TempDir()
	write := func(name string, fill func(w *bufio.Writer)) string {
		path := filepath.Join(gen, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		fill(w)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	fileInput := func(name, want string, fill func(w *bufio.Writer)) {
		path := write(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return '-'
		}, strings.ToLower(name)), fill)
		inputs = append(inputs, hostileInput{name: name, want: want, path: path,
			install: func(t *testing.T, p string) { linkOver(t, p, path, true) }})
	}
	const tooLarge = "larger than masqd reads (64 MiB)"
	fileInput("generated: 100 MB of CIDRs", tooLarge, func(w *bufio.Writer) {
		w.WriteString("nonMasqueradeCIDRs:\n")
		line := "  - 10.0.0.0/8\n"
		for range 100_000_000 / len(line) {
			w.WriteString(line)
		}
	})
	fileInput("generated: 10 MiB of nesting", "exceeded max depth", func(w *bufio.Writer) {
		w.WriteString("nonMasqueradeCIDRs: ")
		w.WriteString(strings.Repeat("[", 10<<20))
	})
	fileInput("generated: a million prefixes over cidrLimit", "1000000 CIDRs is more than cidrLimit 64", func(w *bufio.Writer) {
		w.WriteString("nonMasqueradeCIDRs:\n")
		for i := range 1_000_000 {
			fmt.Fprintf(w, "- %d.%d.%d.0/24\n", 1+i>>16, i>>8&0xff, i&0xff)
		}
	})
	fileInput("generated: 64 MiB + 1 byte of comment", tooLarge, func(w *bufio.Writer) {
		w.WriteString("#" + strings.Repeat("x", 64<<20) + "\n")
	})
	fileInput("generated: 1 MiB of nesting", "exceeded max depth", func(w *bufio.Writer) {
		w.WriteString("nonMasqueradeCIDRs: ")
		w.WriteString(strings.Repeat("[", 1<<20-30))
	})
	fileInput("generated: 1 MiB of prefixes over cidrLimit", "CIDRs is more than cidrLimit 64", func(w *bufio.Writer) {
		w.WriteString("nonMasqueradeCIDRs:\n")
		n := 0
		for i := 0; n+17 < 1<<20-30; i++ {
			k, _ := fmt.Fprintf(w, "- %d.%d.%d.0/24\n", 1+i>>16, i>>8&0xff, i&0xff)
			n += k
		}
	})
	fileInput("generated: 1 MiB flow list of 0.0.0.0/0 over cidrLimit", "CIDRs is more than cidrLimit 64", func(w *bufio.Writer) {
		w.WriteString("nonMasqueradeCIDRs: [0.0.0.0/0")
		for range (1<<20 - 40) / 10 {
			w.WriteString(",0.0.0.0/0")
		}
		w.WriteString("]\n")
	})
	fileInput("generated: 1 MiB of unknown keys, then a bad value", "cidrLimit \"x\": must be a whole number", func(w *bufio.Writer) {
		n := 0
		for i := 0; n < 1<<20-100; i++ {
			k, _ := fmt.Fprintf(w, "k%d: %d\n", i, i)
			n += k
		}
		w.WriteString("cidrLimit: x\n")
	})
	fileInput("generated: a 1,000,000-character CIDR", "not a valid CIDR", func(w *bufio.Writer) {
		w.WriteString("nonMasqueradeCIDRs: [\"10.0.0.0/" + strings.Repeat("8", 1_000_000) + "\"]\n")
	})

	// Not regular files.
	inputs = append(inputs, hostileInput{name: "generated: /dev/zero", want: "not a regular file", path: "/dev/zero",
		install: func(t *testing.T, p string) { linkOver(t, p, "/dev/zero", false) }})
	fifo := filepath.Join(gen, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs, hostileInput{name: "generated: a FIFO", want: "not a regular file", path: fifo,
		install: func(t *testing.T, p string) {
			tmp := filepath.Join(filepath.Dir(p), ".fifo")
			if err := syscall.Mkfifo(tmp, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}})
	loop := filepath.Join(gen, "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs, hostileInput{name: "generated: a symlink to itself", want: "too many levels of symbolic links", path: loop,
		install: func(t *testing.T, p string) { linkOver(t, p, p, false) }})

	// Directories, as when --config names a ConfigMap volume: the bad file is named.
	mixed := filepath.Join(gen, "mixed")
	if err := os.Mkdir(mixed, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(mixed, "ip-masq-agent"), cfgVPCOnly)
	mustWrite(t, filepath.Join(mixed, "ip-masq-z"), "cidrLimit: 10\nnonMasqueradeCIDRs: [10.0.0.1/8]\n")
	inputs = append(inputs, hostileInput{name: "generated: directory with one bad file", want: "ip-masq-z line 2: nonMasqueradeCIDRs[0] \"10.0.0.1/8\": CIDR is not aligned", path: mixed})
	million := filepath.Join(gen, "million")
	if err := os.Mkdir(million, 0o755); err != nil {
		t.Fatal(err)
	}
	for f := range 20 {
		write(filepath.Join("million", fmt.Sprintf("ip-masq-%02d", f)), func(w *bufio.Writer) {
			w.WriteString("nonMasqueradeCIDRs:\n")
			for i := f * 50_000; i < (f+1)*50_000; i++ {
				fmt.Fprintf(w, "- %d.%d.%d.%d/32\n", 1+i>>16, i>>8&0xff, i&0xff, f)
			}
		})
	}
	inputs = append(inputs, hostileInput{name: "generated: a million prefixes in 20 files", want: "ip-masq-00 line 1: nonMasqueradeCIDRs: 50000 CIDRs is more than cidrLimit 64", path: million})
	return inputs
}

// linkOver replaces path by a hard link to target (hard, so the agent's reload reads target's bytes without a
// copy) or by a symlink to it, in one rename.
func linkOver(t *testing.T, path, target string, hard bool) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".link")
	_ = os.Remove(tmp)
	link := os.Symlink
	if hard {
		link = os.Link
	}
	if err := link(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// checkHostileOutput checks what masqd printed for a hostile input: the error names the problem, is short,
// and is not a panic.
func checkHostileOutput(t *testing.T, in hostileInput, stderr string) {
	t.Helper()
	if !strings.Contains(stderr, in.want) {
		t.Errorf("%s: error does not say %q:\n%s", in.name, in.want, clipText(stderr, 2000))
	}
	if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("%s: masqd panicked:\n%s", in.name, clipText(stderr, 4000))
	}
	if len(stderr) > stderrBound {
		t.Errorf("%s: %d bytes on stderr (bound %d): an error must stay readable, and it goes to logs and Events whole:\n%s",
			in.name, len(stderr), stderrBound, clipText(stderr, 600))
	}
}

// TestReliabilityHostileOnce runs `masqd --once` in the lab's node, which already holds a good ruleset, on
// every hostile input: each must exit 1 with a short error naming the problem, print nothing on stdout, not
// panic, stay under onceRSSBound, and leave the kernel exactly as it was.
func TestReliabilityHostileOnce(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	applyConfig(t, lab, cfgVPCOnly)
	before := lab.Node.Run(t, "nft", "list", "ruleset")
	inputs := hostileInputs(t)
	var peak int64
	peakName := ""
	for _, in := range inputs {
		r := runChild(t, lab.Node, time.Minute, masqdBin, "--config="+in.path, "--once")
		if r.code != 1 || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q; want exit 1 and nothing on stdout", in.name, r.code, clipText(r.stdout, 200))
		}
		checkHostileOutput(t, in, r.stderr)
		if r.maxRSS > onceRSSBound {
			t.Errorf("%s: peak RSS %s, bound %s", in.name, inMiB(r.maxRSS), inMiB(onceRSSBound))
		}
		if r.maxRSS > peak {
			peak, peakName = r.maxRSS, in.name
		}
		if after := lab.Node.Run(t, "nft", "list", "ruleset"); after != before {
			t.Fatalf("%s changed the kernel:\n%s\nwas\n%s", in.name, after, before)
		}
	}
	checkSources(t, lab, []expect{{lab.VPC, lab.PodIP}, {lab.Internet, lab.NodeIP}})
	reportFigures(t, "hostile-once", fmt.Sprintf("%d hostile inputs (%d files in `e2e/testdata/hostile`, listed with the error each must give in `expectations.tsv`, and %d generated: 100 MB, 10 MiB of nesting, a million prefixes, 1 MiB inputs of every expensive kind, a 1,000,000-character CIDR, /dev/zero, a FIFO, a symlink loop, directories) through `masqd --once` in a namespace holding a good ruleset: every one exited 1 with its error, nothing on stdout, no panic, at most %d bytes on stderr, and `nft list ruleset` unchanged. Peak RSS (masqd's own ru_maxrss, through e2e/internal/peakrss): **%s**, for %q (bound %s).\n",
		len(inputs), len(inputs)-countGenerated(inputs), countGenerated(inputs), stderrBound, inMiB(peak), peakName, inMiB(onceRSSBound)))
}

func countGenerated(inputs []hostileInput) int {
	n := 0
	for _, in := range inputs {
		if strings.HasPrefix(in.name, "generated: ") {
			n++
		}
	}
	return n
}

// TestReliabilityHostileAgent puts every single-file hostile input at the running agent's config path, one
// after the other, with the good config back in between (so that each error is logged: the agent logs a
// repeated error once): the agent must log the error, report masqd_config_valid 0, stay alive and healthy,
// never commit to the kernel, and stay under agentRSSBound. (The same inputs through the ConfigMap source are
// for the Kubernetes suite, issue 4.)
func TestReliabilityHostileAgent(t *testing.T) {
	testenv.RequireKernel(t)
	memLimit := daemonSetGOMEMLIMIT(t)
	t.Setenv("GOMEMLIMIT", memLimit) // as the DaemonSet sets it; the agent inherits the environment
	lab := newLab(t, labOptions{})
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	mustWrite(t, path, cfgVPCOnly)
	w := watchCommits(t, lab.Node)
	a := startAgent(t, lab.Node, 9745, "--config="+path, "--log-level=info")
	w.next(t, "first apply", 10*time.Second)
	a.waitStatus("/readyz", http.StatusOK)
	before := lab.Node.Run(t, "nft", "list", "ruleset")

	reloads := func() float64 { return a.metric("masqd_config_reloads_total") }
	tried := 0
	for _, in := range hostileInputs(t) {
		if in.install == nil {
			continue
		}
		tried++
		r0, logged0 := reloads(), len(agentConfigErrors(t, a))
		in.install(t, path)
		checkHostileOutput(t, in, waitRejected(t, a, in.name, r0, logged0))
		restoreGood(t, a, in.name, func() { replaceAtomically(t, path, []byte(cfgVPCOnly)) })
	}
	hostileRSS := peakRSS(t, a.cmd.Process.Pid)
	// Not hostile but the most expensive valid file: 1 MiB of unknown keys (each one a warning) that otherwise
	// says what the kernel already holds.
	var big strings.Builder
	big.WriteString(cfgVPCOnly)
	for i := 0; big.Len() < 1<<20-20; i++ {
		fmt.Fprintf(&big, "k%d: 1\n", i)
	}
	r0 := reloads()
	replaceAtomically(t, path, []byte(big.String()))
	waitFor(t, 30*time.Second, "1 MiB of unknown keys read", func() error {
		if reloads() <= r0 || a.metric("masqd_config_valid") != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	rss := checkSurvived(t, lab, a, w, before, "the config")
	reportFigures(t, "hostile-agent", fmt.Sprintf("The same inputs, those that are a single file (%d), put one by one at the running agent's config path (rename; hard or symbolic link for the generated ones), the good config restored in between: each was logged with its error, `masqd_config_valid` went to 0 and back to 1, the agent stayed alive, healthy and ready, and made no commit. Then a valid 1 MiB file of unknown keys (the most expensive valid input: a warning each). With GOMEMLIMIT=%s as in the DaemonSet, the agent's peak RSS (VmHWM): **%s** after the hostile inputs, **%s** after the unknown keys too (bound: the DaemonSet's memory limit, %s). The same inputs through the ConfigMap: next section.\n",
		tried, memLimit, inMiB(hostileRSS), inMiB(rss), inMiB(agentRSSBound)))
}

// agentConfigErrors returns the errors of the agent's "invalid config" log lines, in order.
func agentConfigErrors(t *testing.T, a *agentProc) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(a.Logs()))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var rec struct{ Msg, Err string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && strings.HasPrefix(rec.Msg, "invalid config") {
			out = append(out, rec.Err)
		}
	}
	return out
}

// waitRejected waits until the running agent has read the hostile input named what and rejected it: one more
// config reload than r0, masqd_config_valid 0, and more config errors logged than logged0. It returns the last
// error logged.
func waitRejected(t *testing.T, a *agentProc, what string, r0 float64, logged0 int) string {
	t.Helper()
	waitFor(t, 10*time.Second, what+" read and rejected", func() error {
		if a.metric("masqd_config_reloads_total") <= r0 || a.metric("masqd_config_valid") != 0 {
			return fmt.Errorf("not yet")
		}
		if len(agentConfigErrors(t, a)) <= logged0 {
			return fmt.Errorf("error not logged yet")
		}
		return nil
	})
	errs := agentConfigErrors(t, a)
	return errs[len(errs)-1]
}

// restoreGood puts the good config back with put, waits until the agent has read it and found it valid, and
// fails the test if the agent is gone: after what, it must still be running.
func restoreGood(t *testing.T, a *agentProc, what string, put func()) {
	t.Helper()
	r1 := a.metric("masqd_config_reloads_total")
	put()
	waitFor(t, 10*time.Second, "good config back after "+what, func() error {
		if a.metric("masqd_config_reloads_total") <= r1 || a.metric("masqd_config_valid") != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	select {
	case <-a.exited:
		t.Fatalf("agent exited after %s:\n%s", what, clipText(a.Logs(), 4000))
	default:
	}
}

// checkSurvived checks the agent after hostile input through source ("the config", "the ConfigMap"): its peak
// RSS within agentRSSBound, healthy and ready, no commit to masqd's table since w's last drain, and the node's
// ruleset as before. It returns the peak RSS.
func checkSurvived(t *testing.T, lab *Lab, a *agentProc, w *commitWatch, before, source string) int64 {
	t.Helper()
	rss := peakRSS(t, a.cmd.Process.Pid)
	if rss > agentRSSBound {
		t.Errorf("agent peak RSS %s, bound %s", inMiB(rss), inMiB(agentRSSBound))
	}
	a.waitStatus("/healthz", http.StatusOK)
	a.waitStatus("/readyz", http.StatusOK)
	if cs := w.drain(); len(cs) > 0 {
		t.Errorf("commits to table inet masqd while %s was hostile: %v", source, cs)
	}
	if after := lab.Node.Run(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("kernel changed:\n%s\nwas\n%s", after, before)
	}
	if strings.Contains(a.Logs(), "panic:") {
		t.Errorf("agent logged a panic")
	}
	return rss
}
