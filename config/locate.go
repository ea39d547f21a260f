package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// locator knows where a file's keys and list items were written, from a second read with a YAML decoder that
// keeps line numbers (go.yaml.in/yaml/v3). It only guides messages and Sources: where that decoder reads a
// file differently from upstream's (it follows YAML 1.2), or cannot read it, lines are 0.
type locator struct {
	rootLine int
	keys     map[string][]keyAt // by the key as written, in the order they take effect
	nextDoc  int                // where a document after the first starts: 0 when there is none, -1 unknown
}

// keyAt is one key as written: its line and its value, aliases resolved.
type keyAt struct {
	line int
	val  *yaml.Node
}

// locate reads data for its lines. It never fails: what it cannot read has no lines.
func locate(data []byte) locator {
	l := locator{keys: map[string][]keyAt{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if decodeNode(dec, &doc) != nil {
		return l
	}
	// What follows the first document is ignored: say where it starts, unless it is empty.
	for range 100 {
		var next yaml.Node
		err := decodeNode(dec, &next)
		if err == io.EOF {
			break
		}
		if err != nil {
			l.nextDoc = -1 // text that is not even YAML; where it starts is not known
			break
		}
		if len(next.Content) == 1 && !(next.Content[0].Kind == yaml.ScalarNode && next.Content[0].ShortTag() == "!!null") {
			l.nextDoc = next.Line
			break
		}
	}
	if len(doc.Content) != 1 {
		return l
	}
	root := doc.Content[0]
	l.rootLine = root.Line
	if root.Kind == yaml.MappingNode {
		l.walk(root, 0)
	}
	return l
}

// locateKeys returns the key nodes of the top-level mapping of data, nil when it cannot read it.
func locateKeys(data []byte) []*yaml.Node {
	var doc yaml.Node
	if decodeNode(yaml.NewDecoder(bytes.NewReader(data)), &doc) != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	var keys []*yaml.Node
	for i := 0; i < len(doc.Content[0].Content); i += 2 {
		keys = append(keys, doc.Content[0].Content[i])
	}
	return keys
}

// decodeNode decodes the next document; a panic in the decoder is an error like any other.
func decodeNode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml decoder: %v", r)
		}
	}()
	return dec.Decode(n)
}

// walk records the keys of mapping m. Keys merged in with "<<" come first, as explicit keys override them.
func (l *locator) walk(m *yaml.Node, depth int) {
	if depth > 3 {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], resolve(m.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!merge" || v == nil {
			continue
		}
		if v.Kind == yaml.MappingNode {
			l.walk(v, depth+1)
			continue
		}
		for _, c := range v.Content {
			if c = resolve(c); c != nil && c.Kind == yaml.MappingNode {
				l.walk(c, depth+1)
			}
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], resolve(m.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.ShortTag() != "!!merge" && v != nil {
			l.keys[k.Value] = append(l.keys[k.Value], keyAt{line: k.Line, val: v})
		}
	}
}

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for range 4 {
		if n == nil || n.Kind != yaml.AliasNode {
			return n
		}
		n = n.Alias
	}
	return nil
}

// key is where name was written last; the zero keyAt when it cannot tell.
func (l locator) key(name string) keyAt {
	if occ := l.keys[name]; len(occ) > 0 {
		return occ[len(occ)-1]
	}
	return keyAt{}
}

// spellings returns every key of the file that means k, in file order.
func (l locator) spellings(k key) []string {
	var names []string
	for name := range l.keys {
		if strings.EqualFold(name, k.String()) {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return l.keys[a][0].line - l.keys[b][0].line })
	return names
}

// valueLine is the line of the value, or of the key when the value is not written at all.
func (k keyAt) valueLine() int {
	if k.val == nil || k.val.Kind == yaml.ScalarNode && k.val.Value == "" && k.val.ShortTag() == "!!null" {
		return k.line
	}
	return k.val.Line
}

// itemLines returns the line of each of the n items of a list value; zeros when the list it read has another
// length than upstream's.
func (k keyAt) itemLines(n int) []int {
	lines := make([]int, n)
	if k.val == nil || k.val.Kind != yaml.SequenceNode || len(k.val.Content) != n {
		return lines
	}
	for i, c := range k.val.Content {
		if c = resolve(c); c != nil {
			lines[i] = c.Line
		}
	}
	return lines
}

// scalar is the value's text as written, when it is a scalar.
func (k keyAt) scalar() (string, bool) {
	if k.val == nil || k.val.Kind != yaml.ScalarNode {
		return "", false
	}
	return k.val.Value, true
}

// lint warns about what the file says in an unusual way that upstream reads all the same: a key written
// twice, a key in another case, YAML 1.1 spellings of booleans and numbers, empty values, a second document.
// names and raws are the key each known key was read from and its value, as decode found them.
func (d *decoder) lint(loc locator, names [numKeys]string, raws [numKeys]json.RawMessage) {
	if loc.nextDoc != 0 {
		d.warn(max(loc.nextDoc, 0), "", "more YAML follows the first document (after a \"---\" or \"...\" line); only the first is read, as by ip-masq-agent, and the rest is ignored: remove it or merge it into the first")
	}
	for k := range numKeys {
		if raws[k] == nil {
			continue
		}
		name, canon := names[k], k.String()
		win := loc.key(name)
		for _, other := range loc.spellings(k) {
			for _, at := range loc.keys[other] {
				if at != win {
					d.warn(at.line, other, fmt.Sprintf("%s is set again on line %d, whose value is used (as by ip-masq-agent); keep only one", canon, win.line))
				}
			}
		}
		if name != canon {
			d.warn(win.line, name, fmt.Sprintf("keys match without regard to case; write %s", canon))
		}
		text, isScalar := win.scalar()
		switch raw := string(raws[k]); {
		case raw == "null" && k != keyResyncInterval && k != keyNonMasqueradeCIDRs && k != keyMasqueradeCIDRs && k != keyClusterCIDRs && k != keyMasqueradeSourceCIDRs &&
			k != keyEgressInterfaces && k != keySNATTo:
			d.warn(win.line, name, fmt.Sprintf("empty, so the default stays; write a value (%s: ...) or remove the line", canon))
		case (raw == "true" || raw == "false") && isScalar && text != raw:
			d.warn(win.valueLine(), name, fmt.Sprintf("%q means %s in YAML 1.1; write %s: %s", text, raw, canon, raw))
		case k == keyCIDRLimit && isScalar && text != raw && win.val.ShortTag() != "!!str":
			if n, err := strconv.Atoi(raw); err == nil {
				d.warn(win.valueLine(), name, fmt.Sprintf("%q is read as %d; write %s: %d", text, n, canon, n))
			}
		}
	}
}

// maxWarnings bounds the unknown-key warnings of one file: the agent logs each of them whenever the config
// changes.
const maxWarnings = 20

// unknownKeys warns about each key that is not a config key, naming the key or flag it likely means.
func (d *decoder) unknownKeys(loc locator, unknown []string) {
	slices.Sort(unknown)
	unknown = slices.Compact(unknown) // a JSON file may repeat a key
	slices.SortStableFunc(unknown, func(a, b string) int { return loc.key(a).line - loc.key(b).line })
	for i, name := range unknown {
		line := loc.key(name).line
		if i == maxWarnings {
			d.warn(line, "", fmt.Sprintf("%d more unknown keys ignored", len(unknown)-maxWarnings))
			return
		}
		msg, ok := flagHint(name)
		if !ok {
			msg = unknownKeyMsg(name)
		}
		d.warn(line, name, msg)
	}
}
