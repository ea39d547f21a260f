package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// fakeBackend counts calls; Verify returns verifyErrs in turn, then nil. It is no Watcher.
type fakeBackend struct {
	mu         sync.Mutex
	applies    int
	verifies   int
	verifyErrs []error
	changes    []ruleset.Change // what Apply returns in turn, then Unchanged
}

func (f *fakeBackend) Name() string { return "fake" }
func (f *fakeBackend) Apply(Desired) (ruleset.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies++
	if len(f.changes) == 0 {
		return ruleset.Unchanged, nil
	}
	c := f.changes[0]
	f.changes = f.changes[1:]
	return c, nil
}

func (f *fakeBackend) Verify(Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verifies++
	if len(f.verifyErrs) == 0 {
		return nil
	}
	err := f.verifyErrs[0]
	f.verifyErrs = f.verifyErrs[1:]
	return err
}
func (f *fakeBackend) Present() (bool, error)                        { return false, nil }
func (f *fakeBackend) Forget()                                       {}
func (f *fakeBackend) Counters() (v4, v6 ruleset.Counter, err error) { return v4, v6, nil }
func (f *fakeBackend) Delete() error                                 { return nil }

func (f *fakeBackend) count(n *int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *n
}

// failingWatcher is a fakeBackend whose kernel watch fails at once with err, every time.
type failingWatcher struct {
	*fakeBackend
	err     error
	watches int
}

func (w *failingWatcher) Watch(context.Context, func(Drift)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watches++
	return w.err
}

func testAgent(t *testing.T, b Backend, reload chan os.Signal, migrate func() ([]string, error)) *Agent {
	t.Helper()
	return New(Settings{
		ConfigPath: filepath.Join(t.TempDir(), "ip-masq-agent"), // absent: the defaults
		NFT:        ruleset.Options{RandomFully: true},
		Backend:    b,
		Migrate:    migrate,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    NewMetrics(prometheus.NewRegistry(), b),
		Reload:     reload,
	})
}

// TestWatchNotPermitted: a kernel watch refused for want of privilege stops the agent with an error that
// names CAP_NET_ADMIN, instead of subscribing again forever.
func TestWatchNotPermitted(t *testing.T) {
	for _, cause := range []error{unix.EPERM, os.ErrPermission} {
		w := &failingWatcher{fakeBackend: &fakeBackend{}, err: fmt.Errorf("nftables monitor: join group: %w", cause)}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := testAgent(t, w, nil, nil).Run(ctx)
		expired := ctx.Err()
		cancel()
		switch {
		case expired != nil:
			t.Errorf("%v: the agent still ran after 10s", cause)
		case !errors.Is(err, cause) || !strings.Contains(fmt.Sprint(err), "CAP_NET_ADMIN"):
			t.Errorf("%v: Run returned %v, want the permission error and CAP_NET_ADMIN", cause, err)
		}
		if w.watches != 1 {
			t.Errorf("%v: %d watches, want 1", cause, w.watches)
		}
	}
}

// TestWatchFailureBacksOff: a kernel watch that keeps failing is retried with the apply retry's doubling
// delay (100 ms, 200 ms, 400 ms … capped at 30 s), not every 100 ms, and each retry's full compare is at most
// one apply. The agent's clock (Settings.After) records the delays instead of waiting them.
func TestWatchFailureBacksOff(t *testing.T) {
	w := &failingWatcher{fakeBackend: &fakeBackend{}, err: fmt.Errorf("nftables monitor: receive: %w", unix.ENOBUFS)}
	a := testAgent(t, w, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a bound on "never", not a clock
	defer cancel()
	var delays []time.Duration // appended by the watch goroutine only; read after Run returns
	const retries = 12
	a.s.After = func(d time.Duration) <-chan time.Time {
		delays = append(delays, d)
		if len(delays) == retries {
			cancel()
		}
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var want []time.Duration
	for d := firstRetry; len(want) < retries; d = min(2*d, maxRetry) {
		want = append(want, d)
	}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Errorf("delays before subscribing again: %v, want %v", delays, want)
	}
	if applies := w.count(&w.applies); applies > w.watches+1 {
		t.Errorf("%d applies for %d failed watches, want at most one each and the first", applies, w.watches)
	}
}

// TestMigrateAfterVerify: Migrate runs only once the kernel reads back as applied, and only once.
func TestMigrateAfterVerify(t *testing.T) {
	b := &fakeBackend{verifyErrs: []error{errors.New("reads back different")}}
	reload := make(chan os.Signal, 1)
	var mu sync.Mutex
	migrations := 0
	a := testAgent(t, b, reload, func() ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		migrations++
		return []string{"iptables-legacy nat IP-MASQ-AGENT"}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitApplies := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for b.count(&b.applies) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d applies after 5s, want %d", b.count(&b.applies), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitApplies(1)
	for n := 2; n <= 4; n++ {
		reload <- syscall.SIGHUP
		waitApplies(n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if migrations != 1 {
		t.Errorf("Migrate ran %d times, want once", migrations)
	}
	if v := b.count(&b.verifies); v != 2 {
		t.Errorf("Verify ran %d times, want 2 (a failure, then the success that allowed Migrate)", v)
	}
}

// suspectWatcher reports one Suspect drift (a commit that may have touched the rules) after the first
// apply, as a commit by another process would come, then waits.
type suspectWatcher struct{ *fakeBackend }

func (w *suspectWatcher) Watch(ctx context.Context, drift func(Drift)) error {
	if !waitUntil(ctx, func() bool { return w.count(&w.applies) > 0 }) {
		return nil
	}
	drift(Drift{Process: "iptables-nft-re", Suspect: true})
	<-ctx.Done()
	return nil
}

// waitUntil polls cond every millisecond until it holds (true) or ctx is done (false).
func waitUntil(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// TestSuspectCommit: a commit that may have touched the rules (iptables-nft) makes one full compare; it
// counts as a drift repair only when the compare changed something.
func TestSuspectCommit(t *testing.T) {
	for _, tc := range []struct {
		second  ruleset.Change // what the compare after the commit finds to do
		repairs float64
	}{{ruleset.Unchanged, 0}, {ruleset.Updated, 1}} {
		w := &suspectWatcher{&fakeBackend{changes: []ruleset.Change{ruleset.Rebuilt, tc.second}}}
		a := testAgent(t, w, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		compared := waitUntil(ctx, func() bool { return w.count(&w.applies) >= 2 && a.Ready() })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !compared {
			t.Fatalf("%v: %d applies after 5s, want 2 (the first, and the compare after the commit)", tc.second, w.count(&w.applies))
		}
		var m dto.Metric
		if err := a.s.Metrics.DriftRepairs.Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != tc.repairs {
			t.Errorf("compare found %v: masqd_drift_repairs_total = %v, want %v", tc.second, got, tc.repairs)
		}
	}
}
