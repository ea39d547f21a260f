//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// The Cilium-on-TKE ConfigMap: the config of the status tests.
const toolsCiliumTKE = "nonMasqueradeCIDRs:\n  - 10.0.0.0/16\n  - 172.18.0.0/16\n  - 192.168.0.0/17\nmasqLinkLocal: true\n"

// toolsStatus runs `masqd status` in the lab's node and returns its result.
func toolsStatus(t *testing.T, lab *Lab, args ...string) result {
	t.Helper()
	return runMasqd(t, lab.Node, append([]string{"status"}, args...)...)
}

// wantStatus fails the test unless r exited with code and its stdout holds every one of want.
func wantStatus(t *testing.T, what string, r result, code int, want ...string) {
	t.Helper()
	ok := r.code == code
	for _, w := range want {
		ok = ok && strings.Contains(r.stdout, w)
	}
	if !ok {
		t.Errorf("%s: masqd status exit %d, want %d and %q\nstdout:\n%s\nstderr:\n%s", what, r.code, code, want, r.stdout, r.stderr)
	}
}

// TestToolsStatus: masqd status against a real kernel, applied with masqd --once, then tampered with by nft.
func TestToolsStatus(t *testing.T) {
	testenv.RequireKernel(t)
	testenv.RequireCommand(t, "setpriv", "util-linux") // for status without CAP_NET_ADMIN
	lab := newLab(t, labOptions{})
	path := writeConfig(t, toolsCiliumTKE)
	cfgFlag := "--config=" + path
	mustMasqd(t, lab.Node, cfgFlag, "--once")

	// Nothing answers on the agent's default address in the lab: status says so and still decides.
	wantStatus(t, "applied", toolsStatus(t, lab, cfgFlag), 0, "masqd status: match", "IPv4:     3 intervals in the config, 3 intervals in the kernel: match",
		"agent:    nothing answers on 127.0.0.1:9745")
	assertSource(t, lab, "tcp", lab.Internet, lab.NodeIP)
	r := toolsStatus(t, lab, cfgFlag, "--http-address=")
	wantStatus(t, "after traffic", r, 0)
	if !regexp.MustCompile(`counters: IPv4 [1-9]\d* packets, [1-9]\d* bytes masqueraded`).MatchString(r.stdout) {
		t.Errorf("counters after a masqueraded connection:\n%s", r.stdout)
	}

	// Tampered: an element deleted, one added, a rule of someone else's.
	lab.Node.Run(t, "nft", "delete element inet masqd nonmasq4 { 172.18.0.0/16 }")
	lab.Node.Run(t, "nft", "add element inet masqd nonmasq4 { 8.8.8.8 }")
	lab.Node.Run(t, "nft", "add rule inet masqd postrouting counter")
	wantStatus(t, "tampered", toolsStatus(t, lab, cfgFlag, "--http-address="), 1, "masqd status: MISMATCH",
		"only in the config: 172.18.0.0/16", "only in the kernel: 8.8.8.8",
		"so the kernel masquerades, where the config keeps the pod source: 172.18.0.0/16", "foreign:  rule 1 (handle")
	r = toolsStatus(t, lab, cfgFlag, "--http-address=", "--output=json")
	var report struct {
		Result   string
		Families []struct {
			Family                     string
			OnlyInConfig, OnlyInKernel []string
		}
		Kernel struct{ Foreign []string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("status --output=json: %v\n%s", err, r.stdout)
	}
	if r.code != 1 || report.Result != "mismatch" || len(report.Families) == 0 ||
		strings.Join(report.Families[0].OnlyInConfig, ",") != "172.18.0.0/16" ||
		strings.Join(report.Families[0].OnlyInKernel, ",") != "8.8.8.8" || len(report.Kernel.Foreign) != 1 {
		t.Errorf("status --output=json when tampered: exit %d, %+v", r.code, report)
	}

	// The GKE SNAT notes' "only the MASQUERADE rule": the set emptied.
	mustMasqd(t, lab.Node, cfgFlag, "--once")
	wantStatus(t, "repaired by --once", toolsStatus(t, lab, cfgFlag, "--http-address="), 0, "match")
	lab.Node.Run(t, "nft", "flush set inet masqd nonmasq4")
	wantStatus(t, "set flushed", toolsStatus(t, lab, cfgFlag, "--http-address="), 1,
		"holds none of the config's non-masquerade ranges", "the config is not applied")

	// Another --config than the one applied; then flags the agent did not use.
	mustMasqd(t, lab.Node, cfgFlag, "--once")
	other := writeConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\n")
	wantStatus(t, "other config", toolsStatus(t, lab, "--config="+other, "--http-address="), 1, "only in the kernel: 10.0.0.0/16")
	wantStatus(t, "other flags", toolsStatus(t, lab, cfgFlag, "--http-address=", "--random-fully=false"), 1,
		"this command assumed --random-fully=false")

	// Cannot tell: an invalid config, or no CAP_NET_ADMIN.
	bad := writeConfig(t, "nonMasqueradeCIDRs: [10.0.0.1/8]\n")
	wantStatus(t, "invalid config", toolsStatus(t, lab, "--config="+bad, "--http-address="), 2, "INVALID", "write 10.0.0.0/8")
	cmd := exec.Command("ip", "netns", "exec", lab.Node.Name, "setpriv", "--bounding-set=-all", "--inh-caps=-all",
		masqdBin, "status", cfgFlag, "--http-address=")
	out, err := cmd.Output()
	ee, _ := err.(*exec.ExitError)
	if ee == nil || ee.ExitCode() != 2 || !strings.Contains(string(out), "needs CAP_NET_ADMIN") {
		t.Errorf("status without CAP_NET_ADMIN: %v, want exit 2 and the privilege named\n%s", err, out)
	}

	// No table at all.
	mustMasqd(t, lab.Node, "--cleanup")
	wantStatus(t, "no table", toolsStatus(t, lab, cfgFlag, "--http-address="), 1, "kernel:   no table inet masqd", "masqd masquerades nothing")

	// With an agent on the default address: its readiness and last sync, and drift repaired at once.
	a := startAgent(t, lab.Node, 9745, cfgFlag)
	a.waitStatus("/readyz", 200)
	wantStatus(t, "agent", toolsStatus(t, lab, cfgFlag), 0, "agent:    127.0.0.1:9745 (masqd dev): ready; last successful sync ", "config valid")
	lab.Node.Run(t, "nft", "delete element inet masqd nonmasq4 { 172.18.0.0/16 }")
	waitFor(t, 5*time.Second, "the agent repairing the table, as status sees it", func() error {
		if r := toolsStatus(t, lab, cfgFlag); r.code != 0 {
			return fmt.Errorf("exit %d:\n%s", r.code, r.stdout)
		}
		return nil
	})
}

// toolsAddrRange is where random destinations are drawn from.
type toolsAddrRange struct {
	prefix netip.Prefix
	avoid  []netip.Prefix // parts of prefix the lab uses
}

// TestToolsExplainKernel: for 20 random destinations, `masqd explain --kernel` says what real packets do.
// Each destination is added to the outside namespace's lo (the node routes everything there), then a pod
// connects to it and the echo server there says which source it saw.
func TestToolsExplainKernel(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	// The private endpoint done masqd's way, with IPv6.
	path := writeConfig(t, `nonMasqueradeCIDRs:
  - 10.0.0.0/8
  - 172.16.0.0/12
  - 192.168.0.0/16
  - 100.64.0.0/10
  - 2001:db8:100::/48
masqueradeCIDRs:
  - 10.2.1.100/32
  - 10.7.0.0/16
  - 2001:db8:100:7::/64
`)
	flags := []string{"--config=" + path, "--enable-ipv6"}
	mustMasqd(t, lab.Node, append(flags, "--once")...)

	p := netip.MustParsePrefix
	ranges := []toolsAddrRange{
		{prefix: p("10.0.0.0/8"), avoid: []netip.Prefix{p("10.128.0.0/16"), p("10.244.0.0/16"), p("10.130.0.0/16"), p("10.2.1.0/24")}},
		{prefix: p("10.7.0.0/16")},
		{prefix: p("172.16.0.0/12")},
		{prefix: p("192.168.0.0/16")},
		{prefix: p("100.64.0.0/10")},
		{prefix: p("169.254.0.0/16"), avoid: []netip.Prefix{p("169.254.169.254/32")}},
		{prefix: p("32.0.0.0/3")}, // public
		{prefix: p("2001:db8:100::/48"), avoid: []netip.Prefix{p("2001:db8:100::/64")}},
		{prefix: p("2001:db8:100:7::/64")},
		{prefix: p("2001:db8:f000::/36")}, // outside every range
	}
	seed := rand.Uint64()
	t.Logf("random seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	seen := map[netip.Addr]bool{}
	var dsts []netip.Addr
	for len(dsts) < 20 {
		rg := ranges[len(dsts)%len(ranges)]
		a := toolsRandomAddr(r, rg.prefix)
		avoided := false
		for _, av := range rg.avoid {
			avoided = avoided || av.Contains(a)
		}
		if avoided || seen[a] || !toolsUsable(a) {
			continue
		}
		seen[a] = true
		dsts = append(dsts, a)
	}
	for _, a := range dsts {
		args := []string{"ip", "addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo"}
		if a.Is6() {
			args = append(args, "nodad")
		}
		lab.Outside.Run(t, args...)
	}

	explain := func(extra ...string) ([]toolsExplained, result) {
		t.Helper()
		args := append(append([]string{"explain", "--kernel", "--output=json"}, flags...), extra...)
		for _, a := range dsts {
			args = append(args, a.String())
		}
		res := runMasqd(t, lab.Node, args...)
		var out struct{ Addresses []toolsExplained }
		if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || len(out.Addresses) != len(dsts) {
			t.Fatalf("masqd explain --kernel: exit %d, %v\nstdout:\n%s\nstderr:\n%s", res.code, err, res.stdout, res.stderr)
		}
		return out.Addresses, res
	}
	// packetsAgree sends TCP and UDP to each destination and checks the source seen against the kernel's
	// verdict as explain gives it.
	packetsAgree := func(got []toolsExplained) {
		t.Helper()
		for i, a := range dsts {
			e := got[i]
			if e.Address != a.String() || e.KernelVerdict == nil {
				t.Fatalf("explain answered %+v for %s", e, a)
			}
			want := lab.PodIP
			if a.Is6() {
				want = lab.PodIP6
			}
			if e.KernelVerdict.Masquerade {
				want = lab.NodeIP
				if a.Is6() {
					want = lab.NodeIP6
				}
			}
			for _, proto := range []string{"tcp", "udp"} {
				assertSource(t, lab, proto, a, want)
			}
		}
	}

	got, res := explain()
	if res.code != 0 {
		t.Errorf("explain --kernel right after --once: exit %d, want 0 (the kernel holds the config)\n%s", res.code, res.stdout)
	}
	kinds := map[bool]int{}
	for i, e := range got {
		kinds[e.Masquerade]++
		if !e.KernelVerdict.Agrees || e.KernelVerdict.Masquerade != e.Masquerade {
			t.Errorf("%s: config says masquerade %t, kernel %t", dsts[i], e.Masquerade, e.KernelVerdict.Masquerade)
		}
	}
	if kinds[true] == 0 || kinds[false] == 0 {
		t.Errorf("the destinations are all masqueraded or all kept (%v): the ranges do not cover both", kinds)
	}
	packetsAgree(got)

	// The text says the same, one line per destination, in order.
	text := runMasqd(t, lab.Node, append(append([]string{"explain", "--kernel"}, flags...), toolsStrings(dsts)...)...)
	lines := strings.Split(strings.TrimSpace(text.stdout), "\n")
	if text.code != 0 || len(lines) != len(dsts)+1 {
		t.Fatalf("explain --kernel text: exit %d\n%s", text.code, text.stdout)
	}
	for i, a := range dsts {
		masq := strings.HasPrefix(lines[i], a.String()+": masqueraded")
		if !strings.HasPrefix(lines[i], a.String()+": ") || masq != got[i].Masquerade {
			t.Errorf("text line %q for %s, JSON says masquerade %t", lines[i], a, got[i].Masquerade)
		}
	}

	// The kernel no longer holds the config: explain --kernel follows the kernel, says where it disagrees,
	// and packets follow the kernel too.
	lab.Node.Run(t, "nft", "flush set inet masqd nonmasq4")
	got, res = explain()
	disagree := 0
	for i, e := range got {
		if !e.KernelVerdict.Agrees {
			disagree++
		}
		if dsts[i].Is4() && !e.KernelVerdict.Masquerade {
			t.Errorf("%s: kernel verdict kept with an empty set nonmasq4", dsts[i])
		}
	}
	if res.code != 1 || disagree == 0 {
		t.Errorf("explain --kernel with the set flushed: exit %d, %d disagreeing; want 1 and some", res.code, disagree)
	}
	packetsAgree(got)

	// Destinations local to the node are never masqueraded, whatever the ranges say.
	out := mustMasqd(t, lab.Node, append(append([]string{"explain", "--kernel"}, flags...), lab.NodeLocal.String(), lab.NodeIP6.String())...)
	for _, a := range []netip.Addr{lab.NodeLocal, lab.NodeIP6} {
		if !strings.Contains(out, a.String()+": local to this node: never masqueraded") {
			t.Errorf("explain %s in the node:\n%s", a, out)
		}
	}
	assertSource(t, lab, "tcp", lab.NodeLocal, lab.PodIP)
	assertSource(t, lab, "tcp", lab.NodeIP6, lab.PodIP6)
}

// toolsExplained is one destination of `masqd explain --output=json`.
type toolsExplained struct {
	Address       string
	Masquerade    bool
	KernelVerdict *struct {
		Masquerade bool
		Agrees     bool
	}
}

func toolsRandomAddr(r *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if r.IntN(2) == 1 {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// toolsUsable rules out addresses a host cannot take: the first and last of a /24 (network and broadcast
// habits), and IPv4 multicast or reserved space.
func toolsUsable(a netip.Addr) bool {
	if a.Is4() {
		last := a.As4()[3]
		return last != 0 && last != 255 && !a.IsMulticast()
	}
	return !a.IsMulticast()
}

func toolsStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}
