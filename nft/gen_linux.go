package nft

// Generation returns the kernel's nftables ruleset generation in the Conn's namespace: the number every
// commit, anyone's, increments (see nlSock.generation). Needs CAP_NET_ADMIN there.
func (c *Conn) Generation() (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.socket()
	if err != nil {
		return 0, privilege(err)
	}
	return s.generation()
}
