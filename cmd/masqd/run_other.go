//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
)

// runMode off Linux: --dry-run prints the ruleset; every mode that changes the kernel says it needs Linux.
// (masqd check, explain and status work too; status and explain say they cannot read a kernel.)
func runMode(_ context.Context, opts options, stdout io.Writer, log *slog.Logger) error {
	if !opts.dryRun {
		return errors.New("the agent, --once and --cleanup change Linux's nftables or iptables, so they run on Linux only; " +
			"here masqd --dry-run, masqd check and masqd explain work")
	}
	cfg, err := loadConfig(opts, log)
	if err != nil {
		return err
	}
	return dryRunOutput(stdout, cfg, opts, log)
}
