package status

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/masqd/masqd/ruleset"
)

// Host is what the operator commands (status, explain) read from the machine they run on. Tests replace it.
type Host struct {
	// Kernel reads table inet masqd in this network namespace (nft.Conn.Read; needs CAP_NET_ADMIN).
	Kernel func() (ruleset.Ruleset, bool, error)
	// IPTables names the iptables variants ("iptables-nft", "iptables-legacy") whose nat table holds chain;
	// nil means none are looked at.
	IPTables func(chain string) []string
	// Addrs lists the addresses of this host's interfaces.
	Addrs func() ([]netip.Addr, error)
	// Interface resolves snatToInterface as the agent does (agent.InterfaceAddrs, wired by the caller); nil
	// means it is not resolved, and its families are compared as masqueraded.
	Interface func(name string) (ruleset.InterfaceAddrs, error)
	// Get fetches url, as the agent's HTTP client.
	Get func(url string) (code int, body []byte, err error)
	Now func() time.Time
}

// NodeHost is the real host: this network namespace's kernel and interfaces, HTTP with a short timeout.
// Reading the kernel needs Linux and CAP_NET_ADMIN; elsewhere Kernel says so and IPTables finds nothing.
func NodeHost() Host {
	client := &http.Client{Timeout: 2 * time.Second}
	return Host{
		Kernel:   readKernel,
		IPTables: iptablesHolding,
		Addrs: func() ([]netip.Addr, error) {
			ifaddrs, err := net.InterfaceAddrs()
			if err != nil {
				return nil, err
			}
			var out []netip.Addr
			for _, a := range ifaddrs {
				if n, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok {
						out = append(out, ip.Unmap())
					}
				}
			}
			return out, nil
		},
		Get: func(url string) (int, []byte, error) {
			resp, err := client.Get(url)
			if err != nil {
				return 0, nil, err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			return resp.StatusCode, body, err
		},
		Now: time.Now,
	}
}

// PrivilegeHint explains a permission error from the kernel.
func PrivilegeHint(err error) string {
	if errors.Is(err, os.ErrPermission) {
		return " (reading nftables needs CAP_NET_ADMIN: run as root on the node)"
	}
	return ""
}
