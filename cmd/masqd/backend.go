package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/agent"
	"github.com/masqd/masqd/nft"
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
		if err := nft.ValidateChainName(c); err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// chooseBackend resolves --mode from the node's facts; gather is nft.GatherFacts in production.
func chooseBackend(mode string, gather func() (nft.Facts, error)) (nft.Backend, nft.Facts, error) {
	facts, err := gather()
	if err != nil {
		return nft.Backend{}, facts, err
	}
	b, err := nft.ChooseBackend(mode, facts)
	if err != nil && !errors.Is(err, os.ErrPermission) && errors.Is(facts.NFTables, os.ErrPermission) {
		err = fmt.Errorf("%w (and nftables refused the probe: %w)", err, facts.NFTables)
	}
	return b, facts, needCapNetAdmin(err)
}

// newBackend makes the agent's backend for b, in the caller's network namespace.
func newBackend(b nft.Backend, opts options, log *slog.Logger) (agent.Backend, error) {
	if b.Kind == nft.KindNFTables {
		return agent.NewNFTables(nft.NewConn(0)), nil
	}
	ipt, err := nft.NewIPTables(b.Variant, opts.masqChain, "")
	if err != nil {
		return nil, err
	}
	ipo := nft.IPTablesOptions{Chain: opts.masqChain, RandomFully: opts.nft.RandomFully, ToPorts: opts.nft.ToPorts}
	if ipo.RandomFully {
		// As ip-masq-agent: --random-fully only where this iptables knows it (1.6.2 and later).
		v, err := ipt.Version()
		if err == nil {
			ipo.RandomFullySupported, err = nft.RandomFullySupported(v)
		}
		if err != nil {
			log.Warn("cannot tell whether iptables supports --random-fully; masquerading without it", "err", err)
		} else if !ipo.RandomFullySupported {
			log.Warn("this iptables is older than 1.6.2 and has no --random-fully; masquerading without it", "version", v)
		}
	}
	var monitor *nft.Conn
	if b.Variant == nft.VariantNFT {
		monitor = nft.NewConn(0) // iptables-nft's rules are nftables tables: their commits can be seen
	}
	return agent.NewIPTables(ipt, ipo, monitor), nil
}

// migrationStep removes chains (and their POSTROUTING jumps) from one iptables variant's nat table.
type migrationStep struct {
	Variant string
	Chains  []string
}

// migrationPlan is what masqd removes once its own rules in backend b are verified: in each usable
// iptables variant, legacy first, the --migrate-from-chain chains (from) and masqd's own --masq-chain,
// except the chain masqd itself keeps in its own variant; and, in iptables mode, masqd's nftables table.
// When the facts hold nothing about iptables (nftables mode), every variant is a candidate:
// nft.RemoveOldAgentChains skips those the kernel shows no nat table for.
func migrationPlan(b nft.Backend, facts nft.Facts, masqChain string, from []string) (steps []migrationStep, deleteTable bool) {
	for _, v := range []struct {
		name   string
		usable bool
	}{{nft.VariantLegacy, facts.Legacy.Usable}, {nft.VariantNFT, facts.NFT.Usable}} {
		if facts.IPTables && !v.usable {
			continue
		}
		chains := slices.Clone(from)
		if !slices.Contains(chains, masqChain) {
			chains = append(chains, masqChain)
		}
		if b.Kind == nft.KindIPTables && b.Variant == v.name {
			chains = slices.DeleteFunc(chains, func(c string) bool { return c == masqChain })
		}
		if len(chains) > 0 {
			steps = append(steps, migrationStep{Variant: v.name, Chains: chains})
		}
	}
	return steps, b.Kind == nft.KindIPTables
}

// migrator returns the function that carries out migrationPlan, for the agent and --once.
func migrator(b nft.Backend, facts nft.Facts, opts options) func() ([]string, error) {
	steps, deleteTable := migrationPlan(b, facts, opts.masqChain, opts.migrateFrom)
	return func() ([]string, error) {
		var removed []string
		for _, s := range steps {
			r, err := nft.RemoveOldAgentChains("", s.Chains, []string{s.Variant})
			removed = append(removed, r...)
			if err != nil {
				return removed, err
			}
		}
		if deleteTable {
			conn := nft.NewConn(0)
			if _, present, err := conn.Read(); err == nil && present {
				if err := conn.Delete(); err != nil {
					return removed, err
				}
				removed = append(removed, "nftables table inet "+nft.TableName)
			}
			// A kernel that cannot be read here (no nf_tables: the reason for iptables mode) has no table.
		}
		return removed, nil
	}
}

// cleanup removes both backends' state: table inet masqd, and chain (with its POSTROUTING jumps) from
// iptables-legacy and iptables-nft in both families. A variant whose commands cannot run is skipped.
func cleanup(chain string, log *slog.Logger) error {
	var errs []error
	if err := nft.NewConn(0).Delete(); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return needCapNetAdmin(err) // the iptables commands would be refused too
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EPROTONOSUPPORT) { // no nf_tables: no table
			errs = append(errs, err)
		}
	} else {
		log.Info("removed masqd's nftables table (if any)", "table", "inet "+nft.TableName)
	}
	for _, v := range []string{nft.VariantLegacy, nft.VariantNFT} {
		ipt, err := nft.NewIPTables(v, chain, "")
		if err != nil {
			return err
		}
		// A variant whose iptables-save cannot run here (not installed; iptables-legacy as a non-root user)
		// is one masqd cannot have written to either, as GatherFacts counts it unusable.
		if _, err := ipt.Read(); err != nil {
			log.Debug("iptables variant unusable here; nothing to remove", "variant", "iptables-"+v, "err", err)
			continue
		}
		if err := ipt.Delete(); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("removed masqd's iptables chain (if any)", "variant", "iptables-"+v, "chain", chain)
	}
	return errors.Join(errs...)
}

// needCapNetAdmin says what a permission error from the kernel means, unless it says so already.
func needCapNetAdmin(err error) error {
	if err == nil || !errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		return err
	}
	return fmt.Errorf("%w: masqd needs CAP_NET_ADMIN in this network namespace", err)
}
