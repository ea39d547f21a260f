package nft

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/masqd/masqd/ruleset"
)

// Commit is one committed nftables transaction, anyone's, as Monitor sees it.
type Commit struct {
	Gen     uint32 // the generation the commit created
	PID     uint32 // the committing thread (the kernel reports a thread ID), 0 when it did not say
	Process string // its command name
	// Own says whether this process committed it (the thread is one of ours).
	Own bool
	// Touched says whether the commit changed anything in table inet masqd.
	Touched bool
	// Missed says that commits were made that the monitor could not see (before it listened), up to
	// generation Gen: only a full compare can tell what they did.
	Missed bool
}

// Monitor calls fn for every nftables commit in the Conn's network namespace, except the Conn's own Applies,
// until ctx is done (it then returns nil) or receiving fails. A receive error, such as ENOBUFS when notifications came faster than
// they were read, means commits may have been missed: the caller should Forget, compare the kernel in full
// and call Monitor again. fn runs on Monitor's goroutine and should return quickly.
func (c *Conn) Monitor(ctx context.Context, fn func(Commit)) (err error) {
	defer func() { err = privilege(err) }()
	// A large commit (masqd's own cold apply of 100k prefixes) notifies about every element; give the
	// socket room for that rather than overflow.
	nl, err := subscriber(c.netns, 64<<20)
	if err != nil {
		return err
	}
	defer nl.Close()
	// Join between two Applies, never during one: Apply leaves the group while it commits (see
	// applyUnheard), so the monitor never sees masqd's own commits through this Conn, and an Apply that
	// began before the monitor joined would otherwise be heard.
	c.mu.Lock()
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("nftables monitor: join group: %w", err)
	}
	c.monMu.Lock()
	if c.monitors == nil {
		c.monitors = map[*netlink.Conn]bool{}
	}
	c.monitors[nl] = true
	c.monMu.Unlock()
	known, knownGen := c.last != nil, c.lastGen
	c.mu.Unlock()
	defer func() {
		c.monMu.Lock()
		delete(c.monitors, nl)
		c.monMu.Unlock()
	}()
	// Commits made before the monitor listened could not be seen: when the Conn's memory predates
	// some, say so.
	if gen, err := c.Generation(); err != nil {
		return err
	} else if known && gen != knownGen {
		fn(Commit{Gen: gen, Missed: true})
	}

	var cur Commit
	return receive(ctx, nl, func(n Notification) {
		switch {
		case n.Type == unix.NFT_MSG_NEWGEN:
			cur.Gen, cur.PID, cur.Process = n.Commit()
			cur.Own = cur.PID != 0 && ownThread(cur.PID)
			fn(cur)
			cur = Commit{}
		case !cur.Touched && n.Object() && n.Family == unix.NFPROTO_INET && n.Table() == ruleset.TableName:
			// A flush of the whole ruleset arrives as table deletions, so it is caught here too. masqd's
			// own cold apply notifies 200,000 elements: once one message names the table, the rest need
			// not be decoded.
			cur.Touched = true
		}
	})
}

// Notification is one message of the kernel's nftables notification group: a table, chain, rule, set,
// element, object or flowtable added or deleted, or NFT_MSG_NEWGEN, which ends every commit.
type Notification struct {
	Type   uint16 // NFT_MSG_*
	Family uint8  // NFPROTO_* of the object
	attrs  []byte
}

// Object reports whether n adds or deletes something (every type but NEWGEN and the replies to reads).
func (n Notification) Object() bool {
	switch n.Type {
	case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN,
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE, unix.NFT_MSG_NEWSET, unix.NFT_MSG_DELSET,
		unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM, unix.NFT_MSG_NEWOBJ, unix.NFT_MSG_DELOBJ,
		unix.NFT_MSG_NEWFLOWTABLE, unix.NFT_MSG_DELFLOWTABLE:
		return true
	}
	return false
}

// Table is the name of the table an Object notification belongs to: every one of them names it in
// attribute 1 (NFTA_*_TABLE or NFTA_TABLE_NAME).
func (n Notification) Table() string { return tableAttr(n.attrs) }

// Commit decodes a NEWGEN notification: the generation the commit created and the thread and command
// that made it.
func (n Notification) Commit() (gen, pid uint32, process string) { return parseGen(n.attrs) }

// Listen calls fn for every nftables notification in the network namespace netnsFD (an open namespace
// file, or 0 for the caller's), anyone's commits included, until ctx is done (it then returns nil) or
// receiving fails (ENOBUFS: notifications were lost). It is for watchers that want the messages
// themselves, such as tests that tell an in-place update from a table replaced; the agent uses
// Conn.Monitor. The socket has room for a 100,000-prefix swap (400,000 element messages). Needs
// CAP_NET_ADMIN in netnsFD's namespace, and the right to enter it when netnsFD is not 0.
func Listen(ctx context.Context, netnsFD int, fn func(Notification)) (err error) {
	defer func() { err = privilege(err) }()
	nl, err := subscriber(netnsFD, 256<<20)
	if err != nil {
		return err
	}
	defer nl.Close()
	if err := nl.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("nftables monitor: join group: %w", err)
	}
	return receive(ctx, nl, fn)
}

// subscriber dials a netfilter socket in netnsFD with a receive buffer of rcvbuf bytes (when the kernel
// allows it), not yet in the notification group.
func subscriber(netnsFD, rcvbuf int) (*netlink.Conn, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFD})
	if err != nil {
		return nil, fmt.Errorf("nftables monitor: dial netlink: %w", err)
	}
	if raw, err := nl.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}
		})
	}
	return nl, nil
}

// receive reads nl until ctx is done (nil) or a receive fails, and calls fn for each nftables message.
func receive(ctx context.Context, nl *netlink.Conn, fn func(Notification)) error {
	stop := context.AfterFunc(ctx, func() { _ = nl.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		msgs, err := nl.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("nftables monitor: receive: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
				continue
			}
			fn(Notification{Type: uint16(m.Header.Type & 0xff), Family: m.Data[0], attrs: m.Data[4:]})
		}
	}
}

func tableAttr(b []byte) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == 1 {
			return string(bytes.TrimRight(ad.Bytes(), "\x00"))
		}
	}
	return ""
}

func parseGen(b []byte) (gen, pid uint32, comm string) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, 0, ""
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_GEN_ID:
			gen = binary.BigEndian.Uint32(ad.Bytes())
		case unix.NFTA_GEN_PROC_PID:
			pid = binary.BigEndian.Uint32(ad.Bytes())
		case unix.NFTA_GEN_PROC_NAME:
			comm = string(bytes.TrimRight(ad.Bytes(), "\x00"))
		}
	}
	return gen, pid, comm
}

// Advance tells Conn that the commit that created generation gen did not touch masqd's table. If Conn's
// memory of the kernel was true just before that commit it is still true after it, and the next Apply need
// not read the table. Only Monitor's caller, which sees every commit in order, can say this.
func (c *Conn) Advance(gen uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil && c.lastGen+1 == gen {
		c.lastGen = gen
	}
}

// ownThread reports whether tid is a thread of this process.
func ownThread(tid uint32) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.FormatUint(uint64(tid), 10))
	return err == nil
}
