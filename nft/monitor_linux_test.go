package nft

import (
	"context"
	"testing"
	"time"

	"github.com/masqd/masqd/config"
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
	want := Compile(config.Config{NonMasqueradeCIDRs: rfc1918}, Options{RandomFully: true})
	mustApply(t, n.conn, want, Rebuilt)
	if c := next("own apply"); !c.Touched || !c.Own {
		t.Errorf("own apply: %+v, want touched and own", c)
	}
	n.nft(t, "delete", "element", "inet", TableName, Set4Name, "{ 10.0.0.0/8 }")
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
