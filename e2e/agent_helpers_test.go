//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/nft"
	"github.com/masqd/masqd/status"
)

// agentProc is masqd running as an agent inside the lab's node namespace.
type agentProc struct {
	*daemon
	ns     *NS
	addr   string // HTTP address inside ns
	client *http.Client
	logMu  sync.Mutex
	logs   bytes.Buffer
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startAgent runs `masqd args...` in ns with an HTTP address of its own, and stops it (SIGTERM) when the
// test ends.
func startAgent(t testing.TB, ns *NS, port int, args ...string) *agentProc {
	t.Helper()
	return startAgentAs(t, ns, port, nil, masqdBin, append([]string{"--log-level=debug"}, args...)...)
}

// startAgentAs is startAgent with the masqd command bin wrapped by prefix (setpriv …), and without
// --log-level=debug.
func startAgentAs(t testing.TB, ns *NS, port int, prefix []string, bin string, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{ns: ns, addr: fmt.Sprintf("127.0.0.1:%d", port), client: nsHTTPClient(ns)}
	argv := append(slices.Clone(prefix), bin, "--http-address="+a.addr, "--log-format=json")
	a.daemon = runDaemon(t, ns, "masqd", lockedWriter{&a.logMu, &a.logs}, "its log is printed when the test fails", append(argv, args...)...)
	t.Cleanup(func() {
		a.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("masqd logs:\n%s", a.Logs())
		}
	})
	return a
}

func (a *agentProc) Logs() string {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	return a.logs.String()
}

// get returns the status code and body of an HTTP GET on the agent.
func (a *agentProc) get(path string) (int, string, error) {
	resp, err := a.client.Get("http://" + a.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitStatus polls path until it answers code.
func (a *agentProc) waitStatus(path string, code int) {
	a.t.Helper()
	waitFor(a.t, 10*time.Second, fmt.Sprintf("GET %s answers %d", path, code), func() error {
		got, body, err := a.get(path)
		if err != nil {
			return err
		}
		if got != code {
			return fmt.Errorf("%d %s", got, strings.TrimSpace(body))
		}
		return nil
	})
}

// metric returns the value of the sample whose name and labels are exactly sample, e.g.
// `masqd_config_valid` or `masqd_sync_total{result="success"}` (labels in name order, as exposed).
func (a *agentProc) metric(sample string) float64 {
	a.t.Helper()
	for _, f := range a.families() {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := f.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			if name != sample {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Untyped != nil:
				return m.Untyped.GetValue()
			}
			a.t.Fatalf("metric %s is a %s, not a single value", sample, f.GetType())
		}
	}
	a.t.Fatalf("metric %s not found in /metrics", sample)
	return 0
}

// labels returns the labels of the one sample of name (an info metric such as masqd_build_info), failing the
// test unless there is exactly one.
func (a *agentProc) labels(name string) map[string]string {
	a.t.Helper()
	samples := a.families()[name].GetMetric()
	if len(samples) != 1 {
		a.t.Fatalf("%s: %d samples, want 1", name, len(samples))
	}
	labels := map[string]string{}
	for _, l := range samples[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	return labels
}

// families returns the agent's /metrics, parsed, by metric name.
func (a *agentProc) families() status.Metrics {
	a.t.Helper()
	code, body, err := a.get("/metrics")
	if err != nil || code != http.StatusOK {
		a.t.Fatalf("GET /metrics: %d %v", code, err)
	}
	fams, err := status.ParseMetrics([]byte(body))
	if err != nil {
		a.t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// commits follows nftables commits in ns and sends every commit that touches masqd's table. It returns once
// the subscription is live (it has seen a probe commit of its own in an unrelated table).
func commits(t testing.TB, ns *NS) <-chan nft.Commit {
	t.Helper()
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan nft.Commit, 1024)
	live := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = nft.NewConn(int(f.Fd())).Monitor(ctx, func(c nft.Commit) {
			select {
			case <-live:
			default:
				close(live) // the first commit seen: the subscription works
			}
			if c.Touched {
				ch <- c
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done; f.Close() })
	waitFor(t, 5*time.Second, "nftables monitor subscribed", func() error {
		ns.Run(t, "nft", "add table ip masqd-probe; delete table ip masqd-probe")
		select {
		case <-live:
			return nil
		default:
			return fmt.Errorf("no commit seen yet")
		}
	})
	return ch
}

// nextCommit waits for the next commit touching masqd's table, by a process other than the monitor.
func nextCommit(t testing.TB, ch <-chan nft.Commit, what string) nft.Commit {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no commit to table inet masqd within 10s", what)
	}
	return nft.Commit{}
}

func mustWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
