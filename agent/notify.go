package agent

import (
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier speaks systemd's notify protocol (sd_notify) through go-systemd's daemon package: a datagram to
// $NOTIFY_SOCKET. A nil Notifier, or one made where systemd set no socket, sends nothing. It is safe for
// concurrent use.
type Notifier struct {
	watchdog time.Duration
}

// NotifierFromEnv reads WATCHDOG_USEC and WATCHDOG_PID as systemd sets them for a unit with WatchdogSec;
// NOTIFY_SOCKET is read at each Send. A malformed watchdog setting means no watchdog.
func NotifierFromEnv() *Notifier {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		d = 0
	}
	return &Notifier{watchdog: d}
}

// WatchdogInterval is systemd's WatchdogSec, or 0 when no watchdog is set.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Send sends one notification, such as "READY=1". Without $NOTIFY_SOCKET it sends nothing and returns nil.
func (n *Notifier) Send(state string) error {
	if n == nil {
		return nil
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return nil
}
