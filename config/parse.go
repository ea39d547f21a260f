package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parse reads one configuration file held in data; file names it in Sources, errors and warnings ("" when it
// has no name). The meaning is upstream ip-masq-agent's: keys match without regard to case, a key left out keeps
// its value from Default(opts), and an empty file (or one holding only comments, or null) is Default(opts).
// Config.Files is []string{file} when file is not "".
//
// Parse is stricter than upstream where upstream silently does something surprising: empty list items, wrong
// value types, duplicate keys, several documents, aliases, IPv4-mapped IPv6 prefixes and a non-positive
// resyncInterval are errors. Unknown keys, and command-line flags written as keys, are ignored with a Warning.
//
// A failure is returned as an *Error, saying where it is and how to fix it; the Config and warnings are then
// zero.
func Parse(file string, data []byte, opts Options) (Config, []Warning, error) {
	d := &decoder{file: file}
	raw, err := d.decode(data)
	if err != nil {
		return Config{}, nil, err
	}
	b := &builder{decoder: d, cfg: Default(opts), opts: opts}
	if file != "" {
		b.cfg.Files = []string{file}
	}
	if raw != nil {
		if err := b.build(raw); err != nil {
			return Config{}, nil, err
		}
	}
	return b.cfg, d.warnings, nil
}

// builder turns a rawFile into validated values on top of the defaults.
type builder struct {
	*decoder
	cfg  Config
	opts Options
}

// build sets every key the file sets. enableIPv6 is read first, as the prefixes depend on it; the other keys are
// checked in file order, so that the error reported is the first one in the file.
func (b *builder) build(raw *rawFile) error {
	if f := raw.fields[keyEnableIPv6]; f != nil {
		on, err := b.boolean(f)
		if err != nil {
			return err
		}
		switch {
		case on:
			b.cfg.EnableIPv6 = true
		case b.opts.EnableIPv6:
			b.warnings = append(b.warnings, Warning{Source: b.at(f.key), Key: f.name,
				Msg: "enableIPv6: false does not turn off --enable-ipv6; IPv6 stays enabled"})
		}
	}

	var fields []*rawField
	for _, f := range raw.fields {
		if f != nil && f.id != keyEnableIPv6 {
			fields = append(fields, f)
		}
	}
	slices.SortStableFunc(fields, func(a, b *rawField) int {
		return cmp.Or(cmp.Compare(a.key.Line, b.key.Line), cmp.Compare(a.key.Column, b.key.Column))
	})
	for _, f := range fields {
		if err := b.set(f); err != nil {
			return err
		}
	}

	if n := len(b.cfg.NonMasqueradeCIDRs); n > b.cfg.CIDRLimit {
		// Blame the list, or the limit when the list is the default one.
		f := raw.fields[keyNonMasqueradeCIDRs]
		if f == nil {
			f = raw.fields[keyCIDRLimit]
		}
		name, line := keyNonMasqueradeCIDRs.String(), 0
		if f != nil {
			name, line = f.name, f.key.Line
		}
		return b.errAt(line, name, "",
			fmt.Sprintf("%d CIDRs is more than cidrLimit %d", n, b.cfg.CIDRLimit),
			fmt.Sprintf("raise the limit (cidrLimit: %d) or merge ranges into fewer, larger prefixes", n))
	}
	return nil
}

// set decodes one key into b.cfg.
func (b *builder) set(f *rawField) error {
	var err error
	switch f.id {
	case keyNonMasqueradeCIDRs:
		b.cfg.NonMasqueradeCIDRs, err = b.cidrs(f)
	case keyMasqueradeCIDRs:
		b.cfg.MasqueradeCIDRs, err = b.cidrs(f)
	case keyCIDRLimit:
		b.cfg.CIDRLimit, err = b.cidrLimit(f)
	case keyMasqLinkLocal:
		b.cfg.MasqLinkLocal, err = b.boolean(f)
	case keyMasqLinkLocalIPv6:
		b.cfg.MasqLinkLocalIPv6, err = b.boolean(f)
	case keyResyncInterval:
		b.cfg.ResyncInterval, err = b.duration(f)
	}
	return err
}

// at is the Source of a node.
func (b *builder) at(n *yaml.Node) Source { return Source{File: b.file, Line: n.Line} }

// valueLine is the line to blame for a value: the key's line when the value is not written at all.
func valueLine(f *rawField) int {
	if f.val.Kind == yaml.ScalarNode && f.val.Value == "" && f.val.ShortTag() == "!!null" {
		return f.key.Line
	}
	return f.val.Line
}

// isNull reports whether n is null: nothing, "~" or "null".
func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// isString reports whether n is a string scalar, quoted or not.
func isString(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" }

// cidrs decodes a list of CIDRs. Null and [] are an empty list (nil), as upstream.
func (b *builder) cidrs(f *rawField) ([]CIDR, error) {
	v := f.val
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		fix := fmt.Sprintf("write a list, e.g. %s: [10.0.0.0/8]", f.name)
		if isString(v) {
			fix = fmt.Sprintf("write a list: %s: [%s]", f.name, v.Value)
		}
		return nil, b.errAt(valueLine(f), f.name, scalarValue(v),
			fmt.Sprintf("must be a list of CIDRs, not %s", describe(v)), fix)
	}
	if len(v.Content) == 0 {
		return nil, nil
	}
	out := make([]CIDR, len(v.Content))
	for i, item := range v.Content {
		c, err := b.cidr(f.name, i, item)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// cidr decodes and validates item i of list.
func (b *builder) cidr(list string, i int, n *yaml.Node) (CIDR, error) {
	name := func() string { return fmt.Sprintf("%s[%d]", list, i) } // only errors need it
	const example = "write a CIDR such as 10.0.0.0/8"
	switch {
	case isNull(n):
		return CIDR{}, b.errAt(n.Line, name(), n.Value, "empty list item",
			`remove the empty "-" item or write a CIDR such as 10.0.0.0/8`)
	case !isString(n):
		return CIDR{}, b.errAt(n.Line, name(), scalarValue(n),
			fmt.Sprintf("list item is %s, not a CIDR string", describe(n)), example)
	}
	p, err := netip.ParsePrefix(n.Value)
	if err != nil {
		fix := "write an address and a prefix length, e.g. 10.0.0.0/8"
		if a, aerr := netip.ParseAddr(n.Value); aerr == nil && a.Zone() == "" {
			fix = fmt.Sprintf("add a prefix length: %s/%d", n.Value, a.BitLen())
		}
		reason := strings.TrimPrefix(err.Error(), "netip.ParsePrefix("+strconv.Quote(n.Value)+"): ")
		e := b.errAt(n.Line, name(), n.Value, "not a valid CIDR: "+reason, fix)
		e.Err = err
		return CIDR{}, e
	}
	if p.Addr().Is4In6() {
		fix := "write the IPv4 prefix instead"
		if p.Bits() >= 96 {
			fix = "write the IPv4 prefix instead: " + netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked().String()
		}
		return CIDR{}, b.errAt(n.Line, name(), n.Value, "IPv4-mapped IPv6 prefixes are not supported", fix)
	}
	if m := p.Masked(); m != p {
		return CIDR{}, b.errAt(n.Line, name(), n.Value, "CIDR is not aligned to its prefix length", "write "+m.String())
	}
	if p.Addr().Is6() && !b.cfg.EnableIPv6 {
		return CIDR{}, b.errAt(n.Line, name(), n.Value, "IPv6 prefix, but IPv6 is not enabled",
			"pass --enable-ipv6, or set enableIPv6: true in the file")
	}
	return CIDR{Prefix: p, Source: b.at(n)}, nil
}

// boolean decodes true or false; nothing else (not yes, on, "true" or null) is a boolean.
func (b *builder) boolean(f *rawField) (bool, error) {
	v := f.val
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		var on bool
		if err := v.Decode(&on); err != nil {
			return false, b.errAt(v.Line, f.name, v.Value, "not a boolean", "write true or false")
		}
		return on, nil
	}
	fix := fmt.Sprintf("write %s: true or %s: false", f.name, f.name)
	if isString(v) {
		switch strings.ToLower(v.Value) {
		case "true", "yes", "y", "on":
			fix = fmt.Sprintf("write %s: true, unquoted", f.name)
		case "false", "no", "n", "off":
			fix = fmt.Sprintf("write %s: false, unquoted", f.name)
		}
	}
	if isNull(v) {
		fix += ", or remove the line to keep the default"
	}
	return false, b.errAt(valueLine(f), f.name, scalarValue(v), fmt.Sprintf("must be true or false, not %s", describe(v)), fix)
}

// cidrLimit decodes a whole number, zero or more.
func (b *builder) cidrLimit(f *rawField) (int, error) {
	v := f.val
	fix := fmt.Sprintf("write a whole number, e.g. %s: 64", f.name)
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!float" && allDigits(v.Value) {
		// YAML resolves a whole number too large for an int64 to !!float.
		return 0, b.errAt(v.Line, f.name, v.Value, "number is too large", fix)
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
		if isString(v) {
			if _, err := strconv.Atoi(v.Value); err == nil {
				fix = fmt.Sprintf("write %s: %s, unquoted", f.name, v.Value)
			}
		}
		if isNull(v) {
			fix += ", or remove the line to keep the default"
		}
		return 0, b.errAt(valueLine(f), f.name, scalarValue(v), fmt.Sprintf("must be a whole number, not %s", describe(v)), fix)
	}
	var n int
	if err := v.Decode(&n); err != nil {
		e := b.errAt(v.Line, f.name, v.Value, "number is too large", fix)
		e.Err = err
		return 0, e
	}
	if n < 0 {
		return 0, b.errAt(v.Line, f.name, v.Value, "must not be negative", fix)
	}
	return n, nil
}

// allDigits says whether s is a whole number written in decimal, with an optional sign and underscores.
func allDigits(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789_") == ""
}

// duration decodes a Go duration string such as "60s"; upstream accepts only a string, and only a positive
// interval makes sense.
func (b *builder) duration(f *rawField) (time.Duration, error) {
	v := f.val
	fix := fmt.Sprintf("write a duration with a unit, e.g. %s: 60s", f.name)
	if !isString(v) {
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
			fix = fmt.Sprintf("write a duration with a unit, e.g. %s: %ss", f.name, v.Value)
		}
		if isNull(v) {
			fix += ", or remove the line to keep the default"
		}
		return 0, b.errAt(valueLine(f), f.name, scalarValue(v),
			fmt.Sprintf("must be a duration string, not %s", describe(v)), fix)
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		e := b.errAt(v.Line, f.name, v.Value, "not a valid duration", fix)
		e.Err = err
		return 0, e
	}
	if d <= 0 {
		return 0, b.errAt(v.Line, f.name, v.Value, "must be more than zero", fix)
	}
	return d, nil
}

// scalarValue is n's text when n is a scalar, and "" for a list or mapping.
func scalarValue(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}
