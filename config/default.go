package config

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
)

// Default returns the configuration used when there is no file, or for every key a file leaves out.
//
// NonMasqueradeCIDRs holds the RFC 1918 ranges (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16) and, with
// opts.NoMasqAllReservedRanges, every other reserved IPv4 range after them, in ip-masq-agent's order. Link-local
// ranges are not listed: MasqLinkLocal and MasqLinkLocalIPv6 are false, which keeps them non-masquerade. The
// CIDRs carry the zero Source and Files is empty. ClusterCIDRs are opts.ClusterCIDRs (IPv6 ones only with
// opts.EnableIPv6), with the Source of the flag --cluster-cidr.
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
		FlushConntrack:     opts.FlushConntrack,
		ClusterCIDRs:       withFlagCIDRs(nil, opts.ClusterCIDRs, opts.EnableIPv6),
	}
}

// ClusterCIDRFlag is the command-line flag whose prefixes Options.ClusterCIDRs holds: kube-proxy's name.
const ClusterCIDRFlag = "--cluster-cidr"

// withFlagCIDRs returns listed followed by each prefix of flag that listed does not hold (IPv6 ones only
// when with6), sourced to ClusterCIDRFlag: the key clusterCIDRs and the flag add up.
func withFlagCIDRs(listed []CIDR, flag []netip.Prefix, with6 bool) []CIDR {
	out := listed
	for _, p := range flag {
		if p.Addr().Is6() && !with6 || slices.ContainsFunc(out, func(c CIDR) bool { return c.Prefix == p }) {
			continue
		}
		out = append(out, CIDR{Prefix: p, Source: Source{Flag: ClusterCIDRFlag}})
	}
	return out
}

// ParseClusterCIDRs reads one value of --cluster-cidr as kube-proxy takes it: one prefix or several
// separated by commas, IPv4 and IPv6 (dual-stack). Each must be a valid CIDR aligned to its length; the
// error is an *Error whose Source is the flag, saying what to write.
func ParseClusterCIDRs(value string) ([]netip.Prefix, error) {
	b := &builder{decoder: &decoder{}}
	b.cfg.EnableIPv6 = true // whether IPv6 is on is known only once the file is read
	var out []netip.Prefix
	for i, text := range strings.Split(value, ",") {
		text = strings.TrimSpace(text)
		if text == "" {
			return nil, &Error{Source: Source{Flag: ClusterCIDRFlag}, Value: value, Msg: "empty prefix",
				Fix: "give prefixes separated by commas, e.g. --cluster-cidr=10.64.0.0/14,fd00:10:64::/56"}
		}
		c, err := b.cidr(ClusterCIDRFlag, i, item{text: text})
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.Source, e.Key = Source{Flag: ClusterCIDRFlag}, ""
			}
			return nil, err
		}
		out = append(out, c.Prefix)
	}
	return out, nil
}
