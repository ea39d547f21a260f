package nft

// generation returns the kernel's nftables ruleset generation (see nlSock.generation), on Apply's socket.
func (c *Conn) generation() (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.socket()
	if err != nil {
		return 0, err
	}
	return s.generation()
}
