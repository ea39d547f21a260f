package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// syncBuffer is a bytes.Buffer safe for the agent's goroutines and the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// get asks a's handler for path and returns the status and body.
func get(a *Agent, path string) (int, string) {
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// poll calls cond until it returns "" or 10 s pass (a bound on "never", not a timed assertion); then it
// fails with cond's last word.
func poll(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// replaceFile writes text to path as editors and the kubelet do: into a new file renamed over the old.
func replaceFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func runAgent(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func state(m *Metrics, s ConfigState) float64 {
	return testutil.ToFloat64(m.ConfigState.WithLabelValues(string(s)))
}

// TestInvalidConfigOnFreshNode: with an invalid config at start and no rules of masqd in the kernel, the
// agent applies nothing and says so: the log says "nothing applied" (never "keeping the rules in force")
// with the error, which names the file, the value and the fix; /readyz answers 503 with the same;
// masqd_config_state is invalid_nothing_applied. Once the file is fixed the config is applied. Where an
// earlier masqd left its table, the same invalid config keeps it, and says that.
func TestInvalidConfigOnFreshNode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		earlier bool // the kernel holds masqd's table from an earlier run
		want    ConfigState
		log     string // what the log must say
		notLog  string // and must not
		readyz  string
	}{
		{"fresh", false, StateInvalidNone, "invalid config; nothing applied", "keeping the rules in force",
			"not ready: nothing applied: the config is invalid, and masqd holds no rules on this node"},
		{"earlier table", true, StateInvalidKept, "invalid config; keeping the rules in force", "nothing applied",
			"not ready: config rejected; the rules in force stay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ip-masq-agent")
			if err := os.WriteFile(path, []byte("nonMasqueradeCIDRs: [10.0.0.1/8]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			k := &fakeKernel{}
			earlier := ruleset.Compile(config.Default(config.Options{}), ruleset.Options{})
			if tc.earlier {
				if _, err := k.fake.Apply(earlier); err != nil {
					t.Fatal(err)
				}
			}
			var logs syncBuffer
			reload := make(chan os.Signal, 1)
			m := NewMetrics(prometheus.NewRegistry(), k)
			a := New(Settings{ConfigPath: path, Backend: k, Metrics: m, Reload: reload,
				Log: slog.New(slog.NewTextHandler(&logs, nil))})
			runAgent(t, a)

			poll(t, "the invalid config read", func() string {
				if state(m, tc.want) != 1 {
					return "masqd_config_state{state=" + string(tc.want) + "} is not 1"
				}
				return ""
			})
			if v := testutil.ToFloat64(m.ConfigValid); v != 0 {
				t.Errorf("masqd_config_valid = %v, want 0", v)
			}
			for _, s := range ConfigStates() {
				if v := state(m, s); s != tc.want && v != 0 {
					t.Errorf("masqd_config_state{state=%s} = %v, want 0", s, v)
				}
			}
			// The config's error names the file, the value and the aligned prefix to write.
			for _, want := range []string{tc.log, path, "10.0.0.1/8", "10.0.0.0/8"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log does not say %q:\n%s", want, logs.String())
				}
			}
			if strings.Contains(logs.String(), tc.notLog) {
				t.Errorf("the log says %q, which is false here:\n%s", tc.notLog, logs.String())
			}
			code, body := get(a, "/readyz")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, tc.readyz) || !strings.Contains(body, "10.0.0.0/8") {
				t.Errorf("/readyz = %d %q, want 503 with %q and the error", code, body, tc.readyz)
			}
			wantDump := ""
			if tc.earlier {
				wantDump = earlier.String()
			}
			if got := k.dump(); got != wantDump {
				t.Errorf("the kernel holds\n%s\nwant\n%s", got, wantDump)
			}

			good := "nonMasqueradeCIDRs: [10.0.0.0/8]\n"
			if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
				t.Fatal(err)
			}
			reload <- syscall.SIGHUP // the file watch may not have started yet
			cfg, _, err := config.Parse(path, []byte(good), config.Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := ruleset.Compile(cfg, ruleset.Options{}).String()
			poll(t, "the fixed config applied", func() string {
				if got := k.dump(); got != want {
					return "the kernel holds\n" + got
				}
				if code, body := get(a, "/readyz"); code != http.StatusOK || body != "ok\n" {
					return "/readyz: " + body
				}
				return ""
			})
			if state(m, StateValid) != 1 || state(m, tc.want) != 0 {
				t.Errorf("masqd_config_state: valid %v, %s %v; want 1, 0", state(m, StateValid), tc.want, state(m, tc.want))
			}
		})
	}
}

// TestFileAbsentWarnsOnce: a --config path with nothing at it runs the defaults, says so once with the path
// (not at every resync), and says it again after a file came and went.
func TestFileAbsentWarnsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agnet") // mistyped
	k := &fakeKernel{}
	var logs syncBuffer
	reload := make(chan os.Signal, 1)
	m := NewMetrics(prometheus.NewRegistry(), k)
	a := New(Settings{ConfigPath: path, Backend: k, Metrics: m, Reload: reload,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	runAgent(t, a)
	const warning = "no config file at --config; running the built-in defaults"
	reloads := func(n float64) func() string {
		return func() string {
			if testutil.ToFloat64(m.ConfigReloads) < n {
				return "not reloaded yet"
			}
			return ""
		}
	}
	poll(t, "started", reloads(1))
	for n := 2.0; n <= 4; n++ {
		reload <- syscall.SIGHUP
		poll(t, "reloaded", reloads(n))
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("the warning was logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), path) {
		t.Errorf("the warning does not name %s:\n%s", path, logs.String())
	}
	if state(m, StateFileAbsent) != 1 {
		t.Errorf("masqd_config_state{state=defaults_file_absent} = %v, want 1", state(m, StateFileAbsent))
	}
	if n := strings.Count(logs.String(), "SIGHUP"); n != 3 {
		t.Errorf("%d SIGHUPs logged, want 3:\n%s", n, logs.String())
	}

	if err := os.WriteFile(path, []byte("nonMasqueradeCIDRs: [10.0.0.0/8]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll(t, "the file read", func() string {
		if state(m, StateValid) != 1 {
			return "masqd_config_state{state=valid} is not 1"
		}
		return ""
	})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	poll(t, "the file gone", func() string {
		if state(m, StateFileAbsent) != 1 {
			return "masqd_config_state{state=defaults_file_absent} is not 1"
		}
		return ""
	})
	if n := strings.Count(logs.String(), warning); n != 2 {
		t.Errorf("the warning was logged %d times after the file went again, want twice:\n%s", n, logs.String())
	}
}

// wedgedBackend is a fakeBackend whose Apply waits until release is closed, as an apply stuck in the kernel
// or behind a lock would.
type wedgedBackend struct {
	*fakeBackend
	entered chan struct{} // closed when the first Apply starts
	release chan struct{}
	once    sync.Once
}

func (w *wedgedBackend) Apply(d Desired) (ruleset.Change, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.fakeBackend.Apply(d)
}

// TestHealthzLoopAlive: /healthz answers 200 while the loop completes reconciles, and 503 saying the loop
// is wedged once it has completed nothing for 3 resync intervals (at least a minute); it recovers when the
// loop does. The agent's clock (Settings.Now) is moved by hand.
func TestHealthzLoopAlive(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	w := &wedgedBackend{fakeBackend: &fakeBackend{}, entered: make(chan struct{}), release: make(chan struct{})}
	a := testAgent(t, w, nil, nil)
	a.s.Now = clock
	a.heartbeat()
	runAgent(t, a)
	<-w.entered

	if code, body := get(a, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz just after start = %d %q, want 200", code, body)
	}
	window := livenessWindow(config.DefaultResyncInterval)
	advance(window - time.Second)
	if code, body := get(a, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz within %s = %d %q, want 200", window, code, body)
	}
	advance(2 * time.Second)
	if code, body := get(a, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "wedged") {
		t.Errorf("/healthz after %s of a wedged apply = %d %q, want 503 saying it is wedged", window+time.Second, code, body)
	}

	close(w.release)
	poll(t, "the loop alive again", func() string {
		if code, body := get(a, "/healthz"); code != http.StatusOK {
			return body
		}
		return ""
	})
}

// TestLivenessWindow: 3 resync intervals, never less than a minute.
func TestLivenessWindow(t *testing.T) {
	for resync, want := range map[time.Duration]time.Duration{
		time.Second:      time.Minute,
		20 * time.Second: time.Minute,
		time.Minute:      3 * time.Minute,
		time.Hour:        3 * time.Hour,
	} {
		if got := livenessWindow(resync); got != want {
			t.Errorf("livenessWindow(%s) = %s, want %s", resync, got, want)
		}
	}
}
