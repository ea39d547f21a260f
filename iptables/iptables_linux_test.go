package iptables

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/ruleset"
)

var variants = []string{VariantNFT, VariantLegacy}

var (
	cidrs   = testenv.CIDRs
	rfc1918 = cidrs("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)

// netns is an empty network namespace made for one test and removed after it.
type netns struct {
	*testenv.NS
	name string
}

func newNetns(t testing.TB) *netns {
	t.Helper()
	ns := testenv.NewNS(t, "ipt")
	return &netns{NS: ns, name: ns.Name}
}

// path is the namespace's pin file, for NewIPTables and GatherFacts.
func (n *netns) path() string { return n.Path() }

// run runs a command inside the namespace and returns its standard output; it fails the test, with the
// command's standard error, when the command fails.
func (n *netns) run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.runErr(nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (n *netns) runErr(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name}, args...)...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("in netns %s: %s: %w: %s", n.name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// restore feeds payload to a restore command in the namespace.
func (n *netns) restore(t testing.TB, bin, payload string) {
	t.Helper()
	if _, err := n.runErr([]byte(payload), bin, "--noflush", "-w", "5"); err != nil {
		t.Fatal(err)
	}
}

// dump is iptables-save output without its "#" comment lines (which carry the date).
func (n *netns) dump(t testing.TB, bin string, args ...string) string {
	t.Helper()
	var keep []string
	for _, line := range strings.SplitAfter(n.run(t, append([]string{bin}, args...)...), "\n") {
		if !strings.HasPrefix(line, "#") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

func requireIPTables(t testing.TB) {
	t.Helper()
	for _, v := range variants {
		for _, bin := range []string{"iptables-" + v, "iptables-" + v + "-save", "iptables-" + v + "-restore", "ip6tables-" + v + "-save"} {
			testenv.RequireCommand(t, bin, "iptables") // Debian's has both variants
		}
	}
}

func newIPTables(t testing.TB, n *netns, variant, chain string) *IPTables {
	t.Helper()
	requireIPTables(t)
	ipt, err := NewIPTables(variant, chain, n.path())
	if err != nil {
		t.Fatal(err)
	}
	return ipt
}

func mustApplyIPT(t testing.TB, ipt *IPTables, want IPTablesRules, change ruleset.Change) {
	t.Helper()
	got, err := ipt.Apply(want)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got != change {
		t.Fatalf("Apply: %s, want %s", got, change)
	}
}

func mustInSync(t testing.TB, ipt *IPTables, want IPTablesRules, in bool) {
	t.Helper()
	got, err := ipt.InSync(want)
	if err != nil {
		t.Fatal(err)
	}
	if got != in {
		s, _ := ipt.Read()
		t.Fatalf("InSync = %t, want %t; kernel: %+v", got, in, s)
	}
}

// TestIPTablesGoldenKernel applies each golden config with both variants in a fresh namespace and checks
// that `iptables-save -t nat` prints exactly the golden dump, that a second Apply sends nothing, and that
// nothing of the chain is in ip6tables without IPv6.
func TestIPTablesGoldenKernel(t *testing.T) {
	for _, tc := range iptablesGoldenCases {
		for _, v := range variants {
			t.Run(tc.name+"/"+v, func(t *testing.T) {
				n := newNetns(t)
				want := compileIPTablesGolden(t, tc.name, tc.opts, tc.ipt)
				ipt := newIPTables(t, n, v, want.Chain)
				mustApplyIPT(t, ipt, want, ruleset.Rebuilt)
				files := map[string]string{"iptables-" + v + "-save": tc.name + ".save"}
				if want.IPv6 {
					files["ip6tables-"+v+"-save"] = tc.name + ".save6"
				}
				for bin, file := range files {
					got := n.dump(t, bin, "-t", "nat")
					if *update && v == VariantNFT {
						if err := os.WriteFile(filepath.Join("testdata", "iptables", file), []byte(got), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					if w := readGolden(t, file); got != w {
						t.Errorf("%s -t nat, -want +got:\n%s", bin, lineDiff(w, got))
					}
				}
				if !want.IPv6 {
					if got := n.dump(t, "ip6tables-"+v+"-save"); strings.Contains(got, want.Chain) {
						t.Errorf("ip6tables holds %s without IPv6:\n%s", want.Chain, got)
					}
				}
				mustApplyIPT(t, ipt, want, ruleset.Unchanged)
				mustInSync(t, ipt, want, true)
			})
		}
	}
}

// foreignNat puts rules that are not masqd's in both families' nat and filter tables: a POSTROUTING
// rule, another chain and a jump to it, and a filter rule. It returns the dumps they make.
func foreignNat(t *testing.T, n *netns, v string) map[string]string {
	t.Helper()
	for _, f := range []struct{ bin, src string }{{"iptables-" + v, "10.244.0.0/16"}, {"ip6tables-" + v, "2001:db8:1::/64"}} {
		n.restore(t, f.bin+"-restore", fmt.Sprintf(`*nat
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s %s -o eth9 -j MASQUERADE
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
COMMIT
*filter
-A INPUT -s %s -j ACCEPT
COMMIT
`, f.src, f.src))
	}
	return dumps(t, n, v)
}

func dumps(t *testing.T, n *netns, v string) map[string]string {
	t.Helper()
	return map[string]string{
		"iptables-" + v + "-save":  n.dump(t, "iptables-"+v+"-save"),
		"ip6tables-" + v + "-save": n.dump(t, "ip6tables-"+v+"-save"),
	}
}

// TestIPTablesApplyChanges walks one chain through config changes and tampering, with other rules in the
// same tables, and checks that Apply repairs only its own chain and jump and that Delete leaves the
// tables as they were before masqd came.
func TestIPTablesApplyChanges(t *testing.T) {
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			n := newNetns(t)
			ipt := newIPTables(t, n, v, "")
			before := foreignNat(t, n, v)
			opts := IPTablesOptions{RandomFully: true, RandomFullySupported: true}
			def := CompileIPTables(config.Config{NonMasqueradeCIDRs: rfc1918}, opts)
			mustInSync(t, ipt, def, false)
			mustApplyIPT(t, ipt, def, ruleset.Rebuilt)
			mustApplyIPT(t, ipt, def, ruleset.Unchanged)

			more := CompileIPTables(config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "100.64.0.0/10")}, opts)
			mustApplyIPT(t, ipt, more, ruleset.Updated)
			mustInSync(t, ipt, more, true)

			bin := "iptables-" + v
			jump := append([]string{bin, "-w", "5", "-t", "nat"}, "-D", "POSTROUTING")
			n.run(t, append(jump, more.JumpSpec()...)...)
			mustInSync(t, ipt, more, false)
			mustApplyIPT(t, ipt, more, ruleset.Updated)
			mustInSync(t, ipt, more, true)

			// A second copy of the jump, and a jump with other matches (as an older agent wrote it).
			n.run(t, append([]string{bin, "-w", "5", "-t", "nat", "-A", "POSTROUTING"}, more.JumpSpec()...)...)
			n.run(t, bin, "-w", "5", "-t", "nat", "-I", "POSTROUTING", "1", "-j", more.Chain)
			mustInSync(t, ipt, more, false)
			mustApplyIPT(t, ipt, more, ruleset.Updated)
			mustInSync(t, ipt, more, true)

			n.run(t, bin, "-w", "5", "-t", "nat", "-I", more.Chain, "1", "-j", "RETURN")
			mustApplyIPT(t, ipt, more, ruleset.Updated)
			mustInSync(t, ipt, more, true)

			six := CompileIPTables(config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "100.64.0.0/10", "fd00::/8"), EnableIPv6: true}, opts)
			mustApplyIPT(t, ipt, six, ruleset.Rebuilt) // the IPv6 chain is new
			mustInSync(t, ipt, six, true)
			mustApplyIPT(t, ipt, more, ruleset.Updated) // IPv6 off: its chain and jump go
			mustInSync(t, ipt, more, true)
			if s, err := ipt.Read(); err != nil || s.V6.Chain || len(s.V6.Jumps) != 0 {
				t.Fatalf("IPv6 after turning it off: %+v, %v", s.V6, err)
			}

			if err := ipt.Delete(); err != nil {
				t.Fatal(err)
			}
			after := dumps(t, n, v)
			for bin, b := range before {
				if after[bin] != b {
					t.Errorf("%s after Delete, -before +after:\n%s", bin, lineDiff(b, after[bin]))
				}
			}
			if err := ipt.Delete(); err != nil {
				t.Fatalf("second Delete: %v", err)
			}
		})
	}
}

// TestIPTablesCounters sends a datagram from the namespace to an address that is masqueraded and checks
// that Counters sees it in the MASQUERADE rule, per family.
func TestIPTablesCounters(t *testing.T) {
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			n := newNetns(t)
			// A veth pair with both ends here: an interface with addresses to masquerade behind, whose
			// packets go nowhere.
			n.run(t, "ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1")
			n.run(t, "ip", "addr", "add", "10.99.0.1/24", "dev", "out0")
			n.run(t, "ip", "addr", "add", "2001:db8:99::1/64", "dev", "out0", "nodad")
			n.run(t, "ip", "link", "set", "out0", "up")
			n.run(t, "ip", "link", "set", "out1", "up")
			n.run(t, "ip", "route", "add", "198.51.100.0/24", "dev", "out0")
			n.run(t, "ip", "-6", "route", "add", "2001:db8:ff00::/64", "dev", "out0")
			ipt := newIPTables(t, n, v, "")
			want := CompileIPTables(config.Config{NonMasqueradeCIDRs: rfc1918, EnableIPv6: true}, IPTablesOptions{})
			mustApplyIPT(t, ipt, want, ruleset.Rebuilt)
			if c4, c6, err := ipt.Counters(); err != nil || c4 != (ruleset.Counter{}) || c6 != (ruleset.Counter{}) {
				t.Fatalf("Counters before traffic: %+v %+v %v", c4, c6, err)
			}
			for _, dst := range []string{"198.51.100.1:9", "[2001:db8:ff00::10]:9", "10.99.0.7:9"} {
				if err := sendFrom(n.path(), dst); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				c4, c6, err := ipt.Counters()
				if err != nil {
					t.Fatal(err)
				}
				if c4.Packets == 1 && c6.Packets == 1 && c4.Bytes > 0 && c6.Bytes > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Counters = %+v %+v, want one packet each (10.99.0.7 is not masqueraded)", c4, c6)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// sendFrom sends one UDP datagram to dst from inside the namespace pinned at path.
func sendFrom(path, dst string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, namespace and all
		ns, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		c, err := net.Dial("udp", dst)
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		_, err = c.Write([]byte("masqd"))
		errc <- err
	}()
	return <-errc
}

// oldAgent writes ip-masq-agent's chain the way it does: the chain with iptables-restore, then the jump.
func oldAgent(t *testing.T, n *netns, v string, f Family, chain string, cfg config.Config) {
	t.Helper()
	r := CompileIPTables(cfg, IPTablesOptions{Chain: chain, RandomFully: true, RandomFullySupported: true})
	bin := "iptables-" + v
	if f == IPv6 {
		bin = "ip6tables-" + v
	}
	n.restore(t, bin+"-restore", string(r.Payload(f)))
	n.run(t, append([]string{bin, "-w", "5", "-t", "nat", "-A", "POSTROUTING"}, r.JumpSpec()...)...)
}

// TestRemoveOldAgentChains puts ip-masq-agent's chains (IP-MASQ-AGENT and GKE's IP-MASQ) in both
// variants and families, beside other rules, and checks that exactly they go, in order.
func TestRemoveOldAgentChains(t *testing.T) {
	n := newNetns(t)
	requireIPTables(t)
	before := map[string]string{}
	for _, v := range variants {
		for bin, d := range foreignNat(t, n, v) {
			before[bin] = d
		}
	}
	cfg := config.Config{NonMasqueradeCIDRs: cidrs("10.0.0.0/8", "fd00::/8"), EnableIPv6: true}
	for _, v := range variants {
		for _, f := range families {
			oldAgent(t, n, v, f, "IP-MASQ-AGENT", cfg)
		}
	}
	oldAgent(t, n, VariantNFT, IPv4, "IP-MASQ", cfg)

	removed, err := RemoveOldAgentChains(n.path(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iptables-legacy nat IP-MASQ-AGENT", "ip6tables-legacy nat IP-MASQ-AGENT",
		"iptables-nft nat IP-MASQ-AGENT", "iptables-nft nat IP-MASQ", "ip6tables-nft nat IP-MASQ-AGENT",
	}
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	for bin, b := range before {
		if got := n.dump(t, bin); got != b {
			t.Errorf("%s after removal, -before +after:\n%s", bin, lineDiff(b, got))
		}
	}
	if removed, err := RemoveOldAgentChains(n.path(), nil, nil); err != nil || len(removed) != 0 {
		t.Errorf("second run removed %q, %v; want nothing", removed, err)
	}
}

// TestRemoveOldAgentChainsLeavesOthers: only the chains named are removed, whatever their jump says.
func TestRemoveOldAgentChainsLeavesOthers(t *testing.T) {
	n := newNetns(t)
	requireIPTables(t)
	cfg := config.Config{NonMasqueradeCIDRs: rfc1918}
	oldAgent(t, n, VariantLegacy, IPv4, "IP-MASQ-AGENT", cfg)
	oldAgent(t, n, VariantLegacy, IPv4, "MASQD-OWN", cfg)
	removed, err := RemoveOldAgentChains(n.path(), []string{"IP-MASQ-AGENT"}, []string{VariantLegacy})
	if err != nil || !slices.Equal(removed, []string{"iptables-legacy nat IP-MASQ-AGENT"}) {
		t.Fatalf("removed %q, %v", removed, err)
	}
	got := n.dump(t, "iptables-legacy-save", "-t", "nat")
	if strings.Contains(got, "IP-MASQ-AGENT") || !strings.Contains(got, "-j MASQD-OWN") || !strings.Contains(got, ":MASQD-OWN") {
		t.Fatalf("after removing IP-MASQ-AGENT only:\n%s", got)
	}
	if _, err := RemoveOldAgentChains(n.path(), nil, []string{"ipfw"}); err == nil {
		t.Fatal("unknown variant: no error")
	}
}

func TestNewIPTablesRejects(t *testing.T) {
	if _, err := NewIPTables("nftables", "", ""); err == nil {
		t.Error(`variant "nftables": no error`)
	}
	if _, err := NewIPTables(VariantNFT, "BAD CHAIN", ""); err == nil {
		t.Error("bad chain: no error")
	}
	ipt, err := NewIPTables(VariantLegacy, "", "")
	if err != nil || ipt.Chain() != DefaultIPTablesChain || ipt.Variant() != VariantLegacy {
		t.Errorf("NewIPTables(legacy, \"\", \"\") = %v %v", ipt, err)
	}
	if _, err := ipt.Apply(IPTablesRules{Chain: "OTHER"}); err == nil {
		t.Error("Apply of another chain's rules: no error")
	}
}

// TestIPTablesVersion reads the installed iptables' version and checks --random-fully against it.
func TestIPTablesVersion(t *testing.T) {
	n := newNetns(t)
	for _, v := range variants {
		out, err := newIPTables(t, n, v, "").Version()
		if err != nil {
			t.Fatal(err)
		}
		ok, err := RandomFullySupported(out)
		if err != nil || !ok {
			t.Errorf("%s: %q: RandomFullySupported %t, %v (Debian 12 ships 1.8.9)", v, out, ok, err)
		}
	}
	if _, err := (&IPTables{variant: "none", chain: "X"}).Version(); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing binary: %v, want exec.ErrNotFound", err)
	}
}
