package config

import "strings"

// readFast reads the shape nearly every config has, straight into a document and without a YAML decoder: a
// block mapping of keys spelled as documented, at the start of their lines; block lists of CIDRs, plain or
// quoted; true or false; whole numbers in decimal; durations such as 60s; comments and blank lines. On this
// shape YAML 1.1 leaves no choice (a plain scalar with a "/" is always a string, a duration made of digits,
// dots and the letters of its units always one too), so the document is the one decode would give. For
// anything else (another spelling, flow style, anchors, tabs, a second document, a key twice) ok is false and
// decode reads the file; FuzzFastPath holds the two together.
//
// It exists for speed: a directory of 100,000 prefixes is read in milliseconds, where a YAML decoder takes
// a large part of a second and a hundred megabytes of garbage.
func readFast(data string) (doc document, ok bool) {
	var (
		open   *list // the list whose items the following lines hold
		indent = -1  // the column of open's "-"
		seen   [numKeys]bool
	)
	for lineNo, rest := 1, data; rest != ""; lineNo++ {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if !plainASCII(line) {
			return document{}, false
		}
		text := strings.TrimLeft(line, " ")
		col := len(line) - len(text)
		switch {
		case text == "" || text[0] == '#':
			continue
		case text[0] == '-':
			if open == nil || (indent >= 0 && col != indent) || len(text) < 2 || text[1] != ' ' {
				return document{}, false
			}
			indent = col
			v, ok := value(text[2:])
			if !ok {
				return document{}, false
			}
			s, ok := cidrText(v)
			if !ok {
				return document{}, false
			}
			if open.items == nil { // room for every line that follows: one allocation per list
				open.items = make([]item, 0, strings.Count(rest, "\n")+1)
			}
			open.items = append(open.items, item{text: s, line: lineNo})
			continue
		case col != 0:
			return document{}, false
		}

		open, indent = nil, -1
		name, v, found := strings.Cut(text, ":")
		k, known := canonicalKey(name)
		if !found || !known || seen[k] || v != "" && v[0] != ' ' {
			return document{}, false
		}
		seen[k] = true
		w := where{name: name, line: lineNo}
		if v, ok = value(v); !ok {
			return document{}, false
		}
		switch k {
		case keyEgressInterfaces, keySNATTo, keySNATToInterface: // names and addresses: the full reader's
			return document{}, false
		case keyNonMasqueradeCIDRs, keyMasqueradeCIDRs, keyClusterCIDRs, keyMasqueradeSourceCIDRs:
			l := &doc.nonMasq
			switch k {
			case keyMasqueradeCIDRs:
				l = &doc.masq
			case keyClusterCIDRs:
				l = &doc.cluster
			case keyMasqueradeSourceCIDRs:
				l = &doc.masqSrc
			}
			*l = list{where: w, set: true}
			switch v {
			case "":
				open = l
			case "[]":
			default:
				return document{}, false
			}
		case keyMasqLinkLocal, keyMasqLinkLocalIPv6, keyEnableIPv6, keyFlushConntrack:
			if v != "true" && v != "false" {
				return document{}, false
			}
			b := scalar[bool]{where: w, set: true, v: v == "true"}
			switch k {
			case keyMasqLinkLocal:
				doc.masqLinkLocal = b
			case keyMasqLinkLocalIPv6:
				doc.masqLinkLocalIPv6 = b
			case keyFlushConntrack:
				doc.flushConntrack = b
			default:
				doc.enableIPv6 = b
			}
		case keyCIDRLimit:
			n, ok := decimal(v)
			if !ok {
				return document{}, false
			}
			doc.cidrLimit = scalar[int]{where: w, set: true, v: n}
		case keyResyncInterval:
			if q, ok := unquote(v); ok {
				v = q
			}
			if !durationText(v) {
				return document{}, false
			}
			doc.resyncInterval = scalar[string]{where: w, set: true, v: v}
		}
	}
	return doc, true
}

// plainASCII reports whether s holds only printable ASCII: no tab, no carriage return, nothing that needs a
// decoder to say what it means.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// value is what follows a key's colon or an item's dash: without its comment and surrounding blanks. ok is
// false for a "#" that is not a comment's (one not after a blank stays in the value, which the fast
// reader does not accept).
func value(s string) (string, bool) {
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	s = strings.Trim(s, " ")
	return s, !strings.Contains(s, "#")
}

// canonicalKey is the key name spells exactly as documented.
func canonicalKey(name string) (key, bool) {
	for k := range numKeys {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// cidrText is a list item's string when it is a plain or simply quoted CIDR-looking text: hex digits, letters,
// dots, colons and one slash or more, starting with a digit or hex letter and not ending in a colon (a
// mapping's indicator). Whether it is a valid CIDR is for build to say.
func cidrText(v string) (string, bool) {
	if q, ok := unquote(v); ok {
		v = q
	} else if v == "" || !isHex(v[0]) || v[len(v)-1] == ':' {
		return "", false
	}
	if !strings.Contains(v, "/") {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isHex(c) && !(c >= 'g' && c <= 'z') && !(c >= 'G' && c <= 'Z') && c != '.' && c != ':' && c != '/' {
			return "", false
		}
	}
	return v, true
}

// unquote strips the quotes of "..." or '...' holding nothing a quote style would change: no quote, no
// backslash.
func unquote(v string) (string, bool) {
	if len(v) < 2 || (v[0] != '"' && v[0] != '\'') || v[len(v)-1] != v[0] {
		return "", false
	}
	in := v[1 : len(v)-1]
	if strings.ContainsAny(in, "\"'\\") {
		return "", false
	}
	return in, true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// decimal reads a whole number written plainly: no sign, no leading zero (YAML 1.1 reads 010 as octal), at
// most nine digits.
func decimal(v string) (int, bool) {
	if v == "" || len(v) > 9 || v[0] == '0' && len(v) > 1 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = 10*n + int(v[i]-'0')
	}
	return n, true
}

// durationText reports whether v is made of digits, dots and the letters of Go's duration units other than
// µ, starting with a digit and holding a letter: such a plain scalar is a string in YAML 1.1 (a number has no
// such letters, a timestamp has dashes, a sexagesimal number colons). Whether time.ParseDuration takes it is
// for build to say.
func durationText(v string) bool {
	if v == "" || v[0] < '0' || v[0] > '9' {
		return false
	}
	letter := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9', c == '.':
		case c == 'n', c == 'u', c == 'm', c == 's', c == 'h':
			letter = true
		default:
			return false
		}
	}
	return letter
}
