package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The oracle: ip-masq-agent's own reading of a config file, as in cmd/ip-masq-agent/ip-masq-agent.go of
// kubernetes-sigs/ip-masq-agent (syncConfig, MasqConfig.validate, validateCIDR, isIPv6CIDR): the bytes become
// JSON through k8s.io/apimachinery's yaml.ToJSON, encoding/json decodes that into a MasqConfig holding the
// defaults, and validate checks the result. Its types and decoder are used as they are; only validate, in
// package main upstream, is restated.

type upstreamConfig struct {
	NonMasqueradeCIDRs []string        `json:"nonMasqueradeCIDRs"`
	CidrLimit          int             `json:"cidrLimit"`
	MasqLinkLocal      bool            `json:"masqLinkLocal"`
	MasqLinkLocalIPv6  bool            `json:"masqLinkLocalIPv6"`
	ResyncInterval     metav1.Duration `json:"resyncInterval"`
}

func upstreamDefaults(allReserved bool) *upstreamConfig {
	nonMasq := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
	if allReserved {
		nonMasq = append(nonMasq, "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24",
			"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4")
	}
	return &upstreamConfig{NonMasqueradeCIDRs: nonMasq, CidrLimit: 64, ResyncInterval: metav1.Duration{Duration: 60 * time.Second}}
}

// upstreamParse is syncConfig for a file that exists.
func upstreamParse(data []byte, opts Options) (*upstreamConfig, error) {
	c := upstreamDefaults(opts.NoMasqAllReservedRanges)
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(js, c); err != nil {
		return nil, err
	}
	return c, c.validate(opts.EnableIPv6)
}

func (c *upstreamConfig) validate(enableIPv6 bool) error {
	if n := len(c.NonMasqueradeCIDRs); n > c.CidrLimit {
		return fmt.Errorf("the daemon can only accept up to %d CIDRs (excluding link-local), but got %d CIDRs (excluding link local)", c.CidrLimit, n)
	}
	for _, cidr := range c.NonMasqueradeCIDRs {
		ip, ipnet, err := net.ParseCIDR(cidr)
		if err != nil {
			return fmt.Errorf("CIDR %q could not be parsed, %v", cidr, err)
		}
		if !ip.Equal(ipnet.IP) {
			return fmt.Errorf("CIDR %q is not aligned to a CIDR block", cidr)
		}
		if ip, _, _ := net.ParseCIDR(cidr); !enableIPv6 && net.ParseIP(ip.String()).To4() == nil {
			return fmt.Errorf("ipv6 is not enabled, but ipv6 cidr %s provided", cidr)
		}
	}
	return nil
}

// intendedDifference says why masqd may read data differently from upstream, or "" when it must not. Each
// reason is a row of the table in docs/compatibility.md.
func intendedDifference(data []byte, masqdErr error) string {
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return ""
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(js, &top) != nil {
		return ""
	}
	for k := range top {
		for _, own := range []key{keyMasqueradeCIDRs, keyEnableIPv6, keyClusterCIDRs, keyMasqueradeSourceCIDRs,
			keyEgressInterfaces, keySNATTo, keySNATToInterface, keyFlushConntrack} {
			if strings.EqualFold(k, own.String()) {
				return "masqd's own keys (masqueradeCIDRs, enableIPv6, clusterCIDRs, masqueradeSourceCIDRs, egressInterfaces, snatTo, snatToInterface, flushConntrack), which upstream ignores"
			}
		}
	}
	var e *Error
	if errors.As(masqdErr, &e) {
		switch {
		case strings.Contains(e.Msg, "Kubernetes manifest"):
			return "a whole Kubernetes manifest is refused"
		case strings.Contains(e.Msg, "IPv4-mapped"):
			return "IPv4-mapped IPv6 prefixes are refused"
		}
	}
	return ""
}

// canonicalSet is a list of CIDRs as a sorted set of canonical prefixes.
func canonicalSet(cidrs []string) []string {
	var out []string
	for _, c := range cidrs {
		_, ipnet, err := net.ParseCIDR(c)
		if err != nil {
			panic(fmt.Sprintf("accepted CIDR %q does not parse: %v", c, err))
		}
		ones, _ := ipnet.Mask.Size()
		addr, _ := netip.AddrFromSlice(ipnet.IP)
		out = append(out, netip.PrefixFrom(addr.Unmap(), ones).String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// compareWithUpstream fails t when masqd's Parse and upstream's decoder disagree on data: one accepts and the
// other refuses, or both accept with a different effective configuration. It returns the intended difference
// that excused a disagreement, or "".
func compareWithUpstream(t *testing.T, data []byte, opts Options) string {
	t.Helper()
	cfg, _, err := Parse("f", data, opts)
	up, upErr := upstreamParse(data, opts)
	if reason := intendedDifference(data, err); reason != "" {
		return reason
	}
	switch {
	case err != nil && upErr == nil:
		t.Fatalf("masqd refuses what ip-masq-agent accepts\ninput: %q\nmasqd: %v", data, err)
	case err == nil && upErr != nil:
		t.Fatalf("masqd accepts what ip-masq-agent refuses\ninput: %q\nip-masq-agent: %v", data, upErr)
	case err != nil:
		return ""
	}
	var mine []string // the non-masquerade set: with clusterCIDRs (and --cluster-cidr), which upstream has not
	for _, c := range slices.Concat(cfg.NonMasqueradeCIDRs, cfg.ClusterCIDRs) {
		mine = append(mine, c.Prefix.String())
	}
	type effective struct {
		NonMasq                          []string
		CIDRLimit                        int
		MasqLinkLocal, MasqLinkLocalIPv6 bool
		Resync                           time.Duration
	}
	want := effective{canonicalSet(up.NonMasqueradeCIDRs), up.CidrLimit, up.MasqLinkLocal, up.MasqLinkLocalIPv6, up.ResyncInterval.Duration}
	if want.Resync <= 0 { // upstream spins; masqd keeps its default (a warning says so)
		want.Resync = DefaultResyncInterval
	}
	got := effective{canonicalSet(mine), cfg.CIDRLimit, cfg.MasqLinkLocal, cfg.MasqLinkLocalIPv6, cfg.ResyncInterval}
	if d := diff(want, got); d != "" {
		t.Fatalf("masqd reads the config differently from ip-masq-agent\ninput: %q\n(-ip-masq-agent +masqd):\n%s", data, d)
	}
	return ""
}

// upstreamCorpus is documents in every form the YAML and JSON decoders take: booleans of every spelling,
// anchors, aliases, merge keys, flow style, JSON, duplicate keys, case variants of keys, odd numbers and
// durations, null, comments, document markers, a byte order mark, tabs, CRLF.
func upstreamCorpus() []string {
	docs := []string{
		"", "\n", "# only a comment\n", "---\n", "...\n", "~\n", "null", "{}", "[]", "true", "42", "\"a string\"",
		"nonMasqueradeCIDRs: []\n", "nonMasqueradeCIDRs:\n", "nonMasqueradeCIDRs: ~\n", "nonMasqueradeCIDRs: null\n",
		"nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.168.0.0/16\n",
		"nonMasqueradeCIDRs:\n- 10.0.0.0/8\n- 192.168.0.0/16\n",
		"nonMasqueradeCIDRs: [10.0.0.0/8, \"172.16.0.0/12\", '192.168.0.0/16']\n",
		"nonMasqueradeCIDRs: [ 10.0.0.0/8 ,\n  172.16.0.0/12 ]\n",
		"nonMasqueradeCIDRs: 10.0.0.0/8\n",
		"nonMasqueradeCIDRs: {a: 10.0.0.0/8}\n",
		"nonMasqueradeCIDRs:\n  - 10.0.0.0/8 # pods\n  # services next\n  - 10.96.0.0/12\n",
		"nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n", "nonMasqueradeCIDRs:\n  - 10.0.0.0/08\n", "nonMasqueradeCIDRs:\n  - 10.0.0.0/33\n",
		"nonMasqueradeCIDRs:\n  - 10.0.0.0\n", "nonMasqueradeCIDRs:\n  - 010.0.0.0/8\n", "nonMasqueradeCIDRs:\n  - fd00::/8\n",
		"nonMasqueradeCIDRs:\n  - \"::/0\"\n", "nonMasqueradeCIDRs:\n  - ::/0\n", "nonMasqueradeCIDRs:\n  - fe80::1%eth0/64\n",
		"nonMasqueradeCIDRs:\n  - 0.0.0.0/0\n", "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 10.0.0.0/8\n",
		"nonMasqueradeCIDRs:\n  -\n", "nonMasqueradeCIDRs:\n  - ~\n  - 10.0.0.0/8\n", "nonMasqueradeCIDRs:\n  - 10\n",
		"nonMasqueradeCIDRs:\n  - true\n", "nonMasqueradeCIDRs:\n  - [10.0.0.0/8]\n", "nonMasqueradeCIDRs: [!!str 10.0.0.0/8]\n",
		"nonMasqueradeCIDRs: [!custom 10.0.0.0/8]\n", "nonMasqueradeCIDRs:\n  - !!binary MTAuMC4wLjAvOA==\n",
		"nonMasqueradeCIDRs:\n  - >-\n    10.0.0.0/8\n", "nonMasqueradeCIDRs:\n  - |\n    10.0.0.0/8\n",
		"nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n    172.16.0.0/12\n",
		"nonMasqueradeCIDRs: [10.0.0.0/8]\nnonMasqueradeCIDRs: [172.16.0.0/12]\n",
		"nonMasqueradeCIDRs: [10.0.0.0/8]\nNonMasqueradeCIDRs: [172.16.0.0/12]\n",
		"NONMASQUERADECIDRS: [10.0.0.0/8]\nnonmasqueradecidrs: [172.16.0.0/12]\n",
		"NonMasqueradeCIDRs: 5\nnonMasqueradeCIDRs: [10.0.0.0/8]\n",
		"nonMasqueradeCIDRS:\n  - 172.16.0.0/12\nmasqLinkLocal : false\nresyncInterval : 60s\n",
		"cidrLimit: 1\n", "cidrLimit: 0\nnonMasqueradeCIDRs: []\n", "cidrLimit: -1\nnonMasqueradeCIDRs: []\n",
		"cidrLimit: 010\n", "cidrLimit: 0o10\n", "cidrLimit: 0x10\n", "cidrLimit: 0b11\n", "cidrLimit: 1_000\n",
		"cidrLimit: 1e3\n", "cidrLimit: 64.0\n", "cidrLimit: 64.5\n", "cidrLimit: +64\n", "cidrLimit: \"64\"\n",
		"cidrLimit: ~\n", "cidrLimit:\n", "cidrLimit: 99999999999999999999\n", "cidrLimit: .inf\n", "cidrLimit: 1:30\n",
		"masqLinkLocal: resync\n", "resyncInterval: 30s\n", "resyncInterval: 1h2m3.5s\n", "resyncInterval: \"30s\"\n",
		"resyncInterval: 0s\n", "resyncInterval: -1s\n", "resyncInterval: 30\n", "resyncInterval: 1.5\n", "resyncInterval:\n",
		"resyncInterval: ~\n", "resyncInterval: soon\n", "resyncInterval: 2001-12-14\n", "resyncInterval: 1:30\n",
		"resyncInterval: [30s]\n", "resyncInterval: 30µs\n", "resyncInterval: 9999999999h\n",
		"foo: bar\n", "enable-ipv6: true\n", "apiVersion: v1\nkind: ConfigMap\ndata:\n  config: |\n    masqLinkLocal: true\n",
		"a: &x [10.0.0.0/8]\nnonMasqueradeCIDRs: *x\n", "nonMasqueradeCIDRs: &x [10.0.0.0/8]\nb: *x\n",
		"base: &b {masqLinkLocal: true, cidrLimit: 5}\n<<: *b\n", "<<: {masqLinkLocal: true}\nmasqLinkLocal: false\n",
		"<<: [{cidrLimit: 5}, {cidrLimit: 6}]\n", "? nonMasqueradeCIDRs\n: [10.0.0.0/8]\n", "? [a]\n: b\n",
		"nonMasqueradeCIDRs: [10.0.0.0/8]\n---\nmasqLinkLocal: true\n", "---\n---\nmasqLinkLocal: true\n",
		"masqLinkLocal: true\n...\ngarbage: [\n", "%YAML 1.1\n---\nmasqLinkLocal: true\n", "%YAML 1.2\n---\nmasqLinkLocal: y\n",
		"\ufeffmasqLinkLocal: true\n", "masqLinkLocal: true\r\ncidrLimit: 3\r\n", "nonMasqueradeCIDRs:\n\t- 10.0.0.0/8\n",
		"masqLinkLocal:\ttrue\n", "{\"masqLinkLocal\": true}", " {\"masqLinkLocal\": true}", "{masqLinkLocal: true}",
		"{\"masqLinkLocal\": true, \"masqLinkLocal\": false}", "{\"MasqLinkLocal\": true, \"masqLinkLocal\": false}",
		"{\"nonMasqueradeCIDRs\": [\"10.0.0.0/8\", null]}", "{\"nonMasqueradeCIDRs\": null}", "{\"cidrLimit\": 64.0}",
		"{\"nonMasqueradeCIDRs\": [\"10.0.0.0/8\"]} trailing", "{\"nonMasqueradeCIDRs\": [\"10.0.0.0/8\"]",
		"{\"masqLin\u212aLocal\": true}", "masqLin\u212aLocal: true\n", "{\"nonMasqueradeCIDRs\": [\"10.0.0.0/8\"], // c\n}",
		"nonMasqueradeCIDRs: [\"10.0.0.0/8\"\n", "nonMasqueradeCIDRs: [10.0.0.0/8]]\n", "cidrLimit: 3: 4\n", "- 10.0.0.0/8\n",
		"masqLinkLocal: *undefined\n", "a: &a [*a]\n", "masqLinkLocalIPv6: on\n", "MASQLINKLOCALIPV6: Y\n",
		"clusterCIDRs: [10.64.0.0/14]\n", "clusterCIDRs: [100.64.0.0/10, 10.0.0.0/8]\nnonMasqueradeCIDRs: [192.168.0.0/16]\n",
		"clusterCIDRS: [100.64.0.0/10]\n", "clusterCIDRs: 100.64.0.0/10\n", "cluster-cidr: 100.64.0.0/10\n",
	}
	for _, spelling := range []string{"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True",
		"TRUE", "tRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "1", "0", "~", "", "'true'", "\"yes\"", "[true]"} {
		docs = append(docs, "masqLinkLocal: "+spelling+"\n")
	}
	return docs
}

// TestUpstreamCompatibility: on every document of the corpus, on every example and test config of the
// repository, and on every hostile and accepted input, masqd's verdict and effective configuration are
// upstream's, except where docs/compatibility.md lists an intended difference.
func TestUpstreamCompatibility(t *testing.T) {
	docs := upstreamCorpus()
	for _, dir := range []string{"../e2e/testdata/hostile", "../e2e/testdata/accepted", "../cmd/masqd/testdata", "../cmd/masqd/testdata/check", "../deploy/systemd"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), ".tsv") && !strings.HasSuffix(e.Name(), ".md") && !strings.HasSuffix(e.Name(), ".service") {
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				docs = append(docs, string(data))
			}
		}
	}
	excused := map[string]int{}
	for _, opts := range []Options{{}, {EnableIPv6: true}, {NoMasqAllReservedRanges: true}} {
		for i, doc := range docs {
			t.Run(fmt.Sprintf("%+v/%d", opts, i), func(t *testing.T) {
				if reason := compareWithUpstream(t, []byte(doc), opts); reason != "" {
					excused[reason]++
				}
			})
		}
	}
	if len(docs) < 200 {
		t.Errorf("only %d documents compared", len(docs))
	}
	for reason, n := range excused {
		t.Logf("%d excused: %s", n, reason)
	}
}

func FuzzUpstream(f *testing.F) {
	for _, doc := range upstreamCorpus() {
		f.Add([]byte(doc), false, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, ipv6, allReserved bool) {
		compareWithUpstream(t, data, Options{EnableIPv6: ipv6, NoMasqAllReservedRanges: allReserved})
	})
}

// FuzzFastPath: whatever the fast reader takes, it reads as upstream's decoder does, warnings, errors and
// lines included.
func FuzzFastPath(f *testing.F) {
	for _, doc := range upstreamCorpus() {
		f.Add([]byte(doc))
	}
	f.Add([]byte("cidrLimit: 200000\nnonMasqueradeCIDRs:\n  - 11.0.0.0/25\n  - '11.0.1.0/25' # x\n  - \"fd00::/8\"\n\n# c\nmasqLinkLocal: false\nresyncInterval: 60s\n"))
	f.Add([]byte("masqueradeCIDRs:\n- 10.2.1.100/32\nenableIPv6: true\nmasqLinkLocalIPv6: true\nresyncInterval: 0s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, ok := readFast(string(data)); !ok {
			return
		}
		for _, opts := range []Options{{}, {EnableIPv6: true}} {
			fc, fw, ferr := parse("f", string(data), opts, true)
			sc, sw, serr := parse("f", string(data), opts, false)
			if d := diff(fmt.Sprint(serr), fmt.Sprint(ferr)); d != "" {
				t.Fatalf("input %q: errors differ (-full +fast):\n%s", data, d)
			}
			if d := diff(sc, fc); d != "" {
				t.Fatalf("input %q: configs differ (-full +fast):\n%s", data, d)
			}
			if d := diff(sw, fw); d != "" {
				t.Fatalf("input %q: warnings differ (-full +fast):\n%s", data, d)
			}
		}
	})
}

// TestUpstreamClusterCIDRsDiffer: a file with clusterCIDRs, or a --cluster-cidr flag, gives a non-masquerade
// set upstream has not (it ignores the key and has no such flag): the comparison sees the difference, and only
// the clusterCIDRs key excuses it, as docs/compatibility.md lists.
func TestUpstreamClusterCIDRsDiffer(t *testing.T) {
	data := []byte("clusterCIDRs: [100.64.0.0/10]\n")
	cfg, _, err := Parse("f", data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	up, err := upstreamParse(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(up.NonMasqueradeCIDRs, "100.64.0.0/10") || len(cfg.ClusterCIDRs) != 1 {
		t.Fatalf("upstream %v, masqd %v: want only masqd to keep 100.64.0.0/10", up.NonMasqueradeCIDRs, cfg.ClusterCIDRs)
	}
	if got := intendedDifference(data, nil); !strings.Contains(got, "clusterCIDRs") {
		t.Errorf("intendedDifference(%q) = %q, want masqd's own key clusterCIDRs", data, got)
	}
	// Without the key, the file is upstream's, and so is its meaning: --cluster-cidr is not in the file.
	if got := intendedDifference([]byte("nonMasqueradeCIDRs: [10.0.0.0/8]\n"), nil); got != "" {
		t.Errorf("a file without masqd's keys is excused: %q", got)
	}
}
