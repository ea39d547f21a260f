package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// fakeKernel is a Backend over ruleset.Fake, the kernel as data (nft's TestConnEndsWhereFakeDoes shows
// that nft.Conn ends where the Fake does). It is a Watcher: tamper changes the table as another process
// would, and reports the drift as the nftables monitor does.
type fakeKernel struct {
	mu    sync.Mutex
	fake  ruleset.Fake
	drift func(Drift) // set by Watch
}

func (k *fakeKernel) Name() string { return "fake" }

func (k *fakeKernel) Apply(d Desired) (ruleset.Change, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fake.Apply(d.Ruleset)
}

func (k *fakeKernel) Verify(d Desired) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if have, ok := k.fake.Read(); !ok || !have.SameRules(d.Ruleset) {
		return errNotHeld
	}
	return nil
}

func (k *fakeKernel) Present() (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.fake.Read()
	return ok, nil
}

func (k *fakeKernel) Forget()                                       {}
func (k *fakeKernel) Counters() (v4, v6 ruleset.Counter, err error) { return v4, v6, nil }
func (k *fakeKernel) Delete() error                                 { return nil }

func (k *fakeKernel) Watch(ctx context.Context, drift func(Drift)) error {
	k.mu.Lock()
	k.drift = drift
	k.mu.Unlock()
	<-ctx.Done()
	return nil
}

// tamper applies ops as another process's transaction and, once the agent watches, reports it.
func (k *fakeKernel) tamper(t *testing.T, ops ...ruleset.Op) {
	t.Helper()
	k.mu.Lock()
	err := k.fake.Tamper(ops...)
	drift := k.drift
	k.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if drift == nil {
		t.Fatal("the agent does not watch the kernel")
	}
	drift(Drift{Process: "nft", PID: 1})
}

func (k *fakeKernel) watching() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.drift != nil
}

func (k *fakeKernel) dump() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fake.Dump()
}

var errNotHeld = os.ErrNotExist // any error: Verify's only caller tests for nil

// TestLoopKeepsFakeKernel runs the agent's whole loop, without root, against the Fake: it applies the
// config file at start, follows an edit, keeps the last good ruleset through an invalid edit, and repairs
// another process's change as soon as the watch reports it. Every step is checked on the Fake's dump,
// the text `nft list table` prints.
func TestLoopKeepsFakeKernel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ip-masq-agent")
	opts := ruleset.Options{RandomFully: true}
	rendered := func(text string) string {
		t.Helper()
		cfg, _, err := config.Parse(path, []byte(text), config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return ruleset.Compile(cfg, opts).String()
	}
	k := &fakeKernel{}
	waitFor := func(step, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for k.dump() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the Fake holds\n%s\nwant\n%s", step, k.dump(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	first := "nonMasqueradeCIDRs: [10.0.0.0/8]\n"
	replaceFile(t, path, first)
	metrics := NewMetrics(prometheus.NewRegistry(), k)
	a := New(Settings{
		ConfigPath: path,
		NFT:        opts,
		Backend:    k,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    metrics,
	})
	runAgent(t, a)

	waitFor("start", rendered(first))
	second := "nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\nmasqLinkLocal: true\n"
	replaceFile(t, path, second)
	waitFor("edit", rendered(second))

	replaceFile(t, path, "nonMasqueradeCIDRs: [10.0.0.0/33]\n")
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(metrics.ConfigValid) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the invalid edit was never read")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := k.dump(); got != rendered(second) {
		t.Fatalf("an invalid edit changed the kernel:\n%s", got)
	}

	for !k.watching() {
		if time.Now().After(deadline) {
			t.Fatal("the agent never watched the kernel")
		}
		time.Sleep(5 * time.Millisecond)
	}
	k.tamper(t, ruleset.Op{Kind: ruleset.FlushChain, Chain: ruleset.ChainName})
	waitFor("drift", rendered(second))
}
