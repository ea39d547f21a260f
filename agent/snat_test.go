package agent

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
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

// TestFollowsInterfaceAddress: with snatToInterface, the agent compiles with the interface's address as
// resolved, falls back to masquerade while the interface has none (masqd_snat_interface_resolved 0), and
// follows a change the address watch reports, with no config change and no resync.
func TestFollowsInterfaceAddress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	text := "nonMasqueradeCIDRs: [10.0.0.0/8]\nsnatToInterface: up1\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse(path, []byte(text), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	current := ruleset.InterfaceAddrs{Name: "up1", V4: netip.MustParseAddr("198.51.100.2")}
	var changed func()
	watching := make(chan struct{})
	set := func(a ruleset.InterfaceAddrs) {
		mu.Lock()
		current = a
		mu.Unlock()
		changed()
	}
	rendered := func(a ruleset.InterfaceAddrs) string {
		return ruleset.Compile(cfg, ruleset.Options{RandomFully: true, Interface: a}).String()
	}
	k := &fakeKernel{}
	metrics := NewMetrics(prometheus.NewRegistry(), k)
	a := New(Settings{
		ConfigPath: path,
		NFT:        ruleset.Options{RandomFully: true},
		Backend:    k,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    metrics,
		ResolveInterface: func(name string) (ruleset.InterfaceAddrs, error) {
			mu.Lock()
			defer mu.Unlock()
			if name != "up1" {
				t.Errorf("resolved %q, want up1", name)
			}
			return current, nil
		},
		WatchAddresses: func(ctx context.Context, c func()) error {
			changed = c
			close(watching)
			<-ctx.Done()
			return nil
		},
	})
	runAgent(t, a)
	waitFor := func(step, want string, resolved float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for k.dump() != want || testutil.ToFloat64(metrics.SNATInterface.WithLabelValues("ipv4")) != resolved {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the Fake holds\n%s\nwant\n%s", step, k.dump(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := rendered(current)
	waitFor("start", first, 1)
	<-watching
	moved := ruleset.InterfaceAddrs{Name: "up1", V4: netip.MustParseAddr("198.51.100.3")}
	set(moved)
	waitFor("address changed", rendered(moved), 1)
	gone := ruleset.InterfaceAddrs{Name: "up1"}
	set(gone)
	waitFor("address removed", rendered(gone), 0)
	if first == rendered(moved) || rendered(moved) == rendered(gone) {
		t.Fatal("the three rulesets are not different: the test proves nothing")
	}
}
