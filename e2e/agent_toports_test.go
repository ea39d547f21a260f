//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/masqd/masqd/internal/testenv"
)

// TestAgentToPorts runs the agent with --to-ports on the nftables backend: the table is what --dry-run
// prints with the same flags, flows to the internet leave from the node's address and a port inside the
// ranges, the masqueraded-packets metric counts the port rules, and a rule someone tampers with is put back.
func TestAgentToPorts(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	path := writeConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\n")
	const ports = "--to-ports=21000-21099,22000-22299"
	ch := commits(t, lab.Node)
	a := startAgent(t, lab.Node, 9745, "--config="+path, "--mode=nftables", ports)
	nextCommit(t, ch, "first apply")
	a.waitStatus("/readyz", http.StatusOK)
	want := dryRun(t, path, ports)
	if got := kernelTable(t, lab.Node); got != want {
		t.Fatalf("nft list table inet masqd:\n%s\nwant what --dry-run %s prints:\n%s", got, ports, want)
	}

	dst := startPortEcho(t, lab.Outside, lab.Internet)
	const flows = 40
	seen, err := udpFlows(lab.Pod, dst, flows)
	if err != nil {
		t.Fatalf("after %d flows: %v", len(seen), err)
	}
	for _, s := range seen {
		if p := s.Port(); s.Addr() != lab.NodeIP || !(p >= 21000 && p <= 21099 || p >= 22000 && p <= 22299) {
			t.Errorf("flow to the internet from %s, want %s and a port in 21000-21099 or 22000-22299", s, lab.NodeIP)
		}
	}
	assertSource(t, lab, "udp", lab.VPC, lab.PodIP)
	// Only a flow's first packet meets the NAT rules: a socket that got the source port of an earlier flow
	// still in conntrack reuses its translation, and the outside sees the same address and port again.
	// Each distinct translation was counted once.
	translations := len(slices.Compact(slices.SortedFunc(slices.Values(seen), netip.AddrPort.Compare)))
	waitFor(t, 5*time.Second, "the port rules counted in the metric", func() error {
		if got := a.metric(`masqd_masqueraded_packets_total{family="ipv4"}`); got < float64(translations) {
			return fmt.Errorf("masqd_masqueraded_packets_total{family=\"ipv4\"} = %v, want ≥ %d (the distinct translations of %d flows)", got, translations, flows)
		}
		return nil
	})

	// Someone widens a port rule's range: masqd puts its own back.
	listed := lab.Node.Run(t, "nft", "-a", "list", "chain", "inet", "masqd", "postrouting")
	handle := ruleHandle(t, listed, "meta l4proto udp counter")
	lab.Node.Run(t, "nft", "replace", "rule", "inet", "masqd", "postrouting", "handle", handle,
		"ip daddr != @nonmasq4 fib daddr type != local meta l4proto udp counter masquerade to :1024-65535")
	if c := nextCommit(t, ch, "tamper"); c.Process != "nft" {
		t.Fatalf("tamper committed by %q, want nft", c.Process)
	}
	if c := nextCommit(t, ch, "repair"); c.Process != "masqd" {
		t.Fatalf("repair committed by %q, want masqd", c.Process)
	}
	if got := kernelTable(t, lab.Node); got != want {
		t.Fatalf("after the tamper and repair:\n%s\nwant\n%s", got, want)
	}
}

// ruleHandle is the handle nft -a prints on the first line of listed that contains match.
func ruleHandle(t *testing.T, listed, match string) string {
	t.Helper()
	for _, line := range strings.Split(listed, "\n") {
		if _, handle, ok := strings.Cut(line, " # handle "); ok && strings.Contains(line, match) {
			return strings.TrimSpace(handle)
		}
	}
	t.Fatalf("no rule with %q in\n%s", match, listed)
	return ""
}
