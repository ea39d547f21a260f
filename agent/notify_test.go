package agent

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestNotifier: READY=1 reaches the socket systemd names; the watchdog interval is WATCHDOG_USEC when
// WATCHDOG_PID is this process, and none otherwise; without a socket nothing is sent and nothing fails.
func TestNotifier(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := NotifierFromEnv()
	if d := n.WatchdogInterval(); d != 30*time.Second {
		t.Errorf("watchdog %v, want 30s", d)
	}
	if err := n.Send("READY=1"); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	k, err := conn.Read(buf)
	if err != nil || string(buf[:k]) != "READY=1" {
		t.Errorf("received %q, %v; want READY=1", buf[:k], err)
	}

	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1)) // another process's watchdog
	if d := NotifierFromEnv().WatchdogInterval(); d != 0 {
		t.Errorf("watchdog of another pid: %v, want 0", d)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := NotifierFromEnv().Send("READY=1"); err != nil {
		t.Errorf("no socket: %v, want nil", err)
	}
	var none *Notifier
	if err := none.Send("READY=1"); err != nil || none.WatchdogInterval() != 0 {
		t.Errorf("nil Notifier: %v, %v; want nothing", err, none.WatchdogInterval())
	}
}
