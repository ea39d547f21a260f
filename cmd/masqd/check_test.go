package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// TestCheckGolden checks the scenarios' ConfigMaps and configs, and one file for each pitfall.
func TestCheckGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"check-user-guide", []string{"testdata/user-guide.config"}},
		{"check-private-endpoint-as-is", []string{"testdata/private-endpoint-as-is.yaml"}},
		{"check-private-endpoint-as-is-copied", []string{"testdata/private-endpoint-as-is-copied.yaml"}},
		{"check-private-endpoint-to-be", []string{"testdata/private-endpoint-to-be.yaml"}},
		{"check-private-endpoint-to-be-config", []string{"testdata/private-endpoint-to-be.config"}},
		{"check-private-endpoint-masqd", []string{"testdata/private-endpoint-masqd.config", "--random-fully=false"}},
		{"check-cilium-tke", []string{"testdata/cilium-tke-configmap.yaml"}},
		{"check-wrong-name-namespace", []string{"testdata/check/wrong-name-namespace.yaml"}},
		{"check-no-namespace", []string{"testdata/check/no-namespace.yaml"}},
		{"check-mapping", []string{"testdata/check/mapping.yaml"}},
		{"check-folded", []string{"testdata/check/folded.yaml"}},
		{"check-quoted", []string{"testdata/check/quoted.yaml"}},
		{"check-wrong-key", []string{"testdata/check/wrong-key.yaml"}},
		{"check-keys-under-data", []string{"testdata/check/keys-under-data.yaml"}},
		{"check-bad-indent-manifest", []string{"testdata/check/bad-indent-manifest.yaml"}},
		{"check-bad-indent-config", []string{"testdata/check/bad-indent-config.yaml"}},
		{"check-cidrs", []string{"testdata/check/cidrs.yaml"}},
		{"check-from-file", []string{"testdata/check/from-file.yaml"}},
		{"check-ipv6", []string{"testdata/check/ipv6.config"}},
		{"check-ipv6-enabled", []string{"--enable-ipv6", "testdata/check/ipv6.config"}},
		{"check-with-daemonset", []string{"testdata/check/with-daemonset.yaml", "--enable-ipv6"}},
		{"check-nbsp", []string{"testdata/check/nbsp.config"}},
		{"check-two-files", []string{"testdata/user-guide.config", "testdata/check/wrong-key.yaml"}},
		{"check-missing-file", []string{"testdata/no-such-file"}},
		// The pod ranges: the key's lines checked as the other lists, and --cluster-cidr added to what it does.
		{"check-cluster-cidrs", []string{"testdata/cluster-cidrs.config", "--cluster-cidr=172.31.0.0/16"}},
		{"check-cluster-cidrs-errors", []string{"testdata/check/cluster-cidrs.yaml"}},
		// flushConntrack: the rules are the same; check says what happens after a commit.
		{"check-flush-conntrack", []string{"testdata/flush-conntrack.config"}},
		// A node's pod ranges, offline: one forgotten, one half listed, one kept by clusterCIDRs, one by the flag.
		{"check-node-pod-cidrs", []string{"testdata/check/node-pod-cidrs.config", "--node-pod-cidr=10.246.0.0/24,10.244.1.0/24",
			"--node-pod-cidr=10.245.3.0/24", "--node-pod-cidr=172.31.9.0/24", "--cluster-cidr=172.31.0.0/16"}},
		{"check-node-pod-cidrs-kept", []string{"testdata/check/node-pod-cidrs.config", "--node-pod-cidr=10.245.3.0/24,10.0.7.0/24"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			checkGolden(t, tc.golden, "check", func(args []string, stdout, stderr io.Writer) int {
				return checkMain(args, strings.NewReader(""), stdout, stderr)
			}, tc.args...)
		})
	}
}

// TestScenarioConfigsMatchManifests: each .config in testdata is the text under config: | of its manifest, as
// the agent reads it (the manifest's lines after "config: |", less their indentation). Explain and status
// read the .config; check reads the manifest.
func TestScenarioConfigsMatchManifests(t *testing.T) {
	for manifest, cfg := range map[string]string{
		"private-endpoint-as-is.yaml": "private-endpoint-as-is.config",
		"private-endpoint-to-be.yaml": "private-endpoint-to-be.config",
		"cilium-tke-configmap.yaml":   "cilium-tke.config",
	} {
		m, err := os.ReadFile(filepath.Join("testdata", manifest))
		if err != nil {
			t.Fatal(err)
		}
		c, err := os.ReadFile(filepath.Join("testdata", cfg))
		if err != nil {
			t.Fatal(err)
		}
		_, block, ok := strings.Cut(string(m), "  config: |\n")
		if !ok {
			t.Fatalf("%s: no config: |", manifest)
		}
		var got []string
		for _, l := range strings.SplitAfter(block, "\n") {
			got = append(got, strings.TrimPrefix(l, "    "))
		}
		if strings.Join(got, "") != string(c) {
			t.Errorf("%s is not the config block of %s:\n%s\nwant\n%s", cfg, manifest, c, strings.Join(got, ""))
		}
	}
}

// TestCheckRun goes through run(); with no FILE, check reads --config.
func TestCheckRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "--config=testdata/cilium-tke-configmap.yaml"}, nil, &stdout, &stderr)
	if code != 0 || !strings.HasPrefix(stdout.String(), "testdata/cilium-tke-configmap.yaml: 0 errors, 0 warnings, 0 notes\n") ||
		!strings.Contains(stdout.String(), "elements = { 10.0.0.0/16, 172.18.0.0/16,") {
		t.Errorf("exit %d, stdout:\n%s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check", "--help"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Usage: masqd check") || stderr.Len() > 0 {
		t.Errorf("masqd check --help: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}

// TestCheckStdin: masqd check - reads the standard input and names it <stdin>; the same text as a file gives
// the same findings.
func TestCheckStdin(t *testing.T) {
	manifest, err := os.ReadFile("testdata/check/wrong-key.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var fromFile, fromStdin, stderr bytes.Buffer
	fileCode := run([]string{"check", "testdata/check/wrong-key.yaml"}, nil, &fromFile, &stderr)
	code := run([]string{"check", "-"}, bytes.NewReader(manifest), &fromStdin, &stderr)
	want := strings.ReplaceAll(fromFile.String(), "testdata/check/wrong-key.yaml", "<stdin>")
	if code != fileCode || fromStdin.String() != want || stderr.Len() > 0 {
		t.Errorf("masqd check -: exit %d (file: %d), stderr %q, stdout:\n%s\nwant\n%s", code, fileCode, stderr.String(), fromStdin.String(), want)
	}
	if !strings.HasPrefix(fromStdin.String(), "<stdin>:7: note: ") {
		t.Errorf("findings do not name <stdin>:\n%s", fromStdin.String())
	}
}

// TestCheckFuzzish: whatever the bytes, check does not panic, its summary counts its findings, and its
// verdict is config's own. Each input is checked as a file, and as the config of a well-formed ConfigMap
// manifest.
func TestCheckFuzzish(t *testing.T) {
	inputs := []string{"", "\n", "-", ":", "data", "data\n  x: 1", "kind: ConfigMap", "kind: ConfigMap\ndata:\n  config: |\n",
		"kind: ConfigMap\ndata: [1]", "kind: ConfigMap\ndata:\n  config: !!binary aGVsbG8=", "a: &x 1\nb: *x", "\t- x",
		"apiVersion: v1\n---\nkind: Pod", "– a", "x:# y", "config: |\n  a\n b\n", "\u00a0\u00a0x: 1",
		"nonMasqueradeCIDRs: [10.0.0.0/8]", "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.168.0.0/16\nmasqLinkLocal: true\n",
		"nonMasqueradeCIDRs: [10.0.0.1/8]", "nonMasqueradeCIDRs: []\nresyncInterval: 0s", "{}", "cidrLimit: 1\nnonMasqueradeCIDRs: [10.0.0.0/8, 11.0.0.0/8]",
		"resyncInterval: 30s\nmasqueradeCIDRs: [10.2.0.0/16]", "NonMasqueradeCIDRS: [172.16.0.0/12]", "unknownKey: 1", "nonMasqueradeCIDRs:\n  - \n"}
	for _, in := range inputs {
		checkVerdict(t, in, false)
		checkVerdict(t, configMapManifest(in), true)
	}
}

// configMapManifest is a well-formed ip-masq-agent ConfigMap whose config is cfg.
func configMapManifest(cfg string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ip-masq-agent\n  namespace: kube-system\ndata:\n  config: |\n")
	for line := range strings.Lines(cfg) {
		b.WriteString("    " + line)
	}
	return b.String()
}

// asAgentReads returns the config text the agent reads from the file in: in itself, or for a Kubernetes
// manifest the string under data.config. ok is false for a manifest that holds no such string.
func asAgentReads(in string) (text string, manifest, ok bool) {
	var doc map[string]any
	if yaml.Unmarshal([]byte(in), &doc) != nil {
		return in, false, true
	}
	_, api := doc["apiVersion"]
	_, kind := doc["kind"]
	if !api && !kind {
		return in, false, true
	}
	data, _ := doc["data"].(map[string]any)
	v, has := data["config"]
	switch v := v.(type) {
	case string:
		return v, true, true
	case nil:
		return "", true, has // config: with nothing after it is the empty file: the defaults
	}
	return "", true, false
}

// checkVerdict checks one file with check and compares the verdict with config.Parse's on the text the agent
// would read. When the file is a plain config, or wrapped (configMapManifest: a ConfigMap with the right
// kind, name and namespace), and check found no pasted-text mistake (config.Check's Repaired lines), check must accept exactly
// what config.Parse accepts.
func checkVerdict(t *testing.T, in string, wrapped bool) {
	t.Helper()
	res := config.Check([]byte(in), config.Options{})
	var b bytes.Buffer
	writeCheck(&b, res, "f", randomFully)
	out := b.String()
	errs := res.Count(config.SevError)
	summary := fmt.Sprintf("f: %s, %s, %s\n", plural(errs, "error"), plural(res.Count(config.SevWarning), "warning"), plural(res.Count(config.SevNote), "note"))
	if !strings.Contains(out, summary) {
		t.Errorf("%q: no summary %q:\n%s", in, summary, out)
	}
	text, manifest, ok := asAgentReads(in)
	if !ok {
		if errs == 0 {
			t.Errorf("%q: a manifest without a config string, and check found no error:\n%s", in, out)
		}
		return
	}
	cfg, _, perr := config.Parse("", []byte(text), config.Options{}) // as check parses it: no file name
	switch {
	case perr != nil && (errs == 0 || !strings.Contains(out, "Not applied as it is")):
		t.Errorf("%q: config.Parse says %v, but check found no error:\n%s", in, perr, out)
	case perr != nil:
	case errs == 0:
		want := ruleset.Compile(cfg, randomFully).String()
		if len(res.Configs) != 1 || !res.Configs[0].Equal(cfg) || !strings.Contains(out, want) {
			t.Errorf("%q: check accepted it, but not as config.Parse reads it (%+v):\n%s\nwant the ruleset\n%s", in, cfg, out, want)
		}
	case (wrapped || !manifest) && len(res.Repaired) == 0 && !strings.Contains(out, "is itself a Kubernetes manifest"):
		t.Errorf("%q: config.Parse accepts it, but check found %d errors:\n%s", in, errs, out)
	}
}

// TestCheckSNAT: check prints the snat rule and notes, for this machine, a snatTo address it does not have
// (the documentation address 192.0.2.99, on no real machine).
func TestCheckSNAT(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "testdata/snat-elsewhere.config"}, nil, &stdout, &stderr)
	out := stdout.String()
	if code != 0 || !strings.Contains(out, "snat ip to 192.0.2.99 random,fully-random") ||
		!strings.Contains(out, "testdata/snat-elsewhere.config: note: on this machine: snatTo 192.0.2.99 is not an address of this node") {
		t.Errorf("exit %d, stdout:\n%s\nstderr: %s", code, out, stderr.String())
	}
}
