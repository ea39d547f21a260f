// Package architecture holds the test of ARCHITECTURE.md's import rules: which of masqd's packages each
// package may import, and that the pure ones import nothing that only builds on Linux.
package architecture

import (
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/masqd/masqd"

// allowed are the masqd packages each package may import (directly or not), as ARCHITECTURE.md draws them.
// internal/testenv is for tests only and is not listed: go list -deps without -test does not see it.
var allowed = map[string][]string{
	"config":    nil,
	"ruleset":   {"config"},
	"nft":       {"config", "ruleset"},
	"iptables":  {"config", "ruleset", "nft"},
	"conntrack": {"config", "ruleset"},
	"status":    {"config", "ruleset", "nft", "iptables"},
	"agent":     {"config", "ruleset", "nft", "iptables", "conntrack"},
	"cmd/masqd": {"config", "ruleset", "nft", "iptables", "conntrack", "status", "agent"},
}

// linuxOnly are the dependencies that mean "this package talks to the Linux kernel".
var linuxOnly = []string{"golang.org/x/sys/unix", "github.com/google/nftables", "github.com/mdlayher/netlink", "github.com/ti-mo/conntrack"}

// pure are the packages that must build, and mean the same, on any GOOS: they import nothing Linux-only.
var pure = []string{"config", "ruleset"}

func deps(t *testing.T, goos, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg)
	cmd.Dir = "../.."
	cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GOOS=%s go list -deps ./%s: %v", goos, pkg, err)
	}
	return strings.Fields(string(out))
}

func TestImports(t *testing.T) {
	for _, goos := range []string{"linux", "darwin"} {
		for pkg, may := range allowed {
			for _, d := range deps(t, goos, pkg) {
				own, ok := strings.CutPrefix(d, module+"/")
				if ok && own != pkg && !slices.Contains(may, own) {
					t.Errorf("GOOS=%s: %s imports %s; ARCHITECTURE.md allows only %q", goos, pkg, own, may)
				}
				if slices.Contains(pure, pkg) && slices.Contains(linuxOnly, d) {
					t.Errorf("GOOS=%s: %s imports %s, which only works on Linux; it must stay pure", goos, pkg, d)
				}
			}
		}
	}
}

// TestDocumentSaysTheSame: ARCHITECTURE.md's package table lists, for each package, the masqd packages it
// may import: the same as allowed.
func TestDocumentSaysTheSame(t *testing.T) {
	doc, err := os.ReadFile("../../ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| [^|]+ \\| ([^|]+) \\|")
	name := regexp.MustCompile("`([^`]+)`")
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		pkg, may := m[1], allowed[m[1]]
		if _, ok := allowed[pkg]; !ok {
			continue
		}
		seen[pkg] = true
		var says []string
		for _, n := range name.FindAllStringSubmatch(m[2], -1) {
			says = append(says, n[1])
		}
		if strings.Contains(m[2], "all of the above") {
			says = slices.DeleteFunc(slices.Collect(maps.Keys(allowed)), func(p string) bool { return p == pkg })
		}
		slices.Sort(says)
		want := slices.Sorted(slices.Values(may))
		if !slices.Equal(says, want) {
			t.Errorf("ARCHITECTURE.md says %s may import %q; the test allows %q", pkg, says, want)
		}
	}
	for pkg := range allowed {
		if !seen[pkg] {
			t.Errorf("ARCHITECTURE.md's package table has no row for %s", pkg)
		}
	}
}
