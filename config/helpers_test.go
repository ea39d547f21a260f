package config

import (
	"net/netip"

	"github.com/google/go-cmp/cmp"
)

// file is the name the tests give Parse; the path ip-masq-agent reads in a pod.
const file = "/etc/config/ip-masq-agent"

// at is a CIDR written on line of file.
func at(prefix string, line int) CIDR {
	return CIDR{Prefix: netip.MustParsePrefix(prefix), Source: Source{File: file, Line: line}}
}

// builtin is a CIDR that comes from the defaults.
func builtin(prefix string) CIDR { return CIDR{Prefix: netip.MustParsePrefix(prefix)} }

// rfc1918 is the default nonMasqueradeCIDRs, written out.
func rfc1918() []CIDR {
	return []CIDR{builtin("10.0.0.0/8"), builtin("172.16.0.0/12"), builtin("192.168.0.0/16")}
}

// allReserved is the default nonMasqueradeCIDRs with --nomasq-all-reserved-ranges, written out.
func allReserved() []CIDR {
	return append(rfc1918(),
		builtin("100.64.0.0/10"), builtin("192.0.0.0/24"), builtin("192.0.2.0/24"), builtin("192.88.99.0/24"),
		builtin("198.18.0.0/15"), builtin("198.51.100.0/24"), builtin("203.0.113.0/24"), builtin("240.0.0.0/4"))
}

// diff returns "" when want and got are equal, and a -want +got diff otherwise. netip.Prefix has unexported
// fields, so it is compared with ==.
func diff(want, got any) string {
	return cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }))
}
