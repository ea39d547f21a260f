package agent

import (
	"github.com/masqd/masqd/conntrack"
	"github.com/masqd/masqd/ruleset"
)

// Conntrack is the Flusher of the caller's network namespace: conntrack.Conn, with this host's addresses
// read at each flush (an address added since start is the host's too).
type Conntrack struct{ conn *conntrack.Conn }

// NewConntrack returns the Flusher of the caller's network namespace.
func NewConntrack() *Conntrack { return &Conntrack{conn: conntrack.NewConn(0)} }

func (c *Conntrack) Flush(flipped4, flipped6 []ruleset.Interval) (deleted4, deleted6 int, err error) {
	local, err := conntrack.HostAddrs()
	if err != nil {
		return 0, 0, err
	}
	r, err := c.conn.Flush(flipped4, flipped6, local)
	return r.Deleted4, r.Deleted6, err
}
