package nft

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

func TestMonitor(t *testing.T) {
	n := newNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	commits := make(chan Commit, 16)
	done := make(chan error, 1)
	subscribed := make(chan struct{})
	go func() {
		done <- n.conn.Monitor(ctx, func(c Commit) {
			select {
			case <-subscribed:
			default:
				close(subscribed)
				return // the probe commit below
			}
			commits <- c
		})
	}()
	// Commit until the monitor reports one, so later commits are known to be seen.
	for deadline := time.Now().Add(5 * time.Second); ; {
		n.nft(t, "add", "table", "ip", "probe")
		select {
		case <-subscribed:
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("monitor reported no commit")
			}
			continue
		}
		break
	}
	next := func(what string) Commit {
		t.Helper()
		select {
		case c := <-commits:
			return c
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no commit seen", what)
		}
		return Commit{}
	}
	// Drain commits of the probe loop that raced the subscription.
	drain := func() {
		for {
			select {
			case <-commits:
			default:
				return
			}
		}
	}
	drain()

	n.nft(t, "add", "table", "ip", "other")
	if c := next("foreign table"); c.Touched || c.Own || c.Process != "nft" {
		t.Errorf("foreign table: %+v, want untouched, not own, by nft", c)
	}
	// An Apply through another Conn of this process is seen, as this process's own.
	want := ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, ruleset.Options{RandomFully: true})
	other := NewConn(n.conn.netns)
	defer other.Close()
	mustApply(t, other, want, ruleset.Rebuilt)
	if c := next("own apply"); !c.Touched || !c.Own {
		t.Errorf("own apply: %+v, want touched and own", c)
	}
	// An Apply through the monitor's own Conn is not: the monitor does not listen while it commits, so the
	// next commit seen is the foreign one that follows.
	mustApply(t, n.conn, ruleset.Compile(config.Config{NonMasqueradeCIDRs: rfc1918[:2]}, ruleset.Options{RandomFully: true}), ruleset.Updated)
	n.nft(t, "delete", "element", "inet", ruleset.TableName, ruleset.Set4Name, "{ 10.0.0.0/8 }")
	if c := next("foreign element delete"); !c.Touched || c.Own {
		t.Errorf("foreign element delete: %+v, want touched, not own", c)
	}
	n.nft(t, "flush", "ruleset")
	if c := next("flush ruleset"); !c.Touched || c.Own {
		t.Errorf("flush ruleset: %+v, want touched, not own", c)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Monitor after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Monitor did not return after cancel")
	}
}

// TestMonitorMissesNothingWhileDeaf: a foreign commit that lands while the monitor is deaf to the Conn's own
// Apply (here, `nft delete table` racing a large apply) is not lost: either Apply sees the generation moved
// and writes the table again, or the monitor, listening again, reports the commit. Before the batch asked
// for the generation's echo properly, the race left the table deleted and the monitor silent.
func TestMonitorMissesNothingWhileDeaf(t *testing.T) {
	n := newNetns(t)
	var cidrs []config.CIDR
	for i := range 50_000 {
		cidrs = append(cidrs, config.CIDR{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{11 + byte(i>>16), byte(i >> 8), byte(i), 0}), 25)})
	}
	want := ruleset.Compile(config.Config{NonMasqueradeCIDRs: cidrs}, ruleset.Options{RandomFully: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	foreign := make(chan Commit, 100)
	go n.conn.Monitor(ctx, func(c Commit) {
		if !c.Own {
			foreign <- c
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; { // until the monitor is subscribed
		n.nft(t, "add", "table", "ip", "probe")
		select {
		case <-foreign:
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("monitor reported no commit")
			}
			continue
		}
		break
	}
	for round, delay := range []string{"0.01", "0.05", "0.1", "0.2"} {
		n.nft(t, "delete", "table", "ip", "probe") // a table deletion nft can make while masqd's is missing
		n.nft(t, "add", "table", "ip", "probe")
		for len(foreign) > 0 {
			<-foreign
		}
		_ = n.conn.Delete()
		n.conn.Forget()
		race := exec.Command("ip", "netns", "exec", n.name, "sh", "-c", "sleep "+delay+"; nft delete table inet "+ruleset.TableName)
		if err := race.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := n.conn.Apply(want); err != nil {
			t.Fatal(err)
		}
		raced := race.Wait() == nil // false: it ran before the table existed, and found none
		_, present, err := n.conn.Read()
		if err != nil {
			t.Fatal(err)
		}
		if present || !raced {
			continue
		}
		select {
		case c := <-foreign:
			if !c.Touched {
				t.Errorf("round %d: the deletion was reported as not touching the table: %+v", round, c)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the table was deleted after Apply and the monitor did not report it", round)
		}
	}
}
