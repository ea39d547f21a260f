//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// TestSameVerdictEverywhere: the same bytes get the same verdict from every entry point: `masqd --dry-run`,
// `masqd --once`, `masqd explain`, `masqd check` and the running agent (masqd_config_valid after it reads
// the file). The cases are every input of testdata/hostile (refused), of testdata/accepted (accepted, with a
// warning where the form is odd), a plain config, and a whole ConfigMap manifest given as the config, which
// every entry point but check refuses (check reads manifests as manifests: that is what it is for).
func TestSameVerdictEverywhere(t *testing.T) {
	testenv.RequireKernel(t)
	type verdictCase struct {
		name     string
		data     []byte
		accepted bool
		manifest bool
	}
	var cases []verdictCase
	for _, dir := range []struct {
		path     string
		accepted bool
	}{{"testdata/hostile", false}, {"testdata/accepted", true}} {
		entries, err := os.ReadDir(dir.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tsv") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir.path, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, verdictCase{name: filepath.Base(dir.path) + "/" + e.Name(), data: data, accepted: dir.accepted})
		}
	}
	cases = append(cases,
		verdictCase{name: "plain config", data: []byte(cfgVPCOnly), accepted: true},
		verdictCase{name: "manifest as the config", manifest: true, data: []byte(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ip-masq-agent\n  namespace: kube-system\ndata:\n  config: |\n    nonMasqueradeCIDRs: [10.0.0.0/8]\n")})

	lab := newLab(t, labOptions{})
	agentPath := filepath.Join(t.TempDir(), "ip-masq-agent")
	mustWrite(t, agentPath, cfgVPCOnly)
	a := startAgent(t, lab.Node, 9745, "--config="+agentPath, "--log-level=info")
	a.waitStatus("/readyz", 200)
	reloads := func() float64 { return a.metric("masqd_config_reloads_total") }

	onceNS := newNS(t, "once")
	for _, c := range cases {
		path := writeConfig(t, string(c.data))
		verdicts := map[string]bool{}
		verdicts["--dry-run"] = runMasqd(t, nil, "--config="+path, "--dry-run").code == 0
		verdicts["--once"] = runMasqd(t, onceNS, "--config="+path, "--once").code == 0
		verdicts["explain"] = runMasqd(t, nil, "explain", "--config="+path, "10.0.0.1").code == 0
		if !c.manifest {
			verdicts["check"] = runMasqd(t, nil, "check", path).code == 0
		}
		r0 := reloads()
		replaceAtomically(t, agentPath, c.data)
		waitFor(t, 10*time.Second, c.name+" read by the agent", func() error {
			if reloads() <= r0 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		verdicts["agent"] = a.metric("masqd_config_valid") == 1
		for entry, ok := range verdicts {
			if ok != c.accepted {
				t.Errorf("%s: %s accepts it: %t, want %t (all: %v)", c.name, entry, ok, c.accepted, verdicts)
			}
		}
		restoreGood(t, a, c.name, func() { replaceAtomically(t, agentPath, []byte(cfgVPCOnly)) })
	}
	if len(cases) < 60 {
		t.Errorf("only %d cases", len(cases))
	}
}
