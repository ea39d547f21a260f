// Package architecture holds the test of ARCHITECTURE.md's import rules: which of masqd's packages each
// package may import, and that the pure ones import nothing that only builds on Linux.
package architecture

import (
	"os/exec"
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
	"status":    {"config", "ruleset", "nft", "iptables"},
	"agent":     {"config", "ruleset", "nft", "iptables"},
	"cmd/masqd": {"config", "ruleset", "nft", "iptables", "status", "agent"},
}

// linuxOnly are the dependencies that mean "this package talks to the Linux kernel".
var linuxOnly = []string{"golang.org/x/sys/unix", "github.com/google/nftables", "github.com/mdlayher/netlink"}

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
