package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace, as created by `ip netns add`, pinned at /run/netns/Name.
type NS struct {
	Name string
}

// NewNS creates a namespace named masqd-<role>-<8 hex digits> with lo up, and deletes it when the test ends.
// Deleting the namespace also destroys the veths and nftables tables inside it. It needs what
// RequireKernel checks.
func NewNS(t testing.TB, role string) *NS {
	t.Helper()
	RequireKernel(t)
	b := make([]byte, 4)
	rand.Read(b) // never returns an error
	ns := &NS{Name: "masqd-" + role + "-" + hex.EncodeToString(b)}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns.Name, err, out)
		}
	})
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Run runs `ip netns exec NAME args...` and returns its combined output, failing the test if it fails.
func (ns *NS) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.RunErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunErr runs `ip netns exec NAME args...` and returns its combined output. The error names the command and
// includes the output.
func (ns *NS) RunErr(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %w\n%s", ns.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Path is the namespace's pin file, for `nsenter --net=` and the iptables package.
func (ns *NS) Path() string { return "/run/netns/" + ns.Name }

// Open opens the namespace's pin file, for setns(2) or github.com/google/nftables' WithNetNSFd. The caller
// closes it.
func (ns *NS) Open() (*os.File, error) {
	f, err := os.Open(ns.Path())
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", ns.Name, err)
	}
	return f, nil
}

// Do runs fn on an OS thread switched into the namespace and returns fn's error. Sockets that fn creates belong
// to the namespace for their whole life, so they may be used after Do returns. fn runs on its own goroutine: it
// must not call t.Fatal, and it must not start goroutines that expect to be in the namespace.
//
// If the thread cannot be switched back, it is left locked, so the Go runtime ends it rather than reusing it.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- ns.do(fn) }()
	return <-errc
}

func (ns *NS) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	target, err := ns.Open()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns into %s: %w", ns.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Still locked: the thread exits with this goroutine instead of running others in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("setns back from %s: %w", ns.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
