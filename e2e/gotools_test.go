//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/internal/testenv"
)

// Go-built tools the release tests run, each pinned to a version the module proxy serves. They are built
// once per version, as kubeTools builds the control plane, and kept in the user cache directory.
const (
	helmPkg     = "helm.sh/helm/v3/cmd/helm"
	helmVersion = "v3.22.0"
	// promtool comes from the Prometheus module, whose version v0.316.0 is Prometheus 3.16.0.
	promtoolPkg     = "github.com/prometheus/prometheus/cmd/promtool"
	promtoolVersion = "v0.316.0"
	// toolBuildBudget is how much of the test timeout a cold build may take on 2 cores (promtool: about 6
	// minutes, helm about 4).
	toolBuildBudget = 10 * time.Minute
)

// goTool returns the path of the command pkg at version, building it with `go install pkg@version` the first
// time into $XDG_CACHE_HOME/masqd-e2e/NAME-VERSION (~/.cache when unset), where it stays for later runs. A file
// lock makes concurrent test processes build it once. Building needs the Go toolchain and the module proxy,
// not root.
func goTool(t testing.TB, pkg, version string) string {
	t.Helper()
	name := filepath.Base(pkg)
	root, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("%s: no cache directory: %v (set XDG_CACHE_HOME)", name, err)
	}
	root = filepath.Join(root, "masqd-e2e")
	dir := filepath.Join(root, name+"-"+version)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil { // the directory is only ever made by the rename below, complete
		return bin
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(root, ".lock-"+name), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("%s: lock %s: %v", name, lock.Name(), err)
	}
	if _, err := os.Stat(bin); err == nil { // another process built it while this one waited
		return bin
	}
	if deadline, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, set := deadline.Deadline(); set && time.Until(d) < toolBuildBudget {
			testenv.Skip(t, fmt.Sprintf("%s %s is not built and only %v is left before the test timeout, less than the %v a cold build may take; build it first with .ci/kubetools (./test does), or run with -timeout 40m",
				name, version, time.Until(d).Round(time.Second), toolBuildBudget))
		}
	}
	tmp, err := os.MkdirTemp(root, "build-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("building %s@%s into %s (minutes, the first time)", pkg, version, dir)
	start := time.Now()
	cmd := exec.Command("go", "install", "-trimpath", pkg+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=-buildvcs=false")
	cmd.Dir = tmp // outside the masqd module: the tool's own go.mod decides its dependencies
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: go install %s@%s: %v\n%s", name, pkg, version, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v", name, time.Since(start).Round(time.Second))
	return bin
}

// runTool runs bin with args and returns its combined output, failing the test if it fails.
func runTool(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestGoTools builds helm and promtool unless they are cached; it needs no root. .ci/kubetools runs it
// before the tests (./test does), so that the builds do not count against their timeout.
func TestGoTools(t *testing.T) {
	for _, tool := range []struct{ pkg, version, versionArg string }{
		{helmPkg, helmVersion, "version"},
		{promtoolPkg, promtoolVersion, "--version"},
	} {
		bin := goTool(t, tool.pkg, tool.version)
		out := runTool(t, bin, tool.versionArg)
		t.Logf("%s: %s", bin, strings.TrimSpace(out))
	}
}
