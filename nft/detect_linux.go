package nft

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
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
// It returns nil when the kernel accepted every message; an error wrapping ruleset.ErrNotSupported when it rejected
// one as unknown or unsupported (no nf_tables, no nat chain type for inet, no fib or masq expression); and
// any other error (such as permission denied) as it is. netnsFD selects the network namespace (0 means
// the caller's). It needs CAP_NET_ADMIN.
func ProbeNFTables(netnsFD int) error {
	return checkBatch(netnsFD, probeBatch())
}

// probeBatch is masqd's table under a name of its own, with both families' sets and rules.
func probeBatch() *batch {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	b := newBatch("masqd_probe_" + hex.EncodeToString(suffix))
	tx := ruleset.Transaction{
		{Kind: ruleset.AddTable},
		{Kind: ruleset.AddSet, Set: ruleset.Set4Name}, {Kind: ruleset.AddSet, Set: ruleset.Set6Name},
		{Kind: ruleset.AddChain},
		{Kind: ruleset.AddRule, Rule: ruleset.Rule{RandomFully: true}},
		{Kind: ruleset.AddRule, Rule: ruleset.Rule{IPv6: true, RandomFully: true}},
	}
	if err := b.transaction(tx); err != nil {
		panic(fmt.Sprintf("nftables probe: %v", err)) // a fixed transaction: it always encodes
	}
	return b
}

// checkBatch sends b's messages after a batch begin and without its end, and waits for the kernel's answer
// to every one: the kernel checks each, then aborts the unfinished transaction.
func checkBatch(netnsFD int, b *batch) error {
	s, err := dialSock(netnsFD)
	if err != nil {
		return probeError("dial netlink", err)
	}
	defer s.close()
	begin := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	begin[2], begin[3] = byte(unix.NFNL_SUBSYS_NFTABLES>>8), byte(unix.NFNL_SUBSYS_NFTABLES)
	beginSeq := s.nextSeq()
	head := appendNlmsgHdr(nil, uint32(nlmsgHdrLen+len(begin)), unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, beginSeq)
	head = append(head, begin...)
	for _, m := range b.msgs {
		putSeq(b.buf, m.offset, s.nextSeq())
	}
	if err := s.send(head, b.buf); err != nil {
		return probeError("send", err)
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return fmt.Errorf("nftables probe: %w", err)
	}
	got, first := 0, error(nil)
	err = s.receive(func(m syscall.NetlinkMessage) bool {
		if m.Header.Type != unix.NLMSG_ERROR {
			return false
		}
		seq, err := ackError(m)
		if err != nil && first == nil {
			first = err
		}
		if seq == beginSeq { // the batch as a whole was refused (EPERM without CAP_NET_ADMIN): nothing follows
			return err != nil
		}
		got++
		return got == len(b.msgs)
	})
	if err != nil {
		return probeError("receive", err)
	}
	if first != nil {
		return probeError("kernel rejected masqd's table (nat chain, sets, fib, masquerade)", first)
	}
	return nil
}

// probeError marks the errors that mean "this kernel cannot" as ruleset.ErrNotSupported.
func probeError(what string, err error) error {
	for _, errno := range []error{unix.ENOENT, unix.EOPNOTSUPP, unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT, unix.EINVAL} {
		if errors.Is(err, errno) {
			return fmt.Errorf("nftables probe: %s: %w: %w", what, ruleset.ErrNotSupported, err)
		}
	}
	return fmt.Errorf("nftables probe: %s: %w", what, err)
}
