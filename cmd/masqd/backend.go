package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/masqd/masqd/iptables"
	"github.com/masqd/masqd/ruleset"
)

// defaultMigrateFrom is --migrate-from-chain's default: ip-masq-agent's chain and GKE's.
const defaultMigrateFrom = "IP-MASQ-AGENT,IP-MASQ"

// parseChains parses --migrate-from-chain: comma-separated chain names; empty is none.
func parseChains(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if err := iptables.ValidateChainName(c); err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// chooseBackend resolves --mode from the node's facts; gather is iptables.GatherFacts in production.
func chooseBackend(mode string, gather func() (iptables.Facts, error)) (iptables.Backend, iptables.Facts, error) {
	facts, err := gather()
	if err != nil {
		return iptables.Backend{}, facts, err
	}
	b, err := iptables.ChooseBackend(mode, facts)
	if err != nil && !errors.Is(err, os.ErrPermission) && errors.Is(facts.NFTables, os.ErrPermission) {
		err = fmt.Errorf("%w (and nftables refused the probe: %w)", err, facts.NFTables)
	}
	return b, facts, ruleset.NeedsNetAdmin(err)
}
