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

// kubeBins are the control-plane binaries built from the kubetools module.
type kubeBins struct {
	Dir                      string
	Etcd, APIServer, Kubectl string
	KubeVersion, EtcdVersion string
}

// coldBuildBudget is how much of the test timeout a build from nothing needs: about 10 minutes on 2 cores.
const coldBuildBudget = 15 * time.Minute

// kubeTools returns kube-apiserver, kubectl and etcd as pinned by kubetools/go.mod, building them the first
// time into $XDG_CACHE_HOME/masqd-e2e/kubernetes-VERSION_etcd-VERSION (~/.cache when unset), where they stay
// for later runs. A file lock makes concurrent test processes build once. Building needs the Go toolchain and
// the module proxy, not root. `.ci/kubetools` runs this ahead of the tests.
func kubeTools(t testing.TB) kubeBins {
	t.Helper()
	modDir, err := filepath.Abs("kubetools")
	if err != nil {
		t.Fatal(err)
	}
	kv, ev, err := kubeToolsVersions(filepath.Join(modDir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("kube tools: no cache directory: %v (set XDG_CACHE_HOME)", err)
	}
	root = filepath.Join(root, "masqd-e2e")
	dir := filepath.Join(root, "kubernetes-"+kv+"_etcd-"+ev)
	b := kubeBins{Dir: dir, Etcd: filepath.Join(dir, "etcd"), APIServer: filepath.Join(dir, "kube-apiserver"),
		Kubectl: filepath.Join(dir, "kubectl"), KubeVersion: kv, EtcdVersion: ev}
	if _, err := os.Stat(dir); err == nil { // only ever made by the rename below, complete
		return b
	}

	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("kube tools: lock %s: %v", lock.Name(), err)
	}
	if _, err := os.Stat(dir); err == nil { // another process built them while this one waited
		return b
	}
	if deadline, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, set := deadline.Deadline(); set && time.Until(d) < coldBuildBudget {
			testenv.Skip(t, fmt.Sprintf("kube tools: %s is not built and only %v is left before the test timeout, less than the %v a cold build may take; build them first with .ci/kubetools (./test does), or run with -timeout 40m",
				dir, time.Until(d).Round(time.Second), coldBuildBudget))
		}
	}
	tmp, err := os.MkdirTemp(root, "build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700; the final directory is for everyone
		t.Fatal(err)
	}
	t.Logf("building kube-apiserver and kubectl %s and etcd %s into %s (about 10 minutes the first time)", kv, ev, dir)
	start := time.Now()
	// The version stamps make the apiserver report v1.37.x instead of v0.0.0-master, as a release does.
	major, minor, _ := strings.Cut(strings.TrimPrefix(kv, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	var ldflags []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ldflags = append(ldflags, "-X "+pkg+".gitVersion="+kv, "-X "+pkg+".gitMajor="+major, "-X "+pkg+".gitMinor="+minor,
			"-X "+pkg+".gitTreeState=clean")
	}
	builds := [][]string{
		{"build", "-trimpath", "-ldflags=" + strings.Join(ldflags, " "), "-o", tmp + "/",
			"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"},
		{"build", "-trimpath", "-o", filepath.Join(tmp, "etcd"), "go.etcd.io/etcd/server/v3"},
	}
	for _, args := range builds {
		cmd := exec.Command("go", args...)
		cmd.Dir = modDir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kube tools: go %s (in %s): %v\n%s", strings.Join(args, " "), modDir, err, out)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the kube tools in %v", time.Since(start).Round(time.Second))
	return b
}

// kubeToolsVersions reads the versions of k8s.io/kubernetes and etcd's server from the kubetools go.mod.
func kubeToolsVersions(gomod string) (kube, etcd string, err error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", "", fmt.Errorf("kube tools: %w", err)
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "k8s.io/kubernetes":
			kube = f[1]
		case "go.etcd.io/etcd/server/v3":
			etcd = f[1]
		}
	}
	if kube == "" || etcd == "" {
		return "", "", fmt.Errorf("kube tools: %s requires no k8s.io/kubernetes or go.etcd.io/etcd/server/v3", gomod)
	}
	return kube, etcd, nil
}

// TestKubeTools builds the control-plane binaries unless they are cached; it needs no root. CI runs it first
// (.ci/kubetools) so that the build does not count against the main test run's timeout.
func TestKubeTools(t *testing.T) {
	b := kubeTools(t)
	for _, bin := range []string{b.Etcd, b.APIServer, b.Kubectl} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%v (remove %s to rebuild)", err, b.Dir)
		}
	}
	out, err := exec.Command(b.APIServer, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), b.KubeVersion) {
		t.Fatalf("kube-apiserver --version: %s %v; want %s (remove %s to rebuild)", out, err, b.KubeVersion, b.Dir)
	}
	t.Logf("kube tools in %s: %s", b.Dir, strings.TrimSpace(string(out)))
}
