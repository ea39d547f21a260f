package nft

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ProbeNFTables asks the kernel whether it can run masqd's table, without changing anything: it sends the
// batch that builds a table like masqd's (an inet table, interval sets of IPv4 and IPv6 addresses, a nat
// postrouting chain, and masqd's rules: set lookup, fib daddr type, counter, masquerade with
// random,fully-random) but leaves out the batch's closing NFNL_MSG_BATCH_END. The kernel processes every
// message as for a commit - loading the modules they need, resolving the chain type and every
// expression, checking their attributes - answers each, and then aborts the transaction instead of
// committing it (the "check" mode behind `nft -c`). Nothing is created and the ruleset generation does
// not move. What the kernel checks only when it commits (an expression's dependency on its chain's type
// and hook, whole-table loop detection) it does not check here, on this kernel as for `nft -c`; masqd's
// table is fixed and valid by construction, so the probe asks only what the kernel supports.
//
// It returns nil when the kernel accepted every message; an error wrapping ErrNotSupported when it rejected
// one as unknown or unsupported (no nf_tables, no nat chain type for inet, no fib or masq expression); and
// any other error (such as permission denied) as it is. netnsFD selects the network namespace (0 means
// the caller's). It needs CAP_NET_ADMIN.
func ProbeNFTables(netnsFD int) error {
	msgs, err := probeBatch()
	if err != nil {
		return fmt.Errorf("nftables probe: build batch: %w", err)
	}
	return checkBatch(netnsFD, msgs)
}

// probeBatch renders masqd's table, under a name of its own, as netlink messages, batch end removed.
func probeBatch() ([]netlink.Message, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	table := &nftables.Table{Name: "masqd_probe_" + hex.EncodeToString(suffix), Family: nftables.TableFamilyINet}
	s4 := &nftables.Set{Table: table, Name: Set4Name, Interval: true, KeyType: nftables.TypeIPAddr}
	s6 := &nftables.Set{Table: table, Name: Set6Name, Interval: true, KeyType: nftables.TypeIP6Addr}
	return captureBatch(func(nc *nftables.Conn) error {
		nc.AddTable(table)
		for _, s := range []*nftables.Set{s4, s6} {
			if err := nc.AddSet(s, nil); err != nil {
				return err
			}
		}
		chain := nc.AddChain(&nftables.Chain{
			Name:     ChainName,
			Table:    table,
			Type:     nftables.ChainTypeNAT,
			Hooknum:  nftables.ChainHookPostrouting,
			Priority: nftables.ChainPriorityNATSource,
			Policy:   ptr(nftables.ChainPolicyAccept),
		})
		nc.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: ruleExprs(unix.NFPROTO_IPV4, s4, true)})
		nc.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: ruleExprs(unix.NFPROTO_IPV6, s6, true)})
		return nil
	})
}

// captureBatch runs queue against a google/nftables connection that sends nothing and returns the batch
// its Flush would have sent, without the closing NFNL_MSG_BATCH_END.
func captureBatch(queue func(*nftables.Conn) error) ([]netlink.Message, error) {
	var batch []netlink.Message
	nc, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		batch = append(batch, req...)
		return nil, io.EOF // no replies: Flush takes that as acknowledged
	}))
	if err != nil {
		return nil, err
	}
	if err := queue(nc); err != nil {
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		return nil, err
	}
	end := netlink.HeaderType(unix.NFNL_MSG_BATCH_END)
	if len(batch) < 2 || batch[len(batch)-1].Header.Type != end {
		return nil, fmt.Errorf("unexpected batch of %d messages from google/nftables", len(batch))
	}
	batch = batch[:len(batch)-1]
	for i := range batch {
		batch[i].Header.Length, batch[i].Header.Sequence, batch[i].Header.PID = 0, 0, 0
	}
	return batch, nil
}

// checkBatch sends an unterminated batch and waits for the kernel's answer to every message that asked
// for one.
func checkBatch(netnsFD int, msgs []netlink.Message) error {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFD})
	if err != nil {
		return probeError("dial netlink", err)
	}
	defer nl.Close()
	_ = nl.SetOption(netlink.ExtendedAcknowledge, true)
	want := 0
	for _, m := range msgs {
		if m.Header.Flags&netlink.Acknowledge != 0 {
			want++
		}
	}
	if _, err := nl.SendMessages(msgs); err != nil {
		return probeError("send", err)
	}
	if err := nl.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return fmt.Errorf("nftables probe: %w", err)
	}
	for got := 0; got < want; {
		replies, err := nl.Receive()
		if err != nil {
			return probeError("kernel rejected masqd's table (nat chain, sets, fib, masquerade)", err)
		}
		for _, r := range replies {
			if r.Header.Type == netlink.Error {
				got++
			}
		}
	}
	return nil
}

// probeError marks the errors that mean "this kernel cannot" as ErrNotSupported.
func probeError(what string, err error) error {
	for _, errno := range []error{unix.ENOENT, unix.EOPNOTSUPP, unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT, unix.EINVAL} {
		if errors.Is(err, errno) {
			return fmt.Errorf("nftables probe: %s: %w: %w", what, ErrNotSupported, err)
		}
	}
	return fmt.Errorf("nftables probe: %s: %w", what, err)
}

// GatherFacts observes what ChooseBackend needs for mode, in the network namespace pinned at netnsPath (""
// means the caller's): ProbeNFTables, and, when NeedsIPTables says the choice may depend on them, for each
// iptables variant whether its iptables-save runs and what iptables-save and ip6tables-save show (rule lines,
// the kubelet's chains). A variant whose commands are missing or fail counts as unusable with no rules, as
// iptables-wrappers counts it. It changes nothing and needs CAP_NET_ADMIN.
func GatherFacts(netnsPath, mode string) (Facts, error) {
	var f Facts
	fd := 0
	if netnsPath != "" {
		ns, err := os.Open(netnsPath)
		if err != nil {
			return f, fmt.Errorf("gather facts: open network namespace: %w", err)
		}
		defer ns.Close()
		fd = int(ns.Fd())
	}
	f.NFTables = ProbeNFTables(fd)
	if NeedsIPTables(mode, f) {
		f.IPTables = true
		f.Legacy = variantFacts(VariantLegacy, netnsPath)
		f.NFT = variantFacts(VariantNFT, netnsPath)
	}
	return f, nil
}

func variantFacts(variant, netnsPath string) VariantFacts {
	t := &IPTables{variant: variant, netns: netnsPath}
	out4, err := t.run(nil, t.bin(IPv4, "-save"))
	out6, _ := t.run(nil, t.bin(IPv6, "-save"))
	return VariantFacts{Usable: err == nil, Counts: countSave(out4 + "\n" + out6)}
}
