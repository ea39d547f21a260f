//go:build linux

package e2e

import (
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// NS is the tests' network namespace (internal/testenv).
type NS = testenv.NS

// newNS creates a namespace for the test (testenv.NewNS).
func newNS(t testing.TB, role string) *NS { return testenv.NewNS(t, role) }

// waitFor polls cond until it returns nil, failing the test with cond's last error after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		case <-tick.C:
		}
	}
}
