package config

import "net/netip"

// Default returns the configuration used when there is no file, or for every key a file leaves out.
//
// NonMasqueradeCIDRs holds the RFC 1918 ranges (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16) and, with
// opts.NoMasqAllReservedRanges, every other reserved IPv4 range after them, in ip-masq-agent's order. Link-local
// ranges are not listed: MasqLinkLocal and MasqLinkLocalIPv6 are false, which keeps them non-masquerade. The
// CIDRs carry the zero Source and Files is empty.
func Default(opts Options) Config {
	ranges := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
	if opts.NoMasqAllReservedRanges {
		ranges = append(ranges,
			"100.64.0.0/10",   // RFC 6598, carrier-grade NAT
			"192.0.0.0/24",    // RFC 6890, IETF protocol assignments
			"192.0.2.0/24",    // RFC 5737, TEST-NET-1
			"192.88.99.0/24",  // RFC 7526, 6to4 relay anycast
			"198.18.0.0/15",   // RFC 2544, benchmarking
			"198.51.100.0/24", // RFC 5737, TEST-NET-2
			"203.0.113.0/24",  // RFC 5737, TEST-NET-3
			"240.0.0.0/4",     // RFC 5735, reserved
		)
	}
	cidrs := make([]CIDR, len(ranges))
	for i, r := range ranges {
		cidrs[i] = CIDR{Prefix: netip.MustParsePrefix(r)}
	}
	return Config{
		NonMasqueradeCIDRs: cidrs,
		CIDRLimit:          DefaultCIDRLimit,
		ResyncInterval:     DefaultResyncInterval,
		EnableIPv6:         opts.EnableIPv6,
	}
}
