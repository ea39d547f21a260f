package nft

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// TestProbeNFTables: the probe passes on this kernel, and commits nothing: the ruleset generation does not
// move and the namespace's ruleset stays empty.
func TestProbeNFTables(t *testing.T) {
	n := newNetns(t)
	before, err := n.conn.Generation()
	if err != nil {
		t.Fatal(err)
	}
	if err := ProbeNFTables(n.conn.netns); err != nil {
		t.Fatalf("ProbeNFTables: %v", err)
	}
	after, err := n.conn.Generation()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("generation moved from %d to %d: the probe committed", before, after)
	}
	if got := n.nft(t, "list", "ruleset"); got != "" {
		t.Errorf("ruleset after the probe:\n%s", got)
	}
}

// TestProbeRejects shows that the kernel's answers to an unterminated batch come back, and that the ones
// meaning "cannot" wrap ErrNotSupported, with nothing created.
func TestProbeRejects(t *testing.T) {
	n := newNetns(t)
	const create = unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE
	for name, tc := range map[string]struct {
		fill  func(b *batch)
		errno error
	}{
		"nat chain on the forward hook": {func(b *batch) {
			b.message(unix.NFT_MSG_NEWCHAIN, create, "add chain fwd", func(d []byte) []byte {
				d = appendAttrString(d, unix.NFTA_CHAIN_TABLE, b.table)
				d = appendAttrString(d, unix.NFTA_CHAIN_NAME, "fwd")
				d = nest(d, unix.NLA_F_NESTED|unix.NFTA_CHAIN_HOOK, func(d []byte) []byte {
					d = appendAttrU32(d, unix.NFTA_HOOK_HOOKNUM, unix.NF_INET_FORWARD)
					return appendAttrU32(d, unix.NFTA_HOOK_PRIORITY, 100)
				})
				return appendAttrString(d, unix.NFTA_CHAIN_TYPE, "nat")
			})
		}, unix.EOPNOTSUPP},
		"lookup in a set that does not exist": {func(b *batch) {
			if err := b.transaction(ruleset.Transaction{{Kind: ruleset.AddChain}, {Kind: ruleset.AddRule, Rule: ruleset.Rule{RandomFully: true}}}); err != nil {
				t.Fatal(err)
			}
		}, unix.ENOENT},
	} {
		t.Run(name, func(t *testing.T) {
			b := newBatch("bad")
			if err := b.transaction(ruleset.Transaction{{Kind: ruleset.AddTable}}); err != nil {
				t.Fatal(err)
			}
			tc.fill(b)
			err := checkBatch(n.conn.netns, b)
			if !errors.Is(err, ruleset.ErrNotSupported) || !errors.Is(err, tc.errno) {
				t.Fatalf("checkBatch: %v, want %v as ErrNotSupported", err, tc.errno)
			}
			if got := n.nft(t, "list", "ruleset"); got != "" {
				t.Errorf("ruleset after a rejected probe:\n%s", got)
			}
		})
	}
}
