package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// rawFile mirrors a file: for each known key, where it was written and its undecoded value.
// A nil field is a key the file leaves out.
type rawFile struct {
	fields [numKeys]*rawField
}

// rawField is one known key as written.
type rawField struct {
	id   key
	name string     // the key as written, in its case
	key  *yaml.Node // the key's node, for its line
	val  *yaml.Node // the value's node, never an alias
}

// decoder turns bytes into a rawFile, collecting warnings about keys.
type decoder struct {
	file     string
	warnings []Warning
}

// errAt returns an *Error located at line of the file being read.
func (d *decoder) errAt(line int, key, value, msg, fix string) *Error {
	return &Error{Source: Source{File: d.file, Line: line}, Key: key, Value: value, Msg: msg, Fix: fix}
}

// decode checks the bytes and the YAML structure of a file. It returns a nil rawFile, and no error, for a file
// that holds no document (empty, blank or only comments) or whose document is null.
func (d *decoder) decode(data []byte) (*rawFile, error) {
	if len(data) > MaxFileSize {
		return nil, d.errAt(0, "", "", fmt.Sprintf("file is larger than %d bytes (1 MiB)", MaxFileSize),
			"a Kubernetes ConfigMap holds at most 1 MiB; check that this is the right file")
	}
	if err := d.checkText(data); err != nil {
		return nil, err
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := d.decodeNode(data, dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := d.decodeNode(data, dec, &next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, d.errAt(next.Line, "", "", "more than one YAML document; only one document is allowed",
			`remove the "---" line and everything after it, or merge the documents into one`)
	}

	if err := d.rejectAliases(&doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 {
		return nil, nil
	}
	root := doc.Content[0]
	switch {
	case root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		// A null document is what upstream's JSON decoder sees as "null": nothing is set.
		return nil, nil
	case root.Kind == yaml.SequenceNode:
		return nil, d.errAt(root.Line, "", "", "the file is a list, but it must be a mapping of keys to values",
			"put a list of CIDRs under a key: nonMasqueradeCIDRs:")
	case root.Kind != yaml.MappingNode:
		return nil, d.errAt(root.Line, "", root.Value,
			fmt.Sprintf("the file is %s, but it must be a mapping of keys to values", describe(root)),
			"start with a key, e.g. nonMasqueradeCIDRs:")
	}
	return d.fields(root)
}

// decodeNode decodes the next document. A panic in the YAML decoder becomes an error, so that a bad file cannot
// stop the caller.
func (d *decoder) decodeNode(data []byte, dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = d.errAt(0, "", "", fmt.Sprintf("invalid YAML: the decoder failed: %v", r), "")
		}
	}()
	if err := dec.Decode(n); err != nil {
		if errors.Is(err, io.EOF) {
			return err
		}
		return d.syntaxError(data, err)
	}
	return nil
}

// syntaxError wraps an error from the YAML decoder, taking the line from its text when it has one
// ("yaml: line 3: did not find expected key").
//
// The decoder numbers lines in two ways: a scanner error names the 1-based line, a parser error the 0-based one,
// and either leaves the line out when it is the first. The line is corrected to be 1-based.
func (d *decoder) syntaxError(data []byte, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, convErr := strconv.Atoi(num); convErr == nil && n > 0 {
				line, msg = n, text
				if isParserProblem(msg) {
					line++
				}
			}
		}
	}
	if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		// An alias whose anchor is missing fails before the tree exists; it is an alias all the same.
		name = strings.TrimSuffix(name, "' referenced")
		line = 0
		if i := bytes.Index(data, []byte("*"+name)); i >= 0 {
			line = lineAt(data, i)
		}
		e := d.errAt(line, "", "*"+name, "aliases are not supported (and this one has no anchor)",
			"write the value out in full instead of using an alias (*)")
		e.Err = err
		return e
	}
	if strings.Contains(msg, "UTF") || strings.HasPrefix(msg, "input error") || strings.HasPrefix(msg, "control characters") {
		line = 0 // errors of the byte reader carry no position
	}
	e := d.errAt(line, "", "", "invalid YAML: "+msg, `check the indentation and quoting; quote a value that starts with ":" (such as "::/0")`)
	if strings.HasPrefix(msg, "exceeded max depth") {
		e.Fix = "values nest no deeper than a list of strings"
	}
	if strings.Contains(msg, "tab character") || strings.Contains(msg, "cannot start any token") {
		// The decoder often names the line before a tab; point at the first line indented with one.
		if tabLine := firstTabIndent(data); tabLine > 0 {
			e.Source.Line = tabLine
			e.Fix = "indent with spaces, not tabs"
		}
	}
	e.Err = err
	return e
}

// isParserProblem reports whether msg comes from the YAML parser rather than its scanner: these carry a 0-based
// line.
func isParserProblem(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>",
		"did not find expected <document start>",
		"did not find expected node content",
		"did not find expected '-' indicator",
		"did not find expected key",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"found undefined tag handle",
		"found duplicate %YAML directive",
		"found incompatible YAML document",
		"found duplicate %TAG directive":
		return true
	}
	return false
}

// checkText rejects bytes that are not YAML text: invalid UTF-8, NUL bytes and the control characters that YAML
// does not allow (the decoder would reject them without saying where).
func (d *decoder) checkText(data []byte) error {
	for i := 0; i < len(data); {
		if c := data[i]; c >= 0x20 && c <= 0x7E || c == '\n' { // printable ASCII: most files are nothing else
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return d.errAt(lineAt(data, i), "", "", fmt.Sprintf("invalid UTF-8 at offset %d", i),
				"save the file as UTF-8 text")
		case r == 0:
			return d.errAt(lineAt(data, i), "", "", fmt.Sprintf("NUL byte at offset %d", i),
				"save the file as UTF-8 text (UTF-16 is not supported)")
		case !yamlPrintable(r):
			return d.errAt(lineAt(data, i), "", "", fmt.Sprintf("control character %U at offset %d", r, i),
				"remove it; YAML allows tabs and line breaks but no other control characters")
		}
		i += size
	}
	return nil
}

// yamlPrintable reports whether YAML allows r in a file (YAML 1.2, section 5.1).
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7E:
		return true
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// rejectAliases walks the whole document and fails on the first alias (*name). The tree is never expanded, so
// an alias bomb costs no more than its text.
func (d *decoder) rejectAliases(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return d.errAt(n.Line, "", "*"+n.Value, "aliases are not supported",
			"write the value out in full instead of using an anchor (&) and alias (*)")
	}
	for _, c := range n.Content {
		if err := d.rejectAliases(c); err != nil {
			return err
		}
	}
	return nil
}

// maxWarnings bounds the warnings of one file: the agent logs each of them whenever the config changes.
const maxWarnings = 20

// fields sorts the top-level mapping into known keys, and warns about the rest.
func (d *decoder) fields(m *yaml.Node) (*rawFile, error) {
	raw := &rawFile{}
	seen := make(map[string]*yaml.Node, len(m.Content)/2)
	unknown, moreLine := 0, 0
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, d.errAt(k.Line, "", "", fmt.Sprintf("a key is %s; keys must be strings", describe(k)),
				"write keys as plain words, e.g. nonMasqueradeCIDRs:")
		}
		if k.ShortTag() == "!!merge" {
			return nil, d.errAt(k.Line, k.Value, "", "merge keys (<<) are not supported", "write the keys out in full")
		}
		fk := foldKey(k.Value)
		if first, dup := seen[fk]; dup {
			msg := fmt.Sprintf("duplicate key: line %d repeats %s from line %d", k.Line, first.Value, first.Line)
			if first.Value != k.Value {
				msg += " (keys match without regard to case)"
			}
			return nil, d.errAt(k.Line, k.Value, "", msg, "keep only one of them")
		}
		seen[fk] = k

		if id, ok := lookupKey(k.Value); ok {
			raw.fields[id] = &rawField{id: id, name: k.Value, key: k, val: v}
			continue
		}
		unknown++
		if unknown > maxWarnings {
			if moreLine == 0 {
				moreLine = k.Line
			}
			continue
		}
		msg, ok := flagHint(k.Value)
		if !ok {
			msg = unknownKeyMsg(k.Value)
		}
		d.warnings = append(d.warnings, Warning{Source: Source{File: d.file, Line: k.Line}, Key: k.Value, Msg: msg})
	}
	if more := unknown - maxWarnings; more > 0 {
		d.warnings = append(d.warnings, Warning{Source: Source{File: d.file, Line: moreLine},
			Msg: fmt.Sprintf("%d more unknown keys ignored", more)})
	}
	return raw, nil
}

// describe names what a node is, for messages: "a list", "a number", "a boolean".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch tag := n.ShortTag(); tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "a whole number"
	case "!!float":
		return "a non-integer number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "empty"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	default:
		return "a value tagged " + tag
	}
}

// firstTabIndent returns the 1-based line of the first line whose indentation holds a tab, or 0.
func firstTabIndent(data []byte) int {
	for i, line := range bytes.Split(data, []byte{'\n'}) {
		indent := line[:len(line)-len(bytes.TrimLeft(line, " \t"))]
		if bytes.IndexByte(indent, '\t') >= 0 {
			return i + 1
		}
	}
	return 0
}

// lineAt returns the 1-based line of byte offset i in data.
func lineAt(data []byte, i int) int {
	return bytes.Count(data[:i], []byte{'\n'}) + 1
}
