package agent

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier speaks systemd's notify protocol (sd_notify): a datagram to $NOTIFY_SOCKET. A nil Notifier, or one
// without a socket, sends nothing.
type Notifier struct {
	socket   string
	watchdog time.Duration
}

// NotifierFromEnv reads NOTIFY_SOCKET and WATCHDOG_USEC as systemd sets them for Type=notify units.
func NotifierFromEnv() *Notifier {
	n := &Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		if pid := os.Getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// WatchdogInterval is systemd's WatchdogSec, or 0 when no watchdog is set.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Send sends one notification, such as "READY=1".
func (n *Notifier) Send(state string) error {
	if n == nil || n.socket == "" {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if addr.Name[0] == '@' {
		addr.Name = "\x00" + addr.Name[1:] // abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return nil
}
