//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// reliabilityPath is the document TestReliabilityReport writes.
const reliabilityPath = "../RELIABILITY.md"

// The document: headings, fixed text, and the generated sections (by name) in order. A line "@name" is where
// section name goes.
const reliabilityTemplate = `# Reliability and security

What masqd's reliability suite (issue 7, ` + "`e2e/reliability_*_test.go`" + `) shows, with the figures of its last
runs. The text between ` + "`<!-- begin NAME -->`" + ` and ` + "`<!-- end NAME -->`" + ` is written by the tests; regenerate it with

    sudo MASQD_WRITE_RELIABILITY=1 MASQD_E2E=required go test ./e2e -run 'Reliab' -count=1 -v   # default sizes
    sudo just soak                                                                                 # long sizes

A run rewrites the sections it measured and keeps the others; each section ends with the machine and the size
it was measured with. Figures of a failing test are kept, marked as such: they are the evidence.

## 1. No pod IP leaks under churn

Traffic decides. Every datagram is a new flow (a never-used source port), so each one is classified by the
ruleset in force when it crosses the node.

@churn

### The same with table rebuilds

@churn-rebuild

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
1 MiB + 1 byte (` + "`config.MaxFileSize`" + `; ` + "`config/hostile_test.go`" + ` checks Load of a 100 MB file allocates under 8 MiB).

@hostile-once

@hostile-agent

## 5. Fuzzing

@fuzz

## 6. Coexistence

@coexist

## 7. Least privilege

@privilege

@http

@manifests

` + "`govulncheck`" + ` runs in CI (` + "`go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./...`" + `); it needs https://vuln.go.dev.

## Kernel: which changes are atomic for packets

@kernel-rebuild

## Open findings

Items 1–6 each have a failing test; the fix belongs to the owner of the code.

1. **A table rebuild can masquerade a non-masquerade destination** (TestReliabilityChurnRebuild, and
   TestReliabilityRebuildAtomicity with nft alone). On Linux 6.18 a rule that reads a set created in the same
   transaction sometimes misses for packets racing the commit; masqd's rebuild (first apply, a shape change
   such as IPv6 or --random-fully toggled, repair of a deleted or tampered table) creates table, sets, chain and
   rules in one batch. Fix (nft/conn_linux.go, Apply): never create a set and the rule that reads it in one
   transaction — first commit the table and the sets with their elements (no rule reads them yet; the old rules
   keep working), then in a second transaction replace the chain and rules and delete what is foreign. Keep the
   single-batch replace only when a set of masqd's name exists with the wrong type.
2. **Without CAP_NET_ADMIN the agent never exits and logs 20 lines a second** (TestReliabilityPrivilegeWithout).
   The monitor's join fails with EPERM; watchKernel re-subscribes every 100 ms and kicks a reconcile each time,
   bypassing the apply backoff. Fix (agent/agent.go, watchKernel): return the error when errors.Is(err,
   unix.EPERM) — Run then fails and main exits 1 — and otherwise back off re-subscribing as the retry does.
3. **The permission error does not say what is missing** (same test): "nftables: get ruleset generation:
   netlink receive: operation not permitted". Fix (nft/conn_linux.go and gen_linux.go): wrap EPERM from
   netlink as "…: operation not permitted: masqd needs CAP_NET_ADMIN in this network namespace (run as root or
   grant the capability)", in Apply, Read, Delete, Counters and Monitor.
4. **An error quotes a huge value whole** (TestReliabilityHostileOnce, TestHostileErrorIsShort): a
   1,000,000-character CIDR gives a 2 MB error, logged and posted as an Event. Fix (config/types.go Error.Error,
   config/parse.go cidr): quote at most 64 characters of a value, with "…" and the full length.
5. **Warnings are unbounded** (TestHostileWarningsBounded): 1 MiB of unknown keys gives 105,000 warnings (14 MB of
   logs) and the agent's peak memory. Fix (config/decode.go fields): keep 20 warnings and add one "N more
   unknown keys ignored".
6. **A too-large cidrLimit is called "a non-integer number"** (TestHostileNumberTooLarge): YAML makes it a
   float. Fix (config/parse.go cidrLimit): an all-digit !!float is "number is too large".
7. **The DaemonSet's memory limit leaves little room** (no failing test: the bound holds today). With
   GOMEMLIMIT=128MiB the agent peaked at about 117 MiB over the hostile inputs and the 1 MiB file of unknown
   keys (section 4), against a 128Mi limit — before client-go's informer in a real pod. Fix 5 lowers the peak;
   until then a limit of 192Mi is safer (deploy/kubernetes/base/daemonset.yaml).
`

// TestReliabilityReport writes RELIABILITY.md from the figures the reliability tests of this run recorded,
// keeping the sections they did not measure. It runs last (its file sorts after the other reliability tests)
// and only with MASQD_WRITE_RELIABILITY=1, so that an ordinary test run leaves the tree clean.
func TestReliabilityReport(t *testing.T) {
	if os.Getenv("MASQD_WRITE_RELIABILITY") != "1" {
		t.Skip("set MASQD_WRITE_RELIABILITY=1 to rewrite RELIABILITY.md with this run's figures")
	}
	old, err := os.ReadFile(reliabilityPath)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	figures.mu.Lock()
	measured := figures.sections
	figures.mu.Unlock()
	measured["fuzz"] = fuzzSection(t)

	machine := machineLine()
	var b strings.Builder
	var kept, fresh []string
	for line := range strings.Lines(reliabilityTemplate) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "@")
		if !ok {
			b.WriteString(line)
			continue
		}
		body, ok := measured[name]
		switch {
		case ok:
			body = strings.TrimRight(body, "\n") + "\n\n_" + machine + "_\n"
			fresh = append(fresh, name)
		default:
			if body, ok = previousSection(string(old), name); ok {
				kept = append(kept, name)
			} else {
				body = "_Not measured yet._\n"
			}
		}
		fmt.Fprintf(&b, "<!-- begin %s -->\n%s<!-- end %s -->\n", name, body, name)
	}
	if err := os.WriteFile(reliabilityPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(reliabilityPath)
	t.Logf("wrote %s: measured %v, kept %v", abs, fresh, kept)
}

// previousSection returns section name's body from an earlier RELIABILITY.md.
func previousSection(doc, name string) (string, bool) {
	begin, end := "<!-- begin "+name+" -->\n", "<!-- end "+name+" -->"
	i := strings.Index(doc, begin)
	if i < 0 {
		return "", false
	}
	rest := doc[i+len(begin):]
	j := strings.Index(rest, end)
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// machineLine says where and how big a run was.
func machineLine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	nft, _ := exec.Command("nft", "--version").Output()
	size := "default sizes"
	if os.Getenv("MASQD_SOAK") == "1" {
		size = "soak sizes (MASQD_SOAK=1)"
	}
	return fmt.Sprintf("Measured on Linux %s, %s, %s, %d CPUs; %s.", strings.TrimSpace(string(kernel)),
		strings.TrimSpace(string(nft)), runtime.Version(), runtime.NumCPU(), size)
}

// fuzzSection lists the fuzz targets, their seed corpora and the CI commands.
func fuzzSection(t *testing.T) string {
	t.Helper()
	targets := []struct{ pkg, name, what string }{
		{"config", "FuzzParse", "any bytes: Parse returns a valid Config or an *Error with a message; never panics"},
		{"nft", "FuzzCompile", "random configs (v4/v6 prefixes in both lists, link-local flags): Masquerades(addr) equals a per-address reference for every prefix boundary ±1 and the input's own addresses; sets sorted, non-overlapping, non-adjacent; nft text of every interval parses back to it; order of prefixes irrelevant"},
		{"nft", "FuzzNormalize", "interval lists over a 256-address space at both ends of the address space: same membership as the input, normalized, idempotent, order-independent"},
		{"nft", "FuzzSubtract", "a − b over the same space: membership equals in(a) ∧ ¬in(b) per address, result normalized"},
	}
	seed := regexp.MustCompile(`(?m)^\s*f\.Add\(`)
	var b strings.Builder
	b.WriteString("| target | property | seeds (testdata + f.Add) | CI |\n|---|---|---:|---|\n")
	for _, tg := range targets {
		files, _ := filepath.Glob(filepath.Join("..", tg.pkg, "testdata", "fuzz", tg.name, "*"))
		adds := 0
		if src, err := readTargetSource(tg.pkg, tg.name); err == nil {
			adds = len(seed.FindAllString(src, -1))
		}
		fmt.Fprintf(&b, "| `%s.%s` | %s | %d + %d | `go test ./%s -run '^$' -fuzz '^%s$' -fuzztime 15s` |\n",
			tg.pkg, tg.name, tg.what, len(files), adds, tg.pkg, tg.name)
	}
	b.WriteString("\nWithout -fuzz, `go test` runs every seed as a test. A failing input found by a fuzzer lands in testdata/fuzz and stays a regression test.\n")
	return b.String()
}

// readTargetSource returns the body of the fuzz target's function, to count its f.Add seeds.
func readTargetSource(pkg, name string) (string, error) {
	files, err := filepath.Glob(filepath.Join("..", pkg, "*_test.go"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		s := string(src)
		i := strings.Index(s, "func "+name+"(")
		if i < 0 {
			continue
		}
		j := strings.Index(s[i:], "\n}\n")
		if j < 0 {
			j = len(s) - i
		}
		return s[i : i+j], nil
	}
	return "", fmt.Errorf("%s not found in %s", name, pkg)
}
