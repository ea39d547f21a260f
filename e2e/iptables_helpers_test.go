//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/nft"
	"github.com/masqd/masqd/ruleset"
)

// nsPath is the pin file of a lab namespace, as the nft package's iptables API takes it.
func nsPath(ns *NS) string { return "/run/netns/" + ns.Name }

// requireIPTables skips the test (fails it under MASQD_E2E=required) unless both iptables variants are
// installed.
func requireIPTables(t *testing.T) {
	t.Helper()
	for _, v := range []string{"nft", "legacy"} {
		for _, bin := range []string{"iptables-" + v, "iptables-" + v + "-save", "iptables-" + v + "-restore", "ip6tables-" + v + "-restore"} {
			testenv.RequireCommand(t, bin, "iptables") // Debian's has both variants
		}
	}
}

// parseConfig parses a config file's content as masqd would read it.
func parseConfig(t *testing.T, content string, opts config.Options) config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", []byte(content), opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// backend is one way of putting masqd's rules in the lab's node: its nftables table, or ip-masq-agent's
// chain through iptables-nft or iptables-legacy, applied through the nft package's API in the node's
// namespace (agent_iptables_test.go drives the masqd binary with --mode).
type backend struct {
	name    string
	variant string // "" for nftables
}

var allBackends = []backend{{"iptables-nft", iptables.VariantNFT}, {"iptables-legacy", iptables.VariantLegacy}, {"nftables", ""}}

// apply puts cfg's rules in the node with random-fully, and returns a function that removes them.
func (b backend) apply(t *testing.T, lab *Lab, cfg config.Config, ports []ruleset.PortRange) (remove func()) {
	t.Helper()
	if b.variant == "" {
		f, err := lab.Node.Open()
		if err != nil {
			t.Fatal(err)
		}
		c := nft.NewConn(int(f.Fd()))
		want := ruleset.Compile(cfg, ruleset.Options{RandomFully: true, ToPorts: ports})
		if _, err := c.Apply(want); err != nil {
			t.Fatalf("nftables apply: %v", err)
		}
		return func() {
			defer f.Close()
			defer c.Close()
			if err := c.Delete(); err != nil {
				t.Errorf("nftables delete: %v", err)
			}
		}
	}
	want := iptables.CompileIPTables(cfg, iptables.IPTablesOptions{RandomFully: true, RandomFullySupported: true, ToPorts: ports})
	ipt, err := iptables.NewIPTables(b.variant, want.Chain, nsPath(lab.Node))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ipt.Apply(want); err != nil {
		t.Fatalf("%s apply: %v", b.name, err)
	}
	if ok, err := ipt.InSync(want); err != nil || !ok {
		t.Fatalf("%s: not in sync after Apply (%v)", b.name, err)
	}
	return func() {
		if err := ipt.Delete(); err != nil {
			t.Errorf("%s delete: %v", b.name, err)
		}
	}
}

// portEcho is a UDP server on one address in a namespace that answers each datagram with the sender's
// address and port, "a.b.c.d:port". Bound to that address, it replies from it, so conntrack matches the
// reply to the flow and undoes the NAT.
func startPortEcho(t *testing.T, ns *NS, addr netip.Addr) netip.AddrPort {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	})
	if err != nil {
		t.Fatalf("port echo in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort([]byte(from.String()), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpFlows opens n UDP flows from ns to dst, one fresh socket (so one new conntrack entry) each, and
// returns the source address and port the server saw for each. A datagram is resent every 200ms until
// its reply comes, for at most 3s.
func udpFlows(ns *NS, dst netip.AddrPort, n int) ([]netip.AddrPort, error) {
	var seen []netip.AddrPort
	err := ns.Do(func() error {
		buf := make([]byte, 64)
		for i := range n {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
			if err != nil {
				return err
			}
			got, err := func() (netip.AddrPort, error) {
				defer c.Close()
				deadline := time.Now().Add(3 * time.Second)
				for {
					if _, err := c.Write([]byte("flow")); err != nil {
						return netip.AddrPort{}, err
					}
					wait := time.Now().Add(200 * time.Millisecond)
					if wait.After(deadline) {
						wait = deadline
					}
					c.SetReadDeadline(wait)
					k, err := c.Read(buf)
					if err == nil {
						return netip.ParseAddrPort(string(buf[:k]))
					}
					if !(isTimeout(err) || errors.Is(err, unix.ECONNREFUSED)) || time.Now().After(deadline) {
						return netip.AddrPort{}, err
					}
				}
			}()
			if err != nil {
				return fmt.Errorf("flow %d: %w", i, err)
			}
			seen = append(seen, got)
		}
		return nil
	})
	return seen, err
}

// nftRuleTables returns the tables that hold rules in the namespace's nftables ruleset, with their rule
// counts (iptables-nft's tables included).
func nftRuleTables(t *testing.T, ns *NS) map[string]int {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(ns.Run(t, "nft", "-j", "list", "ruleset")), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, obj := range doc.Nftables {
		raw, ok := obj["rule"]
		if !ok {
			continue
		}
		var r struct{ Family, Table string }
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		out[r.Family+" "+r.Table]++
	}
	return out
}

// prober sends a UDP probe from the pod to dst again and again, each from a fresh socket, until stopped,
// and counts what the far end saw.
type prober struct {
	total, podIP, failed int
	firstErr             error
}

// runProber probes until ctx is done, adding one to sent after each probe.
func runProber(ctx context.Context, lab *Lab, dst netip.Addr, sent *atomic.Int64) *prober {
	p := &prober{}
	_, ports := lab.echoFor(dst)
	for ctx.Err() == nil {
		got, err := sourceSeenUDP(lab.Pod, dst, ports.udp, 2*time.Second)
		p.total++
		switch {
		case err != nil:
			p.failed++
			if p.firstErr == nil {
				p.firstErr = err
			}
		case got == lab.PodIP || got == lab.PodIP6:
			p.podIP++
		}
		sent.Add(1)
	}
	return p
}

// waitProbes waits until at least n more probes have been sent.
func waitProbes(t *testing.T, sent *atomic.Int64, n int64) {
	t.Helper()
	target := sent.Load() + n
	waitFor(t, 30*time.Second, fmt.Sprintf("%d more probes", n), func() error {
		if got := sent.Load(); got < target {
			return fmt.Errorf("%d of %d sent", got, target)
		}
		return nil
	})
}

// noAgentChains fails unless no IP-MASQ chain is left in any variant or family.
func noAgentChains(t *testing.T, ns *NS) {
	t.Helper()
	for _, bin := range []string{"iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"} {
		if out := ns.Run(t, bin); strings.Contains(out, "IP-MASQ") {
			t.Errorf("%s still shows an IP-MASQ chain:\n%s", bin, out)
		}
	}
}

// migration is a node running ip-masq-agent's chains (IPv4 and IPv6) in one iptables variant, with the pod
// opening new flows to the internet over both families throughout: the stage on which masqd takes over.
type migration struct {
	lab     *Lab
	sent    atomic.Int64
	probers []*prober
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// startMigration sets the stage and returns once 60 probes have gone through ip-masq-agent's rules.
func startMigration(t *testing.T, variant string) *migration {
	t.Helper()
	m := &migration{lab: newLab(t, labOptions{}), probers: make([]*prober, 2)}
	installOldAgent(t, m.lab, variant)
	checkSources(t, m.lab, []expect{{m.lab.Internet, m.lab.NodeIP}, {m.lab.Internet6, m.lab.NodeIP6}, {m.lab.VPC, m.lab.PodIP}})
	var ctx context.Context
	ctx, m.stop = context.WithCancel(context.Background())
	for i, dst := range []netip.Addr{m.lab.Internet, m.lab.Internet6} {
		m.wg.Go(func() { m.probers[i] = runProber(ctx, m.lab, dst, &m.sent) })
	}
	t.Cleanup(func() { m.stop(); m.wg.Wait() })
	m.waitProbes(t)
	return m
}

// waitProbes waits for 60 more probes.
func (m *migration) waitProbes(t *testing.T) { waitProbes(t, &m.sent, 60) }

// finish stops the probes and checks the outcome: no probe left with the pod's address or failed, no
// ip-masq-agent chain is left, and only masqd's two rules are in nftables.
func (m *migration) finish(t *testing.T) {
	t.Helper()
	m.waitProbes(t)
	m.stop()
	m.wg.Wait()
	for i, fam := range []string{"IPv4", "IPv6"} {
		p := m.probers[i]
		t.Logf("%s: %d probes, %d seen with the pod address, %d failed", fam, p.total, p.podIP, p.failed)
		if p.podIP != 0 || p.failed != 0 {
			t.Errorf("%s: %d of %d probes left with the pod address and %d failed (first: %v)", fam, p.podIP, p.total, p.failed, p.firstErr)
		}
	}
	noAgentChains(t, m.lab.Node)
	if tables := nftRuleTables(t, m.lab.Node); len(tables) != 1 || tables["inet "+ruleset.TableName] != 2 {
		t.Errorf("nftables rules by table: %v, want only masqd's 2 rules", tables)
	}
}
