//go:build linux

// Command peakrss runs a command and writes the command's own peak resident memory (ru_maxrss, in KiB) to a
// file: peakrss OUT COMMAND [ARG...]. Its exit code is the command's.
//
// The e2e tests run their children through it because a child's ru_maxrss as its parent sees it includes the
// parent's: Go starts children with vfork, and the kernel's exec folds the high-water mark of the memory
// it replaces (the parent's, shared until then) into the child's. A test process of a few hundred MiB would
// then be reported for every child. Started from this small program, a child's figure is its own, or this
// program's few MiB when that is more.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: peakrss OUT COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // killed with this program
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		fmt.Fprintln(os.Stderr, "peakrss: no resource usage")
		os.Exit(2)
	}
	if err := os.WriteFile(os.Args[1], []byte(fmt.Sprintln(ru.Maxrss)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
