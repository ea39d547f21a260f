//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// TestAgentFreshNodeInvalidConfig: the real binary, on a node where masqd has never run, with an invalid
// config. It applies nothing and says what is true: the log says "nothing applied" with the error (which
// names the aligned prefix to write), never "keeping the rules in force"; /readyz answers 503 with the
// same; masqd_config_state{state="invalid_nothing_applied"} is 1; there is no table inet masqd, and a pod's
// packets leave with their own address. Once the file is fixed, the config is applied and packets to the
// internet are masqueraded while those to the VPC keep the pod's address.
func TestAgentFreshNodeInvalidConfig(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	mustWrite(t, path, "nonMasqueradeCIDRs: [10.0.0.1/8]\n")
	ch := commits(t, lab.Node)
	a := startAgent(t, lab.Node, 9745, "--config="+path)

	waitFor(t, 10*time.Second, "the invalid config read", func() error {
		if _, _, err := a.get("/metrics"); err != nil {
			return err
		}
		if v := a.metric(`masqd_config_state{state="invalid_nothing_applied"}`); v != 1 {
			return fmt.Errorf("masqd_config_state{state=\"invalid_nothing_applied\"} = %v", v)
		}
		return nil
	})
	if v := a.metric("masqd_config_valid"); v != 0 {
		t.Errorf("masqd_config_valid = %v, want 0", v)
	}
	logs := a.Logs()
	for _, want := range []string{"invalid config; nothing applied", path, "10.0.0.1/8", "10.0.0.0/8"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	if strings.Contains(logs, "keeping the rules in force") {
		t.Errorf("the log says it keeps rules in force, and there are none")
	}
	code, body, err := a.get("/readyz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "nothing applied") || !strings.Contains(body, "10.0.0.0/8") {
		t.Errorf("/readyz = %d %q %v, want 503 saying nothing is applied, with the error", code, body, err)
	}
	if code, body, err := a.get("/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz = %d %q %v, want 200: the loop is alive", code, body, err)
	}
	if out, err := lab.Node.RunErr("nft", "list", "table", "inet", "masqd"); err == nil {
		t.Fatalf("a table exists though the config was never valid:\n%s", out)
	}
	st := runMasqd(t, lab.Node, "status", "--config="+path, "--http-address=127.0.0.1:9745")
	if !strings.Contains(st.stdout, "nothing applied") {
		t.Errorf("masqd status does not say nothing is applied:\n%s", st.stdout)
	}
	assertSource(t, lab, "tcp", lab.Internet, lab.PodIP) // nothing masquerades

	mustWrite(t, path, cfgVPCOnly)
	nextCommit(t, ch, "fixed config")
	a.waitStatus("/readyz", http.StatusOK)
	if v := a.metric(`masqd_config_state{state="valid"}`); v != 1 {
		t.Errorf(`masqd_config_state{state="valid"} = %v, want 1`, v)
	}
	assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP)
	assertSource(t, lab, "udp", lab.Internet, lab.NodeIP)
	assertSource(t, lab, "tcp", lab.VPC, lab.PodIP)
}

// TestAgentConfigPathAbsent: a mistyped --config runs the built-in defaults, as ip-masq-agent does, and says
// so: one warning naming the path (not one per reload), masqd_config_state{state="defaults_file_absent"},
// and `masqd status` shows "defaults: file absent". Packets are masqueraded as the defaults say.
func TestAgentConfigPathAbsent(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	path := filepath.Join(t.TempDir(), "ip-masq-agnet") // mistyped
	a := startAgent(t, lab.Node, 9745, "--config="+path)
	a.waitStatus("/readyz", http.StatusOK)
	for range 3 {
		reloads := a.metric("masqd_config_reloads_total")
		if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the reload after SIGHUP", func() error {
			if a.metric("masqd_config_reloads_total") <= reloads {
				return fmt.Errorf("not reloaded yet")
			}
			return nil
		})
	}
	if n := strings.Count(a.Logs(), "no config file at --config"); n != 1 {
		t.Errorf("the absent file was warned about %d times, want once", n)
	}
	if !strings.Contains(a.Logs(), path) {
		t.Errorf("the log does not name %s", path)
	}
	if n := strings.Count(a.Logs(), "SIGHUP: reloading"); n != 3 {
		t.Errorf("%d SIGHUPs logged, want 3", n)
	}
	if v := a.metric(`masqd_config_state{state="defaults_file_absent"}`); v != 1 {
		t.Errorf(`masqd_config_state{state="defaults_file_absent"} = %v, want 1`, v)
	}
	st := runMasqd(t, lab.Node, "status", "--config="+path, "--http-address=127.0.0.1:9745")
	if st.code != 0 || !strings.Contains(st.stdout, "defaults: file absent") {
		t.Errorf("masqd status: exit %d, want 0 and \"defaults: file absent\":\n%s%s", st.code, st.stdout, st.stderr)
	}
	assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP)
	assertSource(t, lab, "tcp", lab.VPC, lab.PodIP)
}
