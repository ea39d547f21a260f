package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/masqd/masqd/ruleset"
)

// commandTimeout bounds one iptables command. iptables waits at most 5s for the xtables lock (-w 5); a
// command still running long after that is stuck (iptables-nft 1.8.3 can loop forever).
const commandTimeout = 30 * time.Second

var families = []Family{IPv4, IPv6}

// IPTables keeps one nat chain in step with an IPTablesRules, through one variant of the iptables commands
// (iptables-nft-* or iptables-legacy-*, never both). It reads the kernel with iptables-save, writes the
// chain with `iptables-restore --noflush -w 5` and ensures the POSTROUTING jump with -C then -A, as
// ip-masq-agent does; it touches no other chain (in POSTROUTING, only rules whose target is its chain)
// and no other table. Make one with NewIPTables; the zero value is not usable. It is safe for concurrent
// use; calls are serialised. Every method needs
// CAP_NET_ADMIN in the target network namespace and the iptables binaries on PATH.
type IPTables struct {
	variant string
	chain   string
	netns   string // path of a network namespace to enter with nsenter; "" means the caller's

	mu sync.Mutex
}

// NewIPTables returns an IPTables for variant ("nft" or "legacy") and chain ("" means
// DefaultIPTablesChain), running the commands in the network namespace pinned at netnsPath (entered with
// `nsenter --net=PATH`), or in the caller's namespace when netnsPath is "".
func NewIPTables(variant, chain, netnsPath string) (*IPTables, error) {
	if variant != VariantNFT && variant != VariantLegacy {
		return nil, fmt.Errorf("iptables: variant %q: want %q or %q", variant, VariantNFT, VariantLegacy)
	}
	if chain == "" {
		chain = DefaultIPTablesChain
	}
	if err := ValidateChainName(chain); err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return &IPTables{variant: variant, chain: chain, netns: netnsPath}, nil
}

// Variant is "nft" or "legacy".
func (t *IPTables) Variant() string { return t.variant }

// Chain is the nat chain this IPTables owns.
func (t *IPTables) Chain() string { return t.chain }

// CommandError is an iptables command that failed: the command line, its exit status and what it said.
type CommandError struct {
	Cmd    string
	Err    error
	Stderr string
}

func (e *CommandError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("%s: %v", e.Cmd, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Cmd, e.Err, e.Stderr)
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExitCode is the command's exit status, or -1 when it did not run to an exit.
func (e *CommandError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// bin names a command of this variant: iptables-nft-save, ip6tables-legacy-restore, ...
func (t *IPTables) bin(f Family, suffix string) string {
	name := "iptables"
	if f == IPv6 {
		name = "ip6tables"
	}
	return name + "-" + t.variant + suffix
}

// run runs bin with args (stdin, when not nil, on its standard input) inside the IPTables' namespace and
// returns its standard output. A binary that is not installed is an error that wraps exec.ErrNotFound.
func (t *IPTables) run(stdin []byte, bin string, args ...string) (string, error) {
	if _, err := exec.LookPath(bin); err != nil {
		return "", fmt.Errorf("%s: %w", bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	name, argv := bin, args
	if t.netns != "" {
		name, argv = "nsenter", append([]string{"--net=" + t.netns, "--", bin}, args...)
	}
	cmd := exec.CommandContext(ctx, name, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CommandError{Cmd: strings.Join(append([]string{bin}, args...), " "), Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.String(), nil
}

// save dumps every table of one family with counters. It names no table: `iptables-legacy-save -t nat`
// would make the kernel create a legacy nat table where there was none.
func (t *IPTables) save(f Family) (string, error) {
	return t.run(nil, t.bin(f, "-save"), "-c")
}

func (t *IPTables) read(f Family) (IPTablesChainState, error) {
	out, err := t.save(f)
	if err != nil {
		return IPTablesChainState{}, fmt.Errorf("iptables: read %s nat table: %w", f, err)
	}
	return parseSave(out, t.chain), nil
}

func (t *IPTables) restore(f Family, payload []byte) error {
	_, err := t.run(payload, t.bin(f, "-restore"), "--noflush", "-w", "5")
	return err
}

// IPTablesState is the kernel's view of an IPTables' chain in both families.
type IPTablesState struct {
	V4, V6 IPTablesChainState
}

// Family returns one family's state.
func (s IPTablesState) Family(f Family) IPTablesChainState {
	if f == IPv6 {
		return s.V6
	}
	return s.V4
}

// Read returns the chain and its jumps as the kernel holds them, with counters. IPv6 reads as empty when
// the variant's ip6tables is not installed.
func (t *IPTables) Read() (IPTablesState, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readAll()
}

func (t *IPTables) readAll() (IPTablesState, error) {
	var s IPTablesState
	var err error
	if s.V4, err = t.read(IPv4); err != nil {
		return s, err
	}
	if s.V6, err = t.read(IPv6); err != nil && !errors.Is(err, exec.ErrNotFound) {
		return s, err
	}
	return s, nil
}

// InSync reports whether the kernel holds exactly want: the chain's rules as want renders them, one jump
// from POSTROUTING, and nothing of the chain in ip6tables when want has no IPv6.
func (t *IPTables) InSync(want IPTablesRules) (bool, error) {
	if want.Chain != t.chain {
		return false, fmt.Errorf("iptables: rules are for chain %s, this IPTables owns %s", want.Chain, t.chain)
	}
	s, err := t.Read()
	if err != nil {
		return false, err
	}
	return s.V4.InSync(want, IPv4) && s.V6.InSync(want, IPv6), nil
}

// Apply makes the kernel hold want. For each family it compares the chain's rules with want and, only when
// they differ, writes the whole chain with one `iptables-restore --noflush -w 5` (the chain is emptied and
// refilled in one transaction, so packets never see it half written); then it ensures the POSTROUTING
// jump, checking with -C and appending with -A as ip-masq-agent does, and removes any other rule in
// POSTROUTING that jumps to the chain. The chain is written before the jump is added, so a new jump never
// leads to an empty chain. Without IPv6 in want, the chain and jump are removed from ip6tables. Anything
// sent is read back and checked. When the kernel already holds want, nothing is sent and Apply returns
// Unchanged; Rebuilt means the chain was created, Updated that it or a jump was changed.
func (t *IPTables) Apply(want IPTablesRules) (ruleset.Change, error) {
	if want.Chain != t.chain {
		return ruleset.Unchanged, fmt.Errorf("iptables: rules are for chain %s, this IPTables owns %s", want.Chain, t.chain)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	change := ruleset.Unchanged
	for _, f := range families {
		c, err := t.applyFamily(want, f)
		change = max(change, c)
		if err != nil {
			return change, err
		}
	}
	return change, nil
}

func (t *IPTables) applyFamily(want IPTablesRules, f Family) (ruleset.Change, error) {
	have, err := t.read(f)
	if f == IPv6 && !want.IPv6 {
		if errors.Is(err, exec.ErrNotFound) {
			return ruleset.Unchanged, nil
		}
		if err != nil {
			return ruleset.Unchanged, err
		}
		if !have.Chain && len(have.Jumps) == 0 {
			return ruleset.Unchanged, nil
		}
		return ruleset.Updated, t.remove(f, t.chain, have)
	}
	if err != nil {
		return ruleset.Unchanged, err
	}

	change := ruleset.Unchanged
	if !have.Chain || !slices.Equal(have.Rules, want.SaveLines(f)) {
		if err := t.restore(f, want.Payload(f)); err != nil {
			return change, fmt.Errorf("iptables: write %s chain %s: %w", f, t.chain, err)
		}
		change = ruleset.Updated
		if !have.Chain {
			change = ruleset.Rebuilt
		}
	}

	var ours int
	var stray []string
	for _, j := range have.Jumps {
		if j == want.JumpSaveLine() && ours == 0 {
			ours++
		} else {
			stray = append(stray, j)
		}
	}
	if ours == 0 {
		present, err := t.checkJump(f, want)
		if err != nil {
			return change, err
		}
		if present {
			// -C finds the jump, yet no saved line reads as JumpSaveLine: this iptables prints it
			// differently. Deleting "stray" lines now could delete our own jump, so stop and say so.
			return change, fmt.Errorf("iptables: %s POSTROUTING jump to %s exists but iptables-save prints it as %q, not %q",
				f, t.chain, have.Jumps, want.JumpSaveLine())
		}
		args := append([]string{"-w", "5", "-t", "nat", "-A", "POSTROUTING"}, want.JumpSpec()...)
		if _, err := t.run(nil, t.bin(f, ""), args...); err != nil {
			return change, fmt.Errorf("iptables: add %s POSTROUTING jump to %s: %w", f, t.chain, err)
		}
		change = max(change, ruleset.Updated)
	}
	if len(stray) > 0 {
		var b strings.Builder
		b.WriteString("*nat\n")
		for _, j := range stray {
			b.WriteString("-D" + strings.TrimPrefix(j, "-A") + "\n")
		}
		b.WriteString("COMMIT\n")
		if err := t.restore(f, []byte(b.String())); err != nil {
			return change, fmt.Errorf("iptables: remove %d other %s POSTROUTING jumps to %s: %w", len(stray), f, t.chain, err)
		}
		change = max(change, ruleset.Updated)
	}

	if change != ruleset.Unchanged {
		after, err := t.read(f)
		if err != nil {
			return change, err
		}
		if !after.InSync(want, f) {
			return change, fmt.Errorf("iptables: %s chain %s reads back different from what was written:\n%s",
				f, t.chain, stateDiff(after, want, f))
		}
	}
	return change, nil
}

// checkJump runs `iptables -t nat -C POSTROUTING <jump>`: exit status 0 means present, 1 absent.
func (t *IPTables) checkJump(f Family, want IPTablesRules) (bool, error) {
	args := append([]string{"-w", "5", "-t", "nat", "-C", "POSTROUTING"}, want.JumpSpec()...)
	_, err := t.run(nil, t.bin(f, ""), args...)
	var ce *CommandError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ce) && ce.ExitCode() == 1:
		return false, nil
	}
	return false, fmt.Errorf("iptables: check %s POSTROUTING jump to %s: %w", f, t.chain, err)
}

// remove deletes, in one iptables-restore transaction, every POSTROUTING rule that jumps to chain and then
// the chain itself, as have (read just before) shows them.
func (t *IPTables) remove(f Family, chain string, have IPTablesChainState) error {
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, j := range have.Jumps {
		b.WriteString("-D" + strings.TrimPrefix(j, "-A") + "\n")
	}
	if have.Chain {
		fmt.Fprintf(&b, ":%s - [0:0]\n-X %s\n", chain, chain)
	}
	b.WriteString("COMMIT\n")
	if err := t.restore(f, []byte(b.String())); err != nil {
		return fmt.Errorf("iptables: remove %s chain %s and its %d POSTROUTING jumps: %w", f, chain, len(have.Jumps), err)
	}
	return nil
}

// Delete removes the chain and every POSTROUTING rule that jumps to it, in both families. A missing chain
// (or a missing ip6tables) is not an error.
func (t *IPTables) Delete() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range families {
		have, err := t.read(f)
		if f == IPv6 && errors.Is(err, exec.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if have.Chain || len(have.Jumps) > 0 {
			if err := t.remove(f, t.chain, have); err != nil {
				return err
			}
		}
	}
	return nil
}

// Counters returns the packets and bytes masqueraded per family: the counters of the chain's MASQUERADE
// rules, summed. A missing chain reads as zero. It does not wait for an Apply in progress, which may be
// waiting for the xtables lock: iptables-save takes no lock, and a scrape must not hang on another
// process's lock.
func (t *IPTables) Counters() (v4, v6 ruleset.Counter, err error) {
	s, err := t.readAll()
	if err != nil {
		return ruleset.Counter{}, ruleset.Counter{}, err
	}
	return s.V4.Counter, s.V6.Counter, nil
}

// Version returns what `iptables-VARIANT --version` prints, for RandomFullySupported.
func (t *IPTables) Version() (string, error) {
	out, err := t.run(nil, t.bin(IPv4, ""), "--version")
	if err != nil {
		return "", fmt.Errorf("iptables: version: %w", err)
	}
	return strings.TrimSpace(out), nil
}
