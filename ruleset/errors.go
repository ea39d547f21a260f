package ruleset

import (
	"errors"
	"os"
)

// ErrNotSupported says that a backend cannot be used on this kernel or node. Check it with errors.Is: with
// --mode=auto it means "fall back", not "fail".
var ErrNotSupported = errors.New("not supported")

// PrivilegeError is the kernel refusing masqd for want of privilege (EPERM, EACCES): it says that masqd needs
// CAP_NET_ADMIN. Check it with errors.As, or the cause with errors.Is(err, os.ErrPermission).
type PrivilegeError struct{ Err error }

func (e *PrivilegeError) Error() string {
	return e.Err.Error() + ": masqd needs CAP_NET_ADMIN in this network namespace (run as root or grant the capability)"
}

func (e *PrivilegeError) Unwrap() error { return e.Err }

// NeedsNetAdmin returns err as a *PrivilegeError when it is a permission error not already one, and err as
// it is otherwise (nil included).
func NeedsNetAdmin(err error) error {
	var pe *PrivilegeError
	if err == nil || !errors.Is(err, os.ErrPermission) || errors.As(err, &pe) {
		return err
	}
	return &PrivilegeError{Err: err}
}
