//go:build !linux

package status

import (
	"errors"

	"github.com/masqd/masqd/ruleset"
)

// errNeedsLinux is what reading the kernel says off Linux.
var errNeedsLinux = errors.New("reading the kernel's nftables needs Linux")

func readKernel() (ruleset.Ruleset, bool, error) { return ruleset.Ruleset{}, false, errNeedsLinux }

func iptablesHolding(string) []string { return nil }
