package agent

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// holdingKernel is the Fake as a Holder: what the kernel holds before the first apply.
type holdingKernel struct{ *fakeKernel }

func (k holdingKernel) Held() (ruleset.Ruleset, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r, ok := k.fake.Read()
	return r, ok, nil
}

// recordingFlusher records the flips it is asked to flush and answers with deleted and err.
type recordingFlusher struct {
	mu       sync.Mutex
	calls    []string // "v4 | v6"
	deleted4 int
	err      error
}

func (f *recordingFlusher) Flush(v4, v6 []ruleset.Interval) (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	text := func(s []ruleset.Interval) string {
		var p []string
		for _, iv := range s {
			p = append(p, iv.String())
		}
		return strings.Join(p, " ")
	}
	f.calls = append(f.calls, text(v4)+" | "+text(v6))
	return f.deleted4, 0, f.err
}

func (f *recordingFlusher) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// TestConntrackFlush runs the loop against the Fake with a recording Flusher: the first apply flushes
// what it flips against what an earlier masqd left in the kernel; every edit that flips destinations
// flushes exactly those, both ways; an edit that flips none, a repair and a resync flush nothing; a failed
// flush leaves the commit in force and is counted; the metric counts the deletions; with the key off
// nothing is flushed, and on a fresh node the first apply flushes nothing.
func TestConntrackFlush(t *testing.T) {
	const base = "nonMasqueradeCIDRs: [10.0.0.0/8]\n"
	type step struct {
		write  string   // the config file's new text ("" : tamper with the kernel instead)
		calls  []string // the Flusher's calls so far
		errNow error    // the Flusher's error from this step on
	}
	for _, tc := range []struct {
		name    string
		earlier string // the config an earlier masqd left in the kernel; "" none
		first   string
		steps   []step
		deleted float64 // masqd_conntrack_deleted_total{family="ipv4"} at the end
		errors  float64
	}{
		{
			name:    "flips since an earlier masqd, then edits",
			earlier: base,
			first:   "flushConntrack: true\nnonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24]\n",
			steps: []step{
				{calls: []string{"203.0.113.0/24 | "}},
				{write: "flushConntrack: true\nnonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n",
					calls: []string{"203.0.113.0/24 | ", "198.51.100.0/24 203.0.113.0/24 | "}},
				{write: "flushConntrack: true\nnonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\nresyncInterval: 30s\n",
					calls: []string{"203.0.113.0/24 | ", "198.51.100.0/24 203.0.113.0/24 | "}},
				{calls: []string{"203.0.113.0/24 | ", "198.51.100.0/24 203.0.113.0/24 | "}}, // a repair
				{write: "flushConntrack: true\nnonMasqueradeCIDRs: [10.0.0.0/8]\n", errNow: errors.New("ctnetlink: no"),
					calls: []string{"203.0.113.0/24 | ", "198.51.100.0/24 203.0.113.0/24 | ", "198.51.100.0/24 | "}},
			},
			deleted: 2 * 3, errors: 1,
		},
		{
			name:    "off",
			earlier: base,
			first:   "nonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24]\n",
			steps:   []step{{write: base}},
		},
		{
			name:    "fresh node",
			first:   "flushConntrack: true\nnonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24]\n",
			steps:   []step{{}, {write: "flushConntrack: true\n" + base, calls: []string{"203.0.113.0/24 | "}}},
			deleted: 2,
		},
		{
			name:    "turned on by an edit",
			earlier: base,
			first:   base,
			steps: []step{{write: "flushConntrack: true\nnonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24]\n",
				calls: []string{"203.0.113.0/24 | "}}},
			deleted: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ip-masq-agent")
			opts := ruleset.Options{RandomFully: true}
			rendered := func(text string) string {
				cfg, _, err := config.Parse(path, []byte(text), config.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return ruleset.Compile(cfg, opts).String()
			}
			k := &fakeKernel{}
			if tc.earlier != "" {
				cfg, _, err := config.Parse(path, []byte(tc.earlier), config.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := k.fake.Apply(ruleset.Compile(cfg, opts)); err != nil {
					t.Fatal(err)
				}
			}
			f := &recordingFlusher{deleted4: 2}
			replaceFile(t, path, tc.first)
			metrics := NewMetrics(prometheus.NewRegistry(), k)
			a := New(Settings{ConfigPath: path, NFT: opts, Backend: holdingKernel{k}, Conntrack: f,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics})
			runAgent(t, a)
			last := tc.first
			reloads := func() float64 { return testutil.ToFloat64(metrics.ConfigReloads) }
			wait := func(what string, cond func() bool) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for !cond() {
					if time.Now().After(deadline) {
						t.Fatalf("%s: not after 10s; the Fake holds\n%s", what, k.dump())
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			wait("first apply", func() bool { return k.dump() == rendered(tc.first) && a.Ready() })
			for i, s := range tc.steps {
				if s.errNow != nil {
					f.mu.Lock()
					f.err = s.errNow
					f.mu.Unlock()
				}
				before := reloads()
				switch {
				case i == 0 && s.write == "":
				case s.write != "":
					replaceFile(t, path, s.write)
					last = s.write
					wait("the edit", func() bool { return reloads() > before && k.dump() == rendered(last) })
				default:
					wait("the watch", k.watching)
					k.tamper(t, ruleset.Op{Kind: ruleset.FlushChain, Chain: ruleset.ChainName})
					wait("the repair", func() bool { return reloads() > before && k.dump() == rendered(last) })
				}
				// The flush follows the commit the waits above saw: wait for its call too.
				wait("the flushes", func() bool { return len(f.got()) >= len(s.calls) })
				if got := f.got(); strings.Join(got, "\n") != strings.Join(s.calls, "\n") {
					t.Fatalf("step %d: flushes %q, want %q", i, got, s.calls)
				}
			}
			// The metrics are counted once Flush has returned.
			wait("the flush metrics", func() bool {
				return testutil.ToFloat64(metrics.ConntrackFlushes.WithLabelValues("success"))+
					testutil.ToFloat64(metrics.ConntrackFlushes.WithLabelValues("error")) >= float64(len(f.got()))
			})
			if got := testutil.ToFloat64(metrics.ConntrackDeleted.WithLabelValues("ipv4")); got != tc.deleted {
				t.Errorf("masqd_conntrack_deleted_total{family=ipv4} = %v, want %v", got, tc.deleted)
			}
			if got := testutil.ToFloat64(metrics.ConntrackFlushes.WithLabelValues("error")); got != tc.errors {
				t.Errorf("masqd_conntrack_flushes_total{result=error} = %v, want %v", got, tc.errors)
			}
			wantOn := 0.0
			if strings.Contains(last, "flushConntrack: true") {
				wantOn = 1
			}
			if got := testutil.ToFloat64(metrics.ConntrackFlush); got != wantOn {
				t.Errorf("masqd_conntrack_flush_enabled = %v, want %v", got, wantOn)
			}
			if !a.Ready() {
				t.Error("not ready after the last step: a failed flush must leave the commit in force")
			}
		})
	}
}
