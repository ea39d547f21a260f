//go:build linux

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"

	"github.com/masqd/masqd/internal/testenv"
)

// udpFlow is one long-lived UDP flow from the pod: one socket, so one source port and one conntrack entry
// for its whole life, sending a datagram every 5 ms; the echo server's replies say which source it saw.
type udpFlow struct {
	name  string
	dst   netip.Addr
	sport uint16
	conn  *net.UDPConn

	mu    sync.Mutex
	seen  []sourceAt // every reply, in order
	errs  []string   // write errors (other than a refused port, while the path changes)
	done  chan struct{}
	ended chan struct{}
}

type sourceAt struct {
	at  time.Time
	src netip.Addr
}

// startUDPFlow opens the flow's socket in the pod namespace (it stays there) and starts sending.
func startUDPFlow(t *testing.T, lab *Lab, name string, sport uint16, dst netip.Addr) *udpFlow {
	t.Helper()
	_, ports := lab.echoFor(dst)
	f := &udpFlow{name: name, dst: dst, sport: sport, done: make(chan struct{}), ended: make(chan struct{})}
	err := lab.Pod.Do(func() (err error) {
		f.conn, err = net.DialUDP("udp", &net.UDPAddr{Port: int(sport)}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(ports.udp))))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	go f.receive()
	go f.send()
	t.Cleanup(func() {
		close(f.done)
		f.conn.Close()
		<-f.ended
	})
	return f
}

func (f *udpFlow) send() {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-tick.C:
			if _, err := f.conn.Write([]byte("flow")); err != nil && !strings.Contains(err.Error(), "refused") {
				f.mu.Lock()
				f.errs = append(f.errs, err.Error())
				f.mu.Unlock()
			}
		}
	}
}

func (f *udpFlow) receive() {
	defer close(f.ended)
	buf := make([]byte, 100)
	for {
		n, err := f.conn.Read(buf)
		select {
		case <-f.done:
			return
		default:
		}
		if err != nil {
			continue // a refused port while the path changes; the socket is closed only at the end
		}
		src, err := parseSeen(string(buf[:n]))
		if err != nil {
			continue
		}
		f.mu.Lock()
		f.seen = append(f.seen, sourceAt{time.Now(), src})
		f.mu.Unlock()
	}
}

// firstSince is when a reply received after since first said src; ok false if none has yet.
func (f *udpFlow) firstSince(since time.Time, src netip.Addr) (at time.Time, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.seen {
		if !s.at.Before(since) && s.src == src {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// sourcesSince are the sources of the replies received after since, in order, repeats dropped; and how many
// replies there were.
func (f *udpFlow) sourcesSince(since time.Time) (srcs []netip.Addr, replies int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.seen {
		if s.at.Before(since) {
			continue
		}
		replies++
		if len(srcs) == 0 || srcs[len(srcs)-1] != s.src {
			srcs = append(srcs, s.src)
		}
	}
	return srcs, replies
}

// waitSource waits until a reply received after since says src and returns how long after since it came.
func (f *udpFlow) waitSource(t *testing.T, since time.Time, src netip.Addr, what string) time.Duration {
	t.Helper()
	var at time.Time
	waitFor(t, 10*time.Second, fmt.Sprintf("%s: the flow to %s seen from %s", what, f.dst, src), func() error {
		var ok bool
		if at, ok = f.firstSince(since, src); !ok {
			srcs, n := f.sourcesSince(since)
			return fmt.Errorf("%d replies since, from %v", n, srcs)
		}
		return nil
	})
	return at.Sub(since)
}

// entry returns the conntrack entry of the flow in the node namespace: its ID and the address its replies
// go to (the node's when masqueraded).
func (f *udpFlow) entry(t *testing.T, lab *Lab, src netip.Addr) (id uint32, replyTo netip.Addr) {
	t.Helper()
	fd, err := lab.Node.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	c, err := ct.Dial(&netlink.Config{NetNS: int(fd.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	var found []ct.Flow
	for _, fl := range flows {
		o := fl.TupleOrig
		if o.IP.SourceAddress.Unmap() == src && o.IP.DestinationAddress.Unmap() == f.dst && o.Proto.SourcePort == f.sport {
			found = append(found, fl)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d conntrack entries of the flow %s:%d -> %s in the node, want 1: %v", len(found), src, f.sport, f.dst, found)
	}
	return found[0].ID, found[0].TupleReply.IP.DestinationAddress.Unmap()
}

// TestFlushConntrack: with flushConntrack (or --flush-conntrack), long-lived UDP flows from the pod to a
// range an edit moves to nonMasqueradeCIDRs change their observed source from the node's address to the
// pod's right after the commit, and back when the edit is undone, in both families; flows to a range that
// did not flip keep their conntrack entry (the same ID) and their translation; the metric counts the
// deletions. Without the flush (the control) the flows keep their old source: the edit alone does not
// move them. The nftables backend and iptables mode alike: conntrack does not depend on the backend.
func TestFlushConntrack(t *testing.T) {
	testenv.RequireKernel(t)
	for _, tc := range []struct {
		name  string
		key   bool     // flushConntrack: true in the file
		flags []string // more agent flags
		flush bool     // entries are flushed
		v6    bool
		// restart: each edit is made while masqd is stopped; the new agent's first apply flushes what it
		// flips against what the kernel held.
		restart bool
	}{
		{name: "key", key: true, flush: true, v6: true},
		{name: "flag", flags: []string{"--flush-conntrack"}, flush: true, v6: true},
		{name: "iptables mode", key: true, flags: []string{"--mode=iptables"}, flush: true},
		{name: "edits while stopped", key: true, flush: true, v6: true, restart: true},
		{name: "control: no flush", v6: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if slices.Contains(tc.flags, "--mode=iptables") {
				requireIPTables(t)
			}
			lab := newLab(t, labOptions{})
			// A second outside range that stays masqueraded throughout.
			other, other6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8:dd::10")
			lab.Outside.Run(t, "ip", "addr", "add", "192.0.2.10/32", "dev", "lo")
			lab.Outside.Run(t, "ip", "addr", "add", "2001:db8:dd::10/128", "dev", "lo", "nodad")

			head := ""
			if tc.key {
				head = "flushConntrack: true\n"
			}
			before := head + "nonMasqueradeCIDRs: [10.0.0.0/8]\n"
			after := head + "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n"
			if tc.v6 {
				after = head + "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24, 2001:db8:ff00::/64]\n"
			}
			flags := slices.Clone(tc.flags)
			if tc.v6 {
				flags = append(flags, "--enable-ipv6")
			}
			path := writeConfig(t, before)
			a := startAgent(t, lab.Node, 9745, append([]string{"--config=" + path}, flags...)...)
			a.waitStatus("/readyz", http.StatusOK)
			wantOn := 0.0
			if tc.flush {
				wantOn = 1
			}
			if got := a.metric("masqd_conntrack_flush_enabled"); got != wantOn {
				t.Errorf("masqd_conntrack_flush_enabled = %v, want %v", got, wantOn)
			}

			type pair struct {
				flip, stay *udpFlow
				pod, node  netip.Addr
			}
			pairs := []pair{{
				flip: startUDPFlow(t, lab, "IPv4 to the flipped range", 40001, lab.Internet),
				stay: startUDPFlow(t, lab, "IPv4 to a range that stays", 40002, other),
				pod:  lab.PodIP, node: lab.NodeIP,
			}}
			if tc.v6 {
				pairs = append(pairs, pair{
					flip: startUDPFlow(t, lab, "IPv6 to the flipped range", 40003, lab.Internet6),
					stay: startUDPFlow(t, lab, "IPv6 to a range that stays", 40004, other6),
					pod:  lab.PodIP6, node: lab.NodeIP6,
				})
			}
			start := time.Now()
			stayIDs := map[*udpFlow]uint32{}
			for _, p := range pairs {
				p.flip.waitSource(t, start, p.node, "before the edit")
				p.stay.waitSource(t, start, p.node, "before the edit")
				id, replyTo := p.stay.entry(t, lab, p.pod)
				if replyTo != p.node {
					t.Fatalf("%s: conntrack entry replies to %s, want the node's %s", p.stay.name, replyTo, p.node)
				}
				stayIDs[p.stay] = id
			}

			// Each edit flips the ranges one way; deleted counts the entries flushed so far.
			deleted := 0.0
			for i, edit := range []struct {
				what     string
				config   string
				from, to func(pair) netip.Addr
			}{
				{"the range made non-masquerade", after, func(p pair) netip.Addr { return p.node }, func(p pair) netip.Addr { return p.pod }},
				{"the range made masquerade again", before, func(p pair) netip.Addr { return p.pod }, func(p pair) netip.Addr { return p.node }},
			} {
				if !tc.flush && i > 0 {
					break
				}
				ch := commits(t, lab.Node)
				if slices.Contains(tc.flags, "--mode=iptables") {
					ch = nil // iptables-legacy or -nft: the commit is seen by the chain's content instead
				}
				if tc.restart {
					a.stop(syscall.SIGTERM)
					mustWrite(t, path, edit.config)
					a = startAgent(t, lab.Node, 9745, append([]string{"--config=" + path}, flags...)...)
					deleted = 0 // a new process: its counters start again
				} else {
					mustWrite(t, path, edit.config)
				}
				var committed time.Time
				if ch != nil {
					nextCommit(t, ch, edit.what)
					committed = time.Now()
				} else {
					committed = time.Now() // the write: an upper bound on the time to the changed source
				}
				if !tc.flush {
					// The control: the flows keep the translation they had, a second and more after the commit.
					waitFor(t, 5*time.Second, "a second of replies after the commit", func() error {
						if time.Since(committed) < time.Second {
							return fmt.Errorf("%s since the commit", time.Since(committed).Round(time.Millisecond))
						}
						return nil
					})
					for _, p := range pairs {
						if srcs, n := p.flip.sourcesSince(committed); n == 0 || !slices.Equal(srcs, []netip.Addr{edit.from(p)}) {
							t.Errorf("without the flush, %s: %d replies since the commit from %v, want all from %s (the old translation)",
								p.flip.name, n, srcs, edit.from(p))
						}
					}
					continue
				}
				for _, p := range pairs {
					took := p.flip.waitSource(t, committed, edit.to(p), edit.what)
					t.Logf("%s, %s: the flow's source changed from %s to %s %s after the commit", edit.what, p.flip.name,
						edit.from(p), edit.to(p), took.Round(100*time.Microsecond))
					if took > time.Second {
						t.Errorf("%s: the source changed %s after the commit; want well under a second", p.flip.name, took)
					}
					// Once changed it stays changed.
					at, _ := p.flip.firstSince(committed, edit.to(p))
					waitFor(t, 5*time.Second, "replies after the change", func() error {
						if _, n := p.flip.sourcesSince(at.Add(50 * time.Millisecond)); n < 5 {
							return fmt.Errorf("%d replies", n)
						}
						return nil
					})
					if srcs, _ := p.flip.sourcesSince(at); !slices.Equal(srcs, []netip.Addr{edit.to(p)}) {
						t.Errorf("%s: sources after the change %v, want only %s", p.flip.name, srcs, edit.to(p))
					}
					deleted++
				}
				// The flows that did not flip keep their entry and their translation.
				for _, p := range pairs {
					id, replyTo := p.stay.entry(t, lab, p.pod)
					if id != stayIDs[p.stay] || replyTo != p.node {
						t.Errorf("%s: conntrack entry %d replying to %s, want the same entry %d replying to %s",
							p.stay.name, id, replyTo, stayIDs[p.stay], p.node)
					}
					if srcs, n := p.stay.sourcesSince(committed); n == 0 || !slices.Equal(srcs, []netip.Addr{p.node}) {
						t.Errorf("%s: %d replies since the commit from %v, want all from %s", p.stay.name, n, srcs, p.node)
					}
				}
				waitFor(t, 5*time.Second, "the deletions counted", func() error {
					got := a.metric(`masqd_conntrack_deleted_total{family="ipv4"}`) + a.metric(`masqd_conntrack_deleted_total{family="ipv6"}`)
					if got != deleted {
						return fmt.Errorf("masqd_conntrack_deleted_total = %v in all, want %v", got, deleted)
					}
					return nil
				})
			}
			if !tc.flush {
				if got := a.metric(`masqd_conntrack_deleted_total{family="ipv4"}`); got != 0 {
					t.Errorf("masqd_conntrack_deleted_total{family=ipv4} = %v without the flush, want 0", got)
				}
			}
			if got := a.metric(`masqd_conntrack_flushes_total{result="error"}`); got != 0 {
				t.Errorf("masqd_conntrack_flushes_total{result=error} = %v, want 0", got)
			}
			for _, p := range pairs {
				for _, f := range []*udpFlow{p.flip, p.stay} {
					f.mu.Lock()
					if len(f.errs) > 0 {
						t.Errorf("%s: send errors %q", f.name, f.errs)
					}
					f.mu.Unlock()
				}
			}
		})
	}
}

// TestFlushConntrackOnce: `masqd --once --flush-conntrack` flushes as the agent does: a long-lived flow to a
// range the new config makes non-masquerade leaves with the pod's address after the apply; without the flag
// it keeps the node's.
func TestFlushConntrackOnce(t *testing.T) {
	testenv.RequireKernel(t)
	for _, flush := range []bool{true, false} {
		t.Run(fmt.Sprintf("flush=%v", flush), func(t *testing.T) {
			lab := newLab(t, labOptions{})
			mustMasqd(t, lab.Node, "--config="+writeConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8]\n"), "--once")
			f := startUDPFlow(t, lab, "IPv4 to the flipped range", 40011, lab.Internet)
			start := time.Now()
			f.waitSource(t, start, lab.NodeIP, "before the apply")
			args := []string{"--config=" + writeConfig(t, "nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n"), "--once"}
			if flush {
				args = append(args, "--flush-conntrack")
			}
			mustMasqd(t, lab.Node, args...)
			applied := time.Now()
			if flush {
				took := f.waitSource(t, applied, lab.PodIP, "after --once")
				t.Logf("the flow's source changed %s after --once returned", took.Round(100*time.Microsecond))
				return
			}
			waitFor(t, 5*time.Second, "a second of replies after the apply", func() error {
				if time.Since(applied) < time.Second {
					return fmt.Errorf("%s since the apply", time.Since(applied).Round(time.Millisecond))
				}
				return nil
			})
			if srcs, n := f.sourcesSince(applied); n == 0 || !slices.Equal(srcs, []netip.Addr{lab.NodeIP}) {
				t.Errorf("without --flush-conntrack: %d replies since the apply from %v, want all from %s", n, srcs, lab.NodeIP)
			}
		})
	}
}
