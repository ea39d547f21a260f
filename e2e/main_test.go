//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// masqdBin is the masqd binary built once for the whole package by TestMain; peakRSSBin is
// e2e/internal/peakrss, which runChild starts its children through to measure their peak memory.
var masqdBin, peakRSSBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "masqd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	masqdBin, peakRSSBin = filepath.Join(dir, "masqd"), filepath.Join(dir, "peakrss")
	for bin, pkg := range map[string]string{masqdBin: "../cmd/masqd", peakRSSBin: "./internal/peakrss"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the masqd binary.
type result struct {
	stdout, stderr string
	code           int
}

// runMasqd runs masqd inside ns (or in the test's own namespace when ns is nil) and waits for it.
func runMasqd(t testing.TB, ns *NS, args ...string) result {
	t.Helper()
	cmd := exec.Command(masqdBin, args...)
	if ns != nil {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns.Name, masqdBin}, args...)...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("masqd %v: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// mustMasqd runs masqd and fails the test unless it exits 0.
func mustMasqd(t testing.TB, ns *NS, args ...string) string {
	t.Helper()
	r := runMasqd(t, ns, args...)
	if r.code != 0 {
		t.Fatalf("masqd %v: exit %d\nstderr: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// writeConfig writes a config file for the test and returns its path.
func writeConfig(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
