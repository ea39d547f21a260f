//go:build !linux

package agent

import (
	"context"
	"errors"

	"github.com/masqd/masqd/ruleset"
)

var errNotLinux = errors.New("interface addresses are read on Linux only")

// InterfaceAddrs resolves snatToInterface on Linux only; here it is an error, and every family keeps
// masquerade.
func InterfaceAddrs(name string) (ruleset.InterfaceAddrs, error) {
	return ruleset.InterfaceAddrs{Name: name}, errNotLinux
}

// WatchAddresses watches addresses on Linux only.
func WatchAddresses(ctx context.Context, changed func()) error { return errNotLinux }
