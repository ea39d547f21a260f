package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// hostileDir holds the reliability suite's bad configs (issue 7) with, in expectations.tsv, a substring of the
// error each must give. The e2e suite runs them through masqd --once and the agent; here they go through
// Parse and Load in-process, without root, with a bound on what each costs.
const hostileDir = "../e2e/testdata/hostile"

// heapAllocated returns the bytes fn allocates.
func heapAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileInputs: every hostile file fails Parse with an *Error whose text names the problem, without a
// panic, and allocating no more than 256 bytes per input byte plus 1 MiB.
func TestHostileInputs(t *testing.T) {
	tsv, err := os.ReadFile(filepath.Join(hostileDir, "expectations.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(tsv)) {
		line = strings.TrimRight(line, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, want, _ := strings.Cut(line, "\t")
		data, err := os.ReadFile(filepath.Join(hostileDir, name))
		if err != nil {
			t.Fatal(err)
		}
		n++
		var perr error
		alloc := heapAllocated(func() { _, _, perr = Parse(name, data, Options{}) })
		var e *Error
		switch {
		case perr == nil:
			t.Errorf("%s: accepted", name)
		case !errors.As(perr, &e):
			t.Errorf("%s: error %T, want *Error", name, perr)
		case !strings.Contains(perr.Error(), want):
			t.Errorf("%s: error %q does not say %q", name, perr, want)
		}
		if bound := uint64(256*len(data) + 1<<20); alloc > bound {
			t.Errorf("%s: Parse allocated %d bytes for %d bytes of input (bound %d)", name, alloc, len(data), bound)
		}
	}
	if n < 50 {
		t.Errorf("only %d hostile inputs; issue 7 asks for at least 50", n)
	}
}

// TestHostileLoadReadsAtMostMaxFileSize: Load of a 100 MB file reads only enough of it to know it is too
// large.
func TestHostileLoadReadsAtMostMaxFileSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	line := []byte("  - 10.0.0.0/8\n")
	if err := os.WriteFile(path, append([]byte("nonMasqueradeCIDRs:\n"), bytes.Repeat(line, 100<<20/len(line))...), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	alloc := heapAllocated(func() { _, _, err = Load(path, Options{}) })
	if err == nil || !strings.Contains(err.Error(), "larger than masqd reads (64 MiB)") {
		t.Fatalf("Load of 100 MB: %v", err)
	}
	if alloc > 8<<20 {
		t.Errorf("Load of a 100 MB file allocated %d bytes: it read more than it needed", alloc)
	}
}

// TestHostileErrorIsShort: an error quotes the offending value, but a value of a million characters must not
// make a million-character error — it is logged, and posted as a Kubernetes Event, whole.
//
// It failed before RELIABILITY.md's finding 4: Error.Error quoted Value in full, and cidr() put the value into
// Msg a second time through netip's error text. Values are now quoted up to 64 bytes with an ellipsis and the
// full length, e.g. "10.0.0.0/8888…" (1000010 bytes).
func TestHostileErrorIsShort(t *testing.T) {
	in := "nonMasqueradeCIDRs: [\"10.0.0.0/" + strings.Repeat("8", 1_000_000) + "\"]\n"
	_, _, err := Parse(file, []byte(in), Options{})
	if err == nil {
		t.Fatal("accepted")
	}
	if msg := err.Error(); len(msg) > 1024 {
		t.Errorf("error of %d bytes for a long value: %s", len(msg), msg[:300]+"…")
	}
}

// TestHostileWarningsBounded: a file of unknown keys is valid (each is a warning), but a 1 MiB one must not
// produce a hundred thousand warnings — the agent logs every one, at every change of the set.
//
// It failed before RELIABILITY.md's finding 5: Parse returned one Warning per unknown key (105,000 for 1 MiB;
// 14 MB of JSON logs from masqd --dry-run). Now a file gives at most 20, then one "N more unknown keys
// ignored".
func TestHostileWarningsBounded(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 1<<20-100; i++ { // as large as a ConfigMap can be
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	_, warnings, err := Parse(file, []byte(b.String()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 100 {
		t.Errorf("%d warnings for a file of unknown keys; want at most 100", len(warnings))
	}
}

// TestHostileNumberTooLarge: a cidrLimit too large for an int is a whole number that is too large, not "a
// non-integer number".
//
// It failed before RELIABILITY.md's finding 6: YAML resolves 99999999999999999999999999 to !!float, so
// cidrLimit said "must be a whole number, not a non-integer number". A !!float of digits alone is now "number
// is too large", as an overflowing !!int.
func TestHostileNumberTooLarge(t *testing.T) {
	_, _, err := Parse(file, []byte("cidrLimit: 99999999999999999999999999\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("got %v, want an error saying the number is too large", err)
	}
}
