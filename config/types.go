package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Default values, as in ip-masq-agent.
const (
	DefaultPath           = "/etc/config/ip-masq-agent"
	DefaultCIDRLimit      = 64
	DefaultResyncInterval = 60 * time.Second
	// MaxFileSize bounds a config file Load reads. A file on a bare VM may list 100,000 prefixes and more
	// (about 2.5 MB a family at /25s); 64 MiB is far beyond any real list, and bounds the memory a mistaken
	// path (a log, an image) can cost. A ConfigMap is bounded by the Kubernetes API itself (1 MiB).
	MaxFileSize = 64 << 20
)

// The ConfigMap ip-masq-agent reads, kube-system/ip-masq-agent, and its data keys in order of preference:
// "config" is the key ip-masq-agent's documentation creates (kubectl create configmap --from-file=config),
// and the DaemonSet mounts it as DefaultPath; "ip-masq-agent" is the name its volume gives the file.
const (
	ConfigMapNamespace = "kube-system"
	ConfigMapName      = "ip-masq-agent"
	ConfigMapKey       = "config"
	ConfigMapAltKey    = "ip-masq-agent"
)

// Options are the command-line facts that change how a file is read.
type Options struct {
	// NoMasqAllReservedRanges makes the default nonMasqueradeCIDRs every reserved range, not only RFC 1918.
	NoMasqAllReservedRanges bool
	// EnableIPv6 allows IPv6 prefixes (--enable-ipv6). The file's enableIPv6 key can turn it on, never off.
	EnableIPv6 bool
	// ClusterCIDRs are the pod ranges given with --cluster-cidr (ParseClusterCIDRs), added to every config's
	// ClusterCIDRs. IPv6 ones are left out while IPv6 is off: there is then no IPv6 rule to keep them from.
	// Nil: none.
	ClusterCIDRs []netip.Prefix
	// FlushConntrack turns on the conntrack flush (--flush-conntrack) for every config: the file's
	// flushConntrack key can turn it on, never off.
	FlushConntrack bool
}

// equal reports whether o and p read a file the same way.
func (o Options) equal(p Options) bool {
	return o.NoMasqAllReservedRanges == p.NoMasqAllReservedRanges && o.EnableIPv6 == p.EnableIPv6 &&
		slices.Equal(o.ClusterCIDRs, p.ClusterCIDRs) && o.FlushConntrack == p.FlushConntrack
}

// Source says where a value came from. The zero Source means a built-in default.
type Source struct {
	File string // file name as given to Parse; "" for a default or a flag
	Line int    // 1-based line in File; 0 when unknown
	// Flag is the command-line flag that gave the value, e.g. "--cluster-cidr"; File and Line are then zero.
	Flag string
}

func (s Source) String() string {
	switch {
	case s.Flag != "":
		return s.Flag
	case s.File == "":
		return "default"
	case s.Line == 0:
		return s.File
	default:
		return fmt.Sprintf("%s line %d", s.File, s.Line)
	}
}

// CIDR is one validated prefix and where it was written.
type CIDR struct {
	Prefix netip.Prefix // always masked (aligned); never an IPv4-mapped IPv6 prefix
	Source Source
}

// Interface is one validated network interface name and where it was written.
type Interface struct {
	Name   string
	Source Source
}

// Address is one validated address and where it was written.
type Address struct {
	Addr   netip.Addr // never IPv4-mapped, never zoned
	Source Source
}

// SNATAddrs are the snatTo addresses by family; the zero Addr where a family has none.
func (c Config) SNATAddrs() (v4, v6 netip.Addr) {
	for _, a := range c.SNATTo {
		if a.Addr.Is4() {
			v4 = a.Addr
		} else {
			v6 = a.Addr
		}
	}
	return v4, v6
}

// Config is a validated configuration. The zero value is not useful; start from Default or Parse.
type Config struct {
	// NonMasqueradeCIDRs are the destinations whose traffic keeps the pod source address, in file order.
	// Link-local ranges are not listed here; they follow MasqLinkLocal and MasqLinkLocalIPv6.
	NonMasqueradeCIDRs []CIDR
	// MasqueradeCIDRs are destinations masqueraded even inside a non-masquerade range (masqd's own key).
	MasqueradeCIDRs []CIDR
	// ClusterCIDRs are the cluster's pod ranges (masqd's key clusterCIDRs, then --cluster-cidr's prefixes not
	// already listed): non-masquerade destinations like NonMasqueradeCIDRs, not counted against CIDRLimit.
	ClusterCIDRs []CIDR
	// MasqueradeSourceCIDRs restrict masquerading to traffic from these sources (masqd's key
	// masqueradeSourceCIDRs, e.g. the pod ranges): traffic from any other source (the node's other
	// interfaces, host-network workloads) keeps its address. Empty: every source, as upstream. A family
	// with no prefix listed masquerades nothing once the list is not empty.
	MasqueradeSourceCIDRs []CIDR
	// EgressInterfaces restrict masquerading to traffic leaving through these interfaces (masqd's key
	// egressInterfaces, Cilium's egress-masquerade-interfaces), sorted by name, each once. Empty: any
	// interface, as upstream.
	EgressInterfaces []Interface
	// SNATTo are the addresses masqueraded traffic leaves with instead of the outgoing interface's (masqd's
	// key snatTo): at most one per family, IPv4 first. A family without one keeps masquerade.
	SNATTo []Address
	// SNATToInterface names the interface whose primary address masqueraded traffic leaves with (masqd's
	// key snatToInterface); the agent resolves it. Name "": not set. Never set together with SNATTo.
	SNATToInterface Interface
	CIDRLimit       int
	// MasqLinkLocal masquerades 169.254.0.0/16; false keeps it non-masquerade, as upstream.
	MasqLinkLocal bool
	// MasqLinkLocalIPv6 masquerades fe80::/10; false keeps it non-masquerade, as upstream.
	MasqLinkLocalIPv6 bool
	ResyncInterval    time.Duration
	// EnableIPv6 is Options.EnableIPv6 or the file's enableIPv6.
	EnableIPv6 bool
	// FlushConntrack deletes, right after a commit that changed the non-masquerade destinations, the
	// conntrack entries from non-local sources to the destinations that changed verdict, so that existing
	// flows take the new verdict: Options.FlushConntrack (--flush-conntrack) or the file's flushConntrack
	// (masqd's own key). Off by default.
	FlushConntrack bool
	// Files lists the files the config was read from; empty for pure defaults.
	Files []string
}

// Equal reports whether c and d are the same configuration, where each prefix was written included. A nil
// list and an empty one are equal. It is reflect.DeepEqual without the reflection, which costs tens of
// milliseconds for a config of 100,000 prefixes.
func (c Config) Equal(d Config) bool {
	return slices.Equal(c.NonMasqueradeCIDRs, d.NonMasqueradeCIDRs) &&
		slices.Equal(c.MasqueradeCIDRs, d.MasqueradeCIDRs) &&
		slices.Equal(c.ClusterCIDRs, d.ClusterCIDRs) &&
		slices.Equal(c.MasqueradeSourceCIDRs, d.MasqueradeSourceCIDRs) &&
		slices.Equal(c.EgressInterfaces, d.EgressInterfaces) &&
		slices.Equal(c.SNATTo, d.SNATTo) && c.SNATToInterface == d.SNATToInterface &&
		c.CIDRLimit == d.CIDRLimit &&
		c.MasqLinkLocal == d.MasqLinkLocal &&
		c.MasqLinkLocalIPv6 == d.MasqLinkLocalIPv6 &&
		c.ResyncInterval == d.ResyncInterval &&
		c.EnableIPv6 == d.EnableIPv6 &&
		c.FlushConntrack == d.FlushConntrack &&
		slices.Equal(c.Files, d.Files)
}

// Warning is a problem that does not stop the config from being used, such as an unknown key.
type Warning struct {
	Source Source
	Key    string
	Msg    string
}

func (w Warning) String() string { return fmt.Sprintf("%s: %s: %s", w.Source, w.Key, w.Msg) }

// Error is a config that cannot be used. It names where, what and how to fix it.
type Error struct {
	Source Source
	Key    string // the key, with a list index where it applies: "nonMasqueradeCIDRs[2]"; "" for the whole file
	Value  string // the offending value as written; "" when not applicable
	Msg    string // what is wrong
	Fix    string // what to write instead; "" when there is nothing obvious
	Err    error  // underlying cause, if any
}

func (e *Error) Error() string {
	s := e.Source.String()
	if e.Source.File == "" && e.Source.Flag == "" {
		s = "config"
	}
	if e.Key != "" {
		s += ": " + e.Key
	}
	if e.Value != "" {
		s += " " + quoteShort(e.Value)
	}
	s += ": " + shorten(e.Msg, 4*maxQuoted)
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// maxQuoted bounds how much of a bad value an error quotes: errors are logged and posted as Kubernetes
// Events, and a value may be a megabyte long.
const maxQuoted = 64

// quoteShort quotes v, cut to maxQuoted bytes with an ellipsis and the full length when it is longer.
func quoteShort(v string) string {
	if len(v) <= maxQuoted {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(strings.ToValidUTF8(v[:maxQuoted], "")), len(v))
}

// shorten cuts s to about n bytes, with an ellipsis.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// Location is FILE:LINE, or FILE when the line is not known, or "config" for a built-in default: where a
// finding is, as compilers print it.
func (s Source) Location() string {
	switch {
	case s.Flag != "":
		return s.Flag
	case s.File == "":
		return "config"
	case s.Line <= 0:
		return s.File
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// WarningLines words warnings as FILE:LINE: warning: KEY: MESSAGE, and adds one when the config file is a
// Kubernetes manifest rather than the config inside it.
func WarningLines(warnings []Warning) []string {
	var lines []string
	manifestKeys := 0
	for _, wn := range warnings {
		lines = append(lines, fmt.Sprintf("%s: warning: %s: %s", wn.Source.Location(), wn.Key, wn.Msg))
		if strings.EqualFold(wn.Key, "apiVersion") || strings.EqualFold(wn.Key, "kind") {
			manifestKeys++
		}
	}
	if manifestKeys == 2 {
		lines = append(lines, fmt.Sprintf("%s: warning: this is a Kubernetes manifest, not a config: "+
			"ip-masq-agent and masqd read its keys as config keys, ignore them, and use the defaults; "+
			"give --config the text under data.config, and check the manifest with masqd check",
			warnings[0].Source.File))
	}
	return lines
}
