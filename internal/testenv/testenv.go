// Package testenv decides whether a test can run on this machine. It is for masqd's tests only: nothing
// else imports it.
//
// Every skip in the module goes through Skip (RequireRoot, RequireCommand and RequireKernel call it). With
// MASQD_E2E=required in the environment, as `./test` and CI set it, Skip fails the test with the same
// reason instead: there a missing tool or privilege is a broken machine, not a reason to pass. The one
// exception is Optional, for the tests that are deliberately opt-in (the soak sizes, rewriting
// RELIABILITY.md): they skip unless their variable is set, whatever MASQD_E2E says, and say how to run them.
// A test in this package fails when a bare t.Skip appears anywhere else in the module.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequiredVar is the environment variable that turns skips into failures when it is "required".
const RequiredVar = "MASQD_E2E"

// Required reports whether MASQD_E2E=required: every test must run, and whatever it lacks is a failure.
func Required() bool { return os.Getenv(RequiredVar) == "required" }

// Skip skips the test, saying reason and how to run it; under MASQD_E2E=required it fails the test with
// the same reason instead.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatal(reason + " (a failure, not a skip, because " + RequiredVar + "=required; ./test installs what the tests need and runs them as root)")
		return
	}
	t.Skip(reason + " (skipped; ./test runs it: it installs what is missing and runs as root. " + RequiredVar + "=required makes this skip a failure)")
}

// RequireRoot skips the test (fails it under MASQD_E2E=required) unless the effective user is root, which
// creating network namespaces needs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		Skip(t, fmt.Sprintf("needs root to create network namespaces (euid is %d)", euid))
	}
}

// RequireCommand skips the test (fails it under MASQD_E2E=required) unless cmd is on PATH; the message names
// the Debian package that provides it.
func RequireCommand(t testing.TB, cmd, debianPackage string) {
	t.Helper()
	if why := missingCommand(cmd, debianPackage); why != "" {
		Skip(t, "needs "+why)
	}
}

// sbin are where Debian installs the administrator's commands, on root's PATH but not on a user's.
var sbin = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// missingCommand says why cmd cannot be run, or "" when it is on PATH.
func missingCommand(cmd, debianPackage string) string {
	if _, err := exec.LookPath(cmd); err == nil {
		return ""
	}
	for _, dir := range sbin {
		if _, err := os.Stat(filepath.Join(dir, cmd)); err == nil {
			return fmt.Sprintf("%q on PATH (it is in %s, on root's PATH)", cmd, dir)
		}
	}
	return fmt.Sprintf("%q on PATH (install the Debian package %s)", cmd, debianPackage)
}

// kernelCommands are what every kernel test runs, with the Debian packages that provide them.
var kernelCommands = []struct{ cmd, pkg string }{{"ip", "iproute2"}, {"nft", "nftables"}, {"sysctl", "procps"}}

// RequireKernel skips the test (fails it under MASQD_E2E=required) unless it may create network namespaces
// and nftables rules in them: the effective user is root and `ip`, `nft` and `sysctl` are on PATH. The
// message names everything that is missing at once.
func RequireKernel(t testing.TB) {
	t.Helper()
	var missing []string
	if euid := os.Geteuid(); euid != 0 {
		missing = append(missing, fmt.Sprintf("root (euid is %d)", euid))
	}
	for _, c := range kernelCommands {
		if why := missingCommand(c.cmd, c.pkg); why != "" {
			missing = append(missing, why)
		}
	}
	if len(missing) > 0 {
		Skip(t, "kernel test: needs "+strings.Join(missing, " and "))
	}
}

// Optional skips a deliberately opt-in test, one that takes long (soak sizes) or writes to the tree
// (RELIABILITY.md), unless envVar is "1", whatever MASQD_E2E says. reason says what the test does; the skip
// message says how to run it.
func Optional(t testing.TB, envVar, reason string) {
	t.Helper()
	if os.Getenv(envVar) != "1" {
		t.Skip("opt-in: " + reason + "; set " + envVar + "=1 to run it")
	}
}
