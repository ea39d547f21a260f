// Command reliabilityreport writes RELIABILITY.md from the output of a reliability run (` + "`go test -v`" + ` of
// e2e -run Reliab, as ` + "`just reliability`" + ` and ` + "`just soak`" + ` keep it). Each reliability test logs its figures as
// one message "RELIABILITY.md section NAME:" followed by the section's Markdown; this program puts every
// section the run logged in its place in the document, keeps the sections the run did not measure, and names
// the raw output file under each section it wrote, so that every figure can be traced to its run.
//
//	go run ./e2e/internal/reliabilityreport -raw reliability/default.txt [-soak] [-doc RELIABILITY.md]
//
// Run it from the repository's root. A kept section that names no raw output is dropped, and one that names
// the raw output this run overwrote is an error: run every reliability test.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

func main() {
	raw := flag.String("raw", "", "the run's `go test -v` output, relative to the repository (required)")
	doc := flag.String("doc", "RELIABILITY.md", "the document to rewrite")
	soak := flag.Bool("soak", false, "the run used the long sizes (MASQD_SOAK=1)")
	flag.Parse()
	if err := run(*raw, *doc, *soak, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "reliabilityreport:", err)
		os.Exit(1)
	}
}

func run(raw, doc string, soak bool, log io.Writer) error {
	if raw == "" {
		return errors.New("-raw is required: the run's go test -v output, relative to the repository")
	}
	f, err := os.Open(raw)
	if err != nil {
		return err
	}
	defer f.Close()
	measured, err := sections(f)
	if err != nil {
		return fmt.Errorf("%s: %w", raw, err)
	}
	if len(measured) == 0 {
		return fmt.Errorf("%s holds no RELIABILITY.md section: was it written by go test -v -run Reliab?", raw)
	}
	measured["fuzz"] = fuzzSection()
	old, err := os.ReadFile(doc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	text, summary, err := assemble(string(old), measured, raw, machineLine(raw, soak), soak)
	if err != nil {
		return err
	}
	if err := os.WriteFile(doc, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %s: %s\n", doc, summary)
	return nil
}

// sectionStart is the first line of a section as testing prints a t.Logf message under -v; the message's
// further lines follow indented by eight spaces.
var sectionStart = regexp.MustCompile(`^\s+\S+\.go:\d+: RELIABILITY\.md section ("[^"]+"):$`)

// sections reads go test -v output and returns each section's Markdown by name; a section logged twice
// (a test run again with -count) is the last.
func sections(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	name, body := "", []string(nil)
	flush := func() {
		if name != "" {
			out[name] = strings.Join(body, "\n") + "\n"
		}
		name, body = "", nil
	}
	for sc.Scan() {
		line := sc.Text()
		if name != "" {
			if rest, ok := strings.CutPrefix(line, "        "); ok {
				body = append(body, rest)
				continue
			}
			flush()
		}
		if m := sectionStart.FindStringSubmatch(line); m != nil {
			n, err := strconv.Unquote(m[1])
			if err != nil {
				return nil, fmt.Errorf("section name %s: %w", m[1], err)
			}
			name = n
		}
	}
	flush()
	return out, sc.Err()
}

// rawOutputRE finds the file a section's last line names as its run's raw output.
var rawOutputRE = regexp.MustCompile("raw output: `([^`]+)`")

// assemble fills the template: a measured section gets this run's machine line; a default-size run keeps
// a section measured at soak size; a kept section must name its own, different, raw output.
func assemble(old string, measured map[string]string, raw, machine string, soak bool) (string, string, error) {
	var b strings.Builder
	var kept, fresh, dropped, stale []string
	for line := range strings.Lines(template) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "@")
		if !ok {
			b.WriteString(line)
			continue
		}
		body, ok := measured[name]
		prev, hadPrev := previousSection(old, name)
		prevRaw := ""
		if m := rawOutputRE.FindStringSubmatch(prev); m != nil {
			prevRaw = m[1]
		}
		switch {
		case ok && hadPrev && !soak && strings.Contains(prev, "; soak sizes") && prevRaw != "":
			body = prev
			kept = append(kept, name)
		case ok:
			body = strings.TrimRight(body, "\n") + "\n\n_" + machine + "_\n"
			fresh = append(fresh, name)
		case hadPrev && prevRaw == "":
			body = "_Not measured since raw outputs are kept: `just soak` measures it._\n"
			dropped = append(dropped, name)
		case hadPrev && prevRaw == raw:
			stale = append(stale, name)
		case hadPrev:
			body = prev
			kept = append(kept, name)
		default:
			body = "_Not measured yet._\n"
		}
		fmt.Fprintf(&b, "<!-- begin %s -->\n%s<!-- end %s -->\n", name, body, name)
	}
	if len(stale) > 0 {
		return "", "", fmt.Errorf("sections %v were measured by an earlier run whose output, %s, this run replaced: run every reliability test (just reliability, or just soak)", stale, raw)
	}
	return b.String(), fmt.Sprintf("measured %v, kept %v, dropped (no raw output kept) %v", fresh, kept, dropped), nil
}

// previousSection returns section name's body from an earlier RELIABILITY.md.
func previousSection(doc, name string) (string, bool) {
	begin, end := "<!-- begin "+name+" -->\n", "<!-- end "+name+" -->"
	_, rest, ok := strings.Cut(doc, begin)
	if !ok {
		return "", false
	}
	body, _, ok := strings.Cut(rest, end)
	return body, ok
}

// machineLine says where and how big a run was, and which file keeps its raw output. It runs right after
// the tests, on their machine.
func machineLine(raw string, soak bool) string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	nft, _ := exec.Command("nft", "--version").Output()
	size := "default sizes"
	if soak {
		size = "soak sizes (MASQD_SOAK=1)"
	}
	return fmt.Sprintf("Measured on Linux %s, %s, %s, %d CPUs; %s; raw output: `%s`.", strings.TrimSpace(string(kernel)),
		strings.TrimSpace(string(nft)), runtime.Version(), runtime.NumCPU(), size, raw)
}

// fuzzSection lists the fuzz targets, their seed corpora and the CI commands.
func fuzzSection() string {
	targets := []struct{ pkg, name, what string }{
		{"config", "FuzzParse", "any bytes: Parse returns a valid Config or an *Error with a message; never panics"},
		{"config", "FuzzUpstream", "any document: masqd's verdict and effective non-masquerade set equal ip-masq-agent's own decode path (sigs.k8s.io/yaml, encoding/json, its validation), but for the intended differences"},
		{"config", "FuzzFastPath", "any document: the fast decoder for large CIDR lists gives what the general decoder gives"},
		{"ruleset", "FuzzCompile", "random configs (v4/v6 prefixes in both lists, link-local flags): Masquerades(addr) equals a per-address reference for every prefix boundary ±1 and the input's own addresses; sets sorted, non-overlapping, non-adjacent; nft text of every interval parses back to it; order of prefixes irrelevant"},
		{"ruleset", "FuzzNormalize", "interval lists over a 256-address space at both ends of the address space: same membership as the input, normalized, idempotent, order-independent"},
		{"ruleset", "FuzzSubtract", "a − b over the same space: membership equals in(a) ∧ ¬in(b) per address, result normalized"},
	}
	seed := regexp.MustCompile(`(?m)^\s*f\.Add\(`)
	var b strings.Builder
	b.WriteString("| target | property | seeds (testdata + f.Add) | CI |\n|---|---|---:|---|\n")
	for _, tg := range targets {
		files, _ := filepath.Glob(filepath.Join(tg.pkg, "testdata", "fuzz", tg.name, "*"))
		adds := len(seed.FindAllString(targetSource(tg.pkg, tg.name), -1))
		fmt.Fprintf(&b, "| `%s.%s` | %s | %d + %d | `go test ./%s -run '^$' -fuzz '^%s$' -fuzztime 15s` |\n",
			tg.pkg, tg.name, tg.what, len(files), adds, tg.pkg, tg.name)
	}
	b.WriteString("\nWithout -fuzz, `go test` runs every seed as a test. A failing input found by a fuzzer lands in testdata/fuzz and stays a regression test.\n")
	return b.String()
}

// targetSource returns the body of the fuzz target's function, to count its f.Add seeds ("" if not found).
func targetSource(pkg, name string) string {
	files, _ := filepath.Glob(filepath.Join(pkg, "*_test.go"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		_, body, ok := strings.Cut(string(src), "func "+name+"(")
		if !ok {
			continue
		}
		body, _, _ = strings.Cut(body, "\n}\n")
		return body
	}
	return ""
}

// The document: headings, fixed text, and the sections (by name) in order. A line "@name" is where section
// name goes.
const template = `# Reliability and security

What masqd's reliability suite (issue 7, ` + "`e2e/reliability_*_test.go`" + `) shows, with the figures of its last
runs. The text between ` + "`<!-- begin NAME -->`" + ` and ` + "`<!-- end NAME -->`" + ` is what the tests logged, put here by
` + "`e2e/internal/reliabilityreport`" + `; regenerate it with

    just reliability   # default sizes; the run's whole output goes to reliability/default.txt
    just soak          # long sizes (about two hours); reliability/soak.txt

A run rewrites the sections it measured and keeps the others; each section ends with the machine, the size it
was measured with and the file that holds the run's raw output (` + "`go test -v`" + `), where every figure can be found.
Figures of a failing test are kept, marked as such: they are the evidence.

## 1. No pod IP leaks under churn

Traffic decides. Every datagram is a new flow (a never-used source port), so each one is classified by the
ruleset in force when it crosses the node.

@churn

### The same with table rebuilds

@churn-rebuild

### The same beside 100,000 prefixes

@churn-large

## 2. Crash safety

@crash

## 3. Drift

@drift

@drift-iptables

### Table flags owner and persist: not used

masqd does not set NFT_TABLE_F_OWNER or NFT_TABLE_F_PERSIST on its table. An owned table cannot be deleted
or changed by anyone else, which would stop drift before it happens — but it also stops operators: ` + "`nft delete table inet masqd`" + `
fails with EPERM, ` + "`masqd --cleanup`" + ` from another process (an uninstall, a new pod) fails while the old one lives,
and ` + "`nft flush ruleset`" + ` reports success yet leaves the table, so a firewall reload no longer starts from a clean
slate. Without persist the table dies with masqd's socket, so a crash or an upgrade stops masquerade until masqd is
back — the opposite of "the rules outlive the process". Persist (Linux 6.9+, newer than many node kernels)
keeps it, but orphaned and unprotected until re-adopted. And google/nftables never sends the flags. Drift is
instead repaired within milliseconds (above). The measured behaviour:

@owner

## 4. Hostile input

Bounds: ` + "`masqd --once`" + ` peak RSS ≤ 128 MiB for any input; the agent ≤ its DaemonSet memory limit (128 MiB, with
GOMEMLIMIT) over all inputs in turn; at most 4 KiB of error output per input. A file is never read past
64 MiB + 1 byte (` + "`config.MaxFileSize`" + `; ` + "`config/hostile_test.go`" + ` checks Load of a 100 MB file allocates under 8 MiB).

@hostile-once

@hostile-agent

### Through the ConfigMap

@hostile-configmap

## 5. Fuzzing

@fuzz

## 6. Coexistence

@coexist

## 7. Least privilege

@privilege

@http

@manifests

` + "`govulncheck`" + ` runs in CI (` + "`.ci/govulncheck`" + `), and a finding fails it. Its database, which https://vuln.go.dev
serves but the development machines cannot reach, is built from the OSV files of the golang.org/x/vulndb module
at a pinned version, fetched through the Go module proxy and indexed with vulndb's own ` + "`cmd/indexdb`" + `.

## 8. Faults

Each fault is injected while the lab's pod sends TCP and UDP to a masqueraded destination (the internet) and
to a non-masquerade one (the VPC) at every phase of it; a leak is a probe that left with another source than
the rules in force give it.

@fault-xtables

@fault-enobufs

@fault-configmap

@fault-apiserver

## Kernel: which changes are atomic for packets

@kernel-rebuild

### Moving a destination's class

The churn test's flip phase through the kernel alone. Each variant is one way of making the same edits: masqd's
(the element changes in one transaction) must show no stale datagram; the others are measured by ` + "`just soak`" + `.

@kernel-flip

## Findings

Fixed (each has the test that found it):

1. **A table rebuild could masquerade a non-masquerade destination** (TestReliabilityChurnRebuild,
   TestReliabilityRebuildAtomicity): a rule that reads a set created in the same transaction misses now and
   then for packets racing the commit. masqd no longer does that: a change of shape (first apply, IPv6 or
   --random-fully toggled, repair of a deleted or tampered table) is two transactions — the missing sets with
   their elements first (no rule reads them yet), then the rules, keeping the leading rules that are right
   and their counters. Only a set of masqd's name with the wrong type still makes masqd replace the table in
   one transaction.
2. **Without CAP_NET_ADMIN the agent retried forever, 20 log lines a second** (TestReliabilityPrivilegeWithout):
   the agent now exits 1 when the kernel refuses it for want of privilege.
3. **The permission error did not say what was missing**: every nftables error caused by EPERM now ends with
   "masqd needs CAP_NET_ADMIN in this network namespace (run as root or grant the capability)".
4. **An error quoted a huge value whole** (TestHostileErrorIsShort): values are quoted up to 64 bytes, with
   the full length.
5. **Warnings were unbounded** (TestHostileWarningsBounded): at most 20 per file, then one "N more unknown keys
   ignored".
6. **A too-large cidrLimit was called "a non-integer number"** (TestHostileNumberTooLarge): now "number is too
   large".
7. **The churn test's flip phase blamed the kernel for its own bookkeeping** (TestReliabilityChurn,
   TestReliabilityFlipKernel). Some runs reported a few datagrams "classified by an older state of the set"
   after masqd's commit. Every one of them matched the *next* config, not an older one (with four
   configs cycling, two back and one ahead give each destination the same class, which hid it): the test raised
   its upper bound (the last config written) only after renaming the file, and masqd, which reacts to the
   rename within its 5 ms coalescing, sometimes committed that config while the test's goroutine had not yet
   run again on two busy cores. The bound is now raised before the rename and the flip phase fails on any
   impossible datagram again. The kernel was never behind: its commit publishes the set's new lookup array
   (nft_rbtree_commit, from nft_set_commit_update) before the NEWGEN notification the test waits for, and the
   kernel-only reproducer shows no stale datagram for masqd's shape; ` + "`conntrack -L`" + ` in the node namespace
   shows every datagram as its own flow.
8. **The masqd --once memory figures were the test's own** (TestReliabilityHostileOnce). A child's
   ru_maxrss, as its parent reads it, includes the parent's peak: Go starts children with vfork, and exec folds
   the high-water mark of the memory it replaces (the parent's, shared until then) into the child's. The
   figure had grown with the test binary, the same for every input, until the bound failed. The children now run under e2e/internal/peakrss, a small program that reports the child's own
   peak; masqd --once's real peak over the hostile inputs is the figure above.

9. **In iptables mode a held xtables lock hung /metrics** (TestReliabilityFaultXtablesLock): reading the
   rules' counters waited for the mutex an apply holds while iptables-restore waits for the lock. Counters
   now read without it (iptables-save takes no lock).
10. **A ConfigMap deleted and created again passed through the defaults** (TestReliabilityFaultConfigMapDeleted):
   masqd applied the defaults the moment the deletion was seen and the new config a moment later; without
   the fix 14 of 453 probes to a range the config keeps left with the node's address. A deleted ConfigMap's
   config now stays in force for 5 s (ip-masq-agent notices a deletion a minute or two late), then the
   defaults apply.

Open:

11. **The DaemonSet's memory limit leaves little room** (no failing test: the bound holds). With
   GOMEMLIMIT as in the DaemonSet (100MiB) the agent's peak (VmHWM, which is the process's own) over the hostile inputs and a 1 MiB
   file of unknown keys is in the figures above, against a 128Mi limit. Fix 5 lowers the peak; re-measure
   before changing the limit.
12. **Not for masqd: two sets swapped in one transaction are not atomic** (TestReliabilityFlipKernel with
   MASQD_SOAK=1). Refilling an idle set and pointing the rule at it in the same transaction lets a packet
   that crosses during the commit see the new rule read the set's previous contents: in nf_tables_commit the
   rules' new generation is live before nft_set_commit_update publishes the set's new array. The same cause
   as finding 1. Double-buffered sets would need two transactions (fill, then swap the rule), twice the
   kernel memory and twice the commits per edit — and masqd's in-place element changes already show none.
`
