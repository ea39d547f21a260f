package config

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// key is one of the keys a file may set.
type key int

const (
	keyNonMasqueradeCIDRs key = iota
	keyMasqueradeCIDRs
	keyCIDRLimit
	keyMasqLinkLocal
	keyMasqLinkLocalIPv6
	keyResyncInterval
	keyEnableIPv6
	keyClusterCIDRs
	keyMasqueradeSourceCIDRs
	keyEgressInterfaces
	keySNATTo
	keySNATToInterface
	keyFlushConntrack
	numKeys
)

// String returns the key as documented (and as upstream's JSON tags spell it).
func (k key) String() string {
	switch k {
	case keyNonMasqueradeCIDRs:
		return "nonMasqueradeCIDRs"
	case keyMasqueradeCIDRs:
		return "masqueradeCIDRs"
	case keyCIDRLimit:
		return "cidrLimit"
	case keyMasqLinkLocal:
		return "masqLinkLocal"
	case keyMasqLinkLocalIPv6:
		return "masqLinkLocalIPv6"
	case keyResyncInterval:
		return "resyncInterval"
	case keyEnableIPv6:
		return "enableIPv6"
	case keyClusterCIDRs:
		return "clusterCIDRs"
	case keyMasqueradeSourceCIDRs:
		return "masqueradeSourceCIDRs"
	case keyEgressInterfaces:
		return "egressInterfaces"
	case keySNATTo:
		return "snatTo"
	case keySNATToInterface:
		return "snatToInterface"
	case keyFlushConntrack:
		return "flushConntrack"
	default:
		return fmt.Sprintf("key(%d)", int(k))
	}
}

// lookupKey finds the key name matches the way encoding/json matches a field: without regard to case.
func lookupKey(name string) (key, bool) {
	for k := range numKeys {
		if strings.EqualFold(name, k.String()) {
			return k, true
		}
	}
	return 0, false
}

// foldKey returns a string that is equal for two names exactly when strings.EqualFold says they are equal:
// each rune is replaced by the smallest rune of its case-folding orbit.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		smallest := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			smallest = min(smallest, f)
		}
		b.WriteRune(smallest)
	}
	return b.String()
}

// normalizeName lower-cases name and drops dashes and underscores, so that flag spellings
// (enable-ipv6, --enable-ipv6, enable_ipv6) and key spellings (enableIPv6) compare equal.
func normalizeName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' {
			return -1
		}
		return unicode.ToLower(r)
	}, name)
}

// flagHint reports whether name is a command-line flag written as a key, and what to do instead.
func flagHint(name string) (msg string, ok bool) {
	const notKey = "is a command-line flag, not a config key; ignored"
	switch normalizeName(name) {
	case "enableipv6":
		return "--enable-ipv6 " + notKey + "; in the file write enableIPv6: true, or pass --enable-ipv6", true
	case "resyncinterval":
		return "--resync-interval " + notKey + "; in the file write resyncInterval with a duration, e.g. resyncInterval: 60s", true
	case "masqchain":
		return "--masq-chain " + notKey + "; pass it on the command line", true
	case "nomasqallreservedranges":
		return "--nomasq-all-reserved-ranges " + notKey + "; pass it on the command line, or list the ranges under nonMasqueradeCIDRs", true
	case "randomfully":
		return "--random-fully " + notKey + "; pass it on the command line", true
	case "toports":
		return "--to-ports " + notKey + "; pass it on the command line", true
	case "clustercidr":
		return "--cluster-cidr " + notKey + "; pass it on the command line, or list the pod ranges under clusterCIDRs", true
	}
	return "", false
}

// unknownKeyMsg is the warning for a key that is neither a config key nor a flag.
func unknownKeyMsg(name string) string {
	if k, ok := suggestKey(name); ok {
		return fmt.Sprintf("unknown key, ignored; did you mean %s?", k)
	}
	return "unknown key, ignored"
}

// suggestKey returns the known key nearest to name by edit distance (ignoring case, dashes and underscores),
// when it is close enough to be a likely typo: at most a third of the known key's length.
func suggestKey(name string) (key, bool) {
	n := normalizeName(name)
	if n == "" {
		return 0, false
	}
	runes := utf8.RuneCountInString(n)
	best, bestDist, bestShared := key(0), -1, 0
	for k := range numKeys {
		kn := strings.ToLower(k.String())
		if abs(runes-len(kn)) > len(kn)/3 {
			continue // the distance is at least the difference in length
		}
		d := editDistance(n, kn)
		if d > len(kn)/3 || d >= runes {
			continue
		}
		// On a tie, the key sharing more of its start and end wins: masqLinkLocalv6 is masqLinkLocalIPv6.
		shared := sharedEnds(n, kn)
		if bestDist < 0 || d < bestDist || d == bestDist && shared > bestShared {
			best, bestDist, bestShared = k, d, shared
		}
	}
	return best, bestDist >= 0
}

// sharedEnds is the length of the common prefix plus that of the common suffix of a and b, in bytes.
func sharedEnds(a, b string) int {
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	return p + s
}

// editDistance is the Levenshtein distance between a and b, counted in runes.
func editDistance(a, b string) int {
	ar, br := []rune(a), []rune(b)
	prev := make([]int, len(br)+1)
	cur := make([]int, len(br)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ar); i++ {
		cur[0] = i
		for j := 1; j <= len(br); j++ {
			cost := 1
			if ar[i-1] == br[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(br)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
