package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Fatal and Skip instead of stopping the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                     {}
func (r *recorder) Fatal(args ...any)           { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Skip(args ...any)            { r.skip = fmt.Sprint(args...) }
func (r *recorder) outcome() (fatal, skip bool) { return r.fatal != "", r.skip != "" }

// TestSkip: a skip is a skip that says how to run the test, and a failure with the same reason under
// MASQD_E2E=required; an opt-in test skips either way unless its variable is set.
func TestSkip(t *testing.T) {
	for _, tc := range []struct {
		e2e, optIn string
		call       func(testing.TB)
		fatal      bool
		want       string
	}{
		{"", "", func(t testing.TB) { Skip(t, "needs a thing") }, false, "needs a thing (skipped; ./test runs it"},
		{"required", "", func(t testing.TB) { Skip(t, "needs a thing") }, true, "needs a thing (a failure, not a skip, because MASQD_E2E=required"},
		{"", "", func(t testing.TB) { RequireCommand(t, "masqd-no-such-command", "masqd-pkg") }, false,
			`needs "masqd-no-such-command" on PATH (install the Debian package masqd-pkg)`},
		{"required", "", func(t testing.TB) { RequireCommand(t, "masqd-no-such-command", "masqd-pkg") }, true,
			`needs "masqd-no-such-command" on PATH (install the Debian package masqd-pkg)`},
		{"required", "", func(t testing.TB) { Optional(t, "MASQD_TESTENV_OPT_IN", "a long run") }, false,
			"opt-in: a long run; set MASQD_TESTENV_OPT_IN=1 to run it"},
		{"required", "1", func(t testing.TB) { Optional(t, "MASQD_TESTENV_OPT_IN", "a long run") }, false, ""},
	} {
		t.Setenv(RequiredVar, tc.e2e)
		t.Setenv("MASQD_TESTENV_OPT_IN", tc.optIn)
		r := &recorder{TB: t}
		tc.call(r)
		fatal, skip := r.outcome()
		got := r.fatal + r.skip
		switch {
		case tc.want == "" && (fatal || skip):
			t.Errorf("MASQD_E2E=%q opt-in=%q: stopped (%s), want the test to run", tc.e2e, tc.optIn, got)
		case tc.want != "" && (fatal != tc.fatal || skip == tc.fatal):
			t.Errorf("MASQD_E2E=%q: fatal=%t skip=%t (%s), want fatal=%t", tc.e2e, fatal, skip, got, tc.fatal)
		case !strings.Contains(got, tc.want):
			t.Errorf("MASQD_E2E=%q: message %q, want it to contain %q", tc.e2e, got, tc.want)
		}
	}
}

// TestRequireKernelNamesEverything: without the commands, one message names all that is missing, and where
// each is when it is installed off PATH.
func TestRequireKernelNamesEverything(t *testing.T) {
	t.Setenv(RequiredVar, "required")
	t.Setenv("PATH", t.TempDir())
	r := &recorder{TB: t}
	RequireKernel(r)
	for _, c := range kernelCommands {
		want := fmt.Sprintf("%q on PATH (install the Debian package %s)", c.cmd, c.pkg)
		for _, dir := range sbin {
			if _, err := os.Stat(filepath.Join(dir, c.cmd)); err == nil {
				want = fmt.Sprintf("%q on PATH (it is in %s, on root's PATH)", c.cmd, dir)
				break
			}
		}
		if !strings.Contains(r.fatal, want) {
			t.Errorf("RequireKernel with an empty PATH: %q, want a failure naming %s", r.fatal+r.skip, want)
		}
	}
}
