//go:build linux

package e2e

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// applyConfig applies content with `masqd --once` in the lab's node and checks that the kernel's table is,
// byte for byte, what `masqd --dry-run` prints for the same config and flags.
func applyConfig(t *testing.T, lab *Lab, content string, flags ...string) {
	t.Helper()
	path := writeConfig(t, content)
	args := append([]string{"--config=" + path}, flags...)
	want := mustMasqd(t, nil, append(args, "--dry-run")...)
	mustMasqd(t, lab.Node, append(args, "--once")...)
	if got := zeroCounters(lab.Node.Run(t, "nft", "list", "table", "inet", "masqd")); got != want {
		t.Fatalf("nft list table inet masqd differs from --dry-run (counters aside):\n--- kernel\n%s\n--- dry-run\n%s", got, want)
	}
}

// zeroCounters sets every counter in nft's listing to zero: traffic moves them, the rules stay the same.
func zeroCounters(s string) string {
	return regexp.MustCompile(`counter packets \d+ bytes \d+`).ReplaceAllString(s, "counter packets 0 bytes 0")
}

type expect struct {
	dst, src netip.Addr
}

func checkSources(t *testing.T, lab *Lab, cases []expect) {
	t.Helper()
	for _, proto := range []string{"tcp", "udp"} {
		for _, c := range cases {
			assertSource(t, lab, proto, c.dst, c.src)
		}
	}
}

// TestDefaultConfig: no config file, as on a node where the ConfigMap was never created. The internet sees
// the node; the VPC, link-local and the node's own addresses see the pod.
func TestDefaultConfig(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	want := mustMasqd(t, nil, "--config=/nonexistent/ip-masq-agent", "--dry-run")
	mustMasqd(t, lab.Node, "--config=/nonexistent/ip-masq-agent", "--once")
	if got := lab.Node.Run(t, "nft", "list", "table", "inet", "masqd"); got != want {
		t.Fatalf("kernel differs from --dry-run:\n%s\nwant\n%s", got, want)
	}
	checkSources(t, lab, []expect{
		{lab.Internet, lab.NodeIP},
		{lab.VPC, lab.PodIP},
		{lab.Endpoint, lab.PodIP},
		{lab.Metadata, lab.PodIP},
		{lab.NodeIP, lab.PodIP},     // local: untouched
		{lab.NodeLocal, lab.PodIP},  // local, though outside every non-masquerade range
		{lab.Internet6, lab.PodIP6}, // no IPv6 rule without --enable-ipv6
	})
}

func TestIPv6(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	applyConfig(t, lab, "nonMasqueradeCIDRs: [10.0.0.0/8, 2001:db8:100::/48]\n", "--enable-ipv6")
	checkSources(t, lab, []expect{
		{lab.Internet, lab.NodeIP},
		{lab.VPC, lab.PodIP},
		{lab.Internet6, lab.NodeIP6},
		{lab.VPC6, lab.PodIP6},
		{lab.NodeLocal6, lab.PodIP6},
		{lab.NodeIP6, lab.PodIP6},
	})
	// The same file's enableIPv6 key does what the flag does.
	applyConfig(t, lab, "enableIPv6: true\nnonMasqueradeCIDRs: [2001:db8:100::/48]\n")
	checkSources(t, lab, []expect{
		{lab.Internet6, lab.NodeIP6},
		{lab.VPC6, lab.PodIP6},
		{lab.VPC, lab.NodeIP},
	})
}

func TestMasqLinkLocal(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	applyConfig(t, lab, "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqLinkLocal: true\n")
	checkSources(t, lab, []expect{
		{lab.Metadata, lab.NodeIP},
		{lab.VPC, lab.PodIP},
		{lab.Internet, lab.NodeIP},
	})
	// Empty list: everything but link-local is masqueraded.
	applyConfig(t, lab, "nonMasqueradeCIDRs: []\n")
	checkSources(t, lab, []expect{
		{lab.Metadata, lab.PodIP},
		{lab.VPC, lab.NodeIP},
		{lab.Endpoint, lab.NodeIP},
	})
}

// TestPrivateEndpoint: an on-prem endpoint inside 10.0.0.0/8 accepts only node addresses. With
// ip-masq-agent's config the pod cannot reach it; masqueradeCIDRs fixes that and keeps the rest of 10/8.
func TestPrivateEndpoint(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{Firewall: true})
	applyConfig(t, lab, "nonMasqueradeCIDRs: [10.0.0.0/8]\n")
	if _, err := sourceSeenTCP(lab.Pod, lab.Endpoint, lab.outsideEcho.tcp, 500*time.Millisecond); !isTimeout(err) {
		t.Fatalf("pod to the private endpoint without masqueradeCIDRs: %v, want a timeout (firewall drops pod IPs)", err)
	}
	applyConfig(t, lab, "nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.2.1.100/32]\n")
	checkSources(t, lab, []expect{
		{lab.Endpoint, lab.NodeIP},
		{lab.VPC, lab.PodIP},
		{lab.Internet, lab.NodeIP},
	})
}

// TestInvalidConfigChangesNothing: a bad file fails with the error on stderr, nothing on stdout, and the
// kernel as it was.
func TestInvalidConfigChangesNothing(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	applyConfig(t, lab, "nonMasqueradeCIDRs: [10.0.0.0/8]\n")
	before := lab.Node.Run(t, "nft", "list", "ruleset")
	path := writeConfig(t, "nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n")
	for _, mode := range []string{"--once", "--dry-run"} {
		r := runMasqd(t, lab.Node, "--config="+path, mode)
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, "10.0.0.0/8") {
			t.Errorf("masqd %s with a misaligned CIDR: exit %d, stdout %q, stderr %q; want non-zero, empty stdout, the file and the fix on stderr",
				mode, r.code, r.stdout, r.stderr)
		}
	}
	if after := lab.Node.Run(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("kernel changed:\n%s\nwas\n%s", after, before)
	}
	checkSources(t, lab, []expect{{lab.VPC, lab.PodIP}, {lab.Internet, lab.NodeIP}})
}

// TestCleanup: --cleanup removes masqd's table and nothing else; traffic is no longer masqueraded.
func TestCleanup(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	lab.Node.Run(t, "nft", "add table ip other")
	lab.Node.Run(t, "nft", "add chain ip other post { type nat hook postrouting priority 50; }")
	lab.Node.Run(t, "nft", "add rule ip other post ip daddr 192.0.2.1 counter")
	before := lab.Node.Run(t, "nft", "list", "ruleset")
	applyConfig(t, lab, "")
	assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP)
	mustMasqd(t, lab.Node, "--cleanup")
	if after := lab.Node.Run(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("ruleset after --cleanup:\n%s\nwant\n%s", after, before)
	}
	assertSource(t, lab, "tcp", lab.Internet, lab.PodIP)
	mustMasqd(t, lab.Node, "--cleanup") // nothing left to remove is not an error
}

// TestLargeConfigFile: a config file as large as a bare VM's can be (100,000 prefixes in one file of
// 1.7 MB, beyond a ConfigMap's 1 MiB) is applied whole: the VPC range listed last keeps the pod address,
// the internet sees the node, and the kernel holds what --dry-run prints. A file is not a ConfigMap;
// refusing it would leave a fresh node with no rules at all.
func TestLargeConfigFile(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	v4, _ := wholePathPrefixes(100_000, 0)
	content := wholePathFile(append(v4, netip.MustParsePrefix("10.130.0.0/24")), false, "60s", "")
	if len(content) <= 1<<20 {
		t.Fatalf("the file is only %d bytes", len(content))
	}
	applyConfig(t, lab, string(content))
	checkSources(t, lab, []expect{
		{lab.Internet, lab.NodeIP},
		{lab.VPC, lab.PodIP},
		{lab.Endpoint, lab.NodeIP}, // 10.2.1.100: not listed, and the file's list replaces the defaults
	})
}
