package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// decoder reads one file into a document the way ip-masq-agent does: the bytes become JSON through
// k8s.io/apimachinery's yaml.ToJSON (YAML 1.1, sigs.k8s.io/yaml; a file that already looks like JSON is
// passed through), and the JSON is matched to the keys as encoding/json matches a struct's fields: without
// regard to case, the last of several spellings winning, null leaving a value as it was. What it gives is
// what upstream's decoder gives; where that misbehaves, build (parse.go) decides, and the differential test
// (upstream_test.go) holds the two together.
//
// Lines come from a second read with a decoder that keeps them (locate.go); they only make messages better.
type decoder struct {
	file     string
	warnings []Warning
}

// errAt returns an *Error located at line of the file being read.
func (d *decoder) errAt(line int, key, value, msg, fix string) *Error {
	return &Error{Source: Source{File: d.file, Line: line}, Key: key, Value: value, Msg: msg, Fix: fix}
}

func (d *decoder) warn(line int, key, msg string) {
	d.warnings = append(d.warnings, Warning{Source: Source{File: d.file, Line: line}, Key: key, Msg: msg})
}

// decode reads data with upstream's decoder. defaults is the nonMasqueradeCIDRs a file leaves in place: what
// upstream decodes the list into.
func (d *decoder) decode(data []byte, defaults []string) (document, error) {
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return document{}, d.syntaxError(data, err)
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || string(js) == "null" {
		// An empty file, only comments, or a null document: nothing is set.
		return document{}, nil
	}
	loc := locate(data)
	if kind := jsonKind(js); kind != "a mapping" {
		if e := d.checkText(data); e != nil { // UTF-16 reads as a string, say
			return document{}, e
		}
		line := loc.rootLine
		switch kind {
		case "a list":
			return document{}, d.errAt(line, "", "", "the file is a list, but it must be a mapping of keys to values",
				"put a list of CIDRs under a key: nonMasqueradeCIDRs:")
		case "invalid":
			return document{}, d.jsonError(data, err)
		}
		e := d.errAt(line, "", shortJSON(js), fmt.Sprintf("the file is %s, but it must be a mapping of keys to values", kind),
			"start with a key, e.g. nonMasqueradeCIDRs:")
		if l, k := keyWithoutBlank(data); l > 0 { // "nonMasqueradeCIDRs:# pods" is text, not a key
			e.Source.Line, e.Value = l, ""
			e.Fix = fmt.Sprintf("put a blank after the colon of %s: on line %d; YAML reads %s: followed by anything but a blank as text, and the whole file as one string", k, l, k)
		}
		return document{}, e
	}

	// The top-level keys in the order encoding/json meets them: for each known key the last spelling wins.
	var doc document
	raws := [numKeys]json.RawMessage{}
	names := [numKeys]string{}
	var unknown []string
	dec := json.NewDecoder(bytes.NewReader(js))
	if _, err := dec.Token(); err != nil { // {
		return document{}, d.jsonError(data, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return document{}, d.jsonError(data, err)
		}
		name := tok.(string) // object keys are strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return document{}, d.jsonError(data, err)
		}
		if k, ok := lookupKey(name); ok {
			// Each spelling is decoded in turn, as encoding/json does: a bad value fails the file even when a
			// later spelling replaces it, and null leaves what an earlier one set.
			raws[k], names[k] = raw, name
			at := loc.key(name)
			if err := d.field(&doc, k, where{name: name, line: at.line}, raw, at); err != nil {
				return document{}, err
			}
			continue
		}
		unknown = append(unknown, name)
	}
	if _, err := dec.Token(); err != nil { // }
		return document{}, d.jsonError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return document{}, d.jsonError(data, fmt.Errorf("invalid character after the top-level value"))
	}

	if manifest := manifestFields(unknown); manifest != nil {
		doc.topLevel = manifest
		return doc, nil
	}
	if slices.ContainsFunc(doc.nonMasq.items, func(it item) bool { return it.null }) {
		// Upstream decodes the list into its default one, so an empty item keeps the default entry at its
		// position ("" past the end). encoding/json itself says which.
		upstream := struct {
			L []string `json:"nonMasqueradeCIDRs"`
		}{L: defaults}
		_ = json.Unmarshal(js, &upstream) // the values were checked above
		for i := range doc.nonMasq.items {
			if it := &doc.nonMasq.items[i]; it.null && i < len(upstream.L) {
				it.text = upstream.L[i]
			}
		}
	}
	d.lint(loc, names, raws)
	d.unknownKeys(loc, unknown)
	return doc, nil
}

// field decodes the value of key k into doc, as upstream's struct field of that type would take it.
func (d *decoder) field(doc *document, k key, w where, raw json.RawMessage, at keyAt) error {
	kind := jsonKind(raw)
	switch k {
	case keyNonMasqueradeCIDRs, keyMasqueradeCIDRs, keyClusterCIDRs, keyMasqueradeSourceCIDRs, keyEgressInterfaces, keySNATTo:
		l := &doc.nonMasq
		switch k {
		case keyMasqueradeCIDRs:
			l = &doc.masq
		case keyClusterCIDRs:
			l = &doc.cluster
		case keyMasqueradeSourceCIDRs:
			l = &doc.masqSrc
		case keyEgressInterfaces:
			l = &doc.egress
		case keySNATTo:
			l = &doc.snatTo
		}
		what, example := listItems(k)
		*l = list{where: w, set: true}
		switch kind {
		case "null":
			return nil
		case "a list":
		default:
			fix := fmt.Sprintf("write a list, e.g. %s: [%s]", w.name, example)
			var s string
			if kind == "a string" && json.Unmarshal(raw, &s) == nil {
				fix = fmt.Sprintf("write a list: %s: [%s]", w.name, s)
			}
			return d.errAt(at.valueLine(), w.name, scalarText(raw), fmt.Sprintf("must be a list of %ss, not %s", what, kind), fix)
		}
		var texts []*string // a list of strings and nulls, as nearly every one is: decoded in one call
		if json.Unmarshal(raw, &texts) == nil {
			lines := at.itemLines(len(texts))
			l.items = make([]item, len(texts))
			for i, s := range texts {
				if s == nil {
					l.items[i] = item{null: true, line: lines[i]}
				} else {
					l.items[i] = item{text: *s, line: lines[i]}
				}
			}
			return nil
		}
		var elems []json.RawMessage // something else: item by item, to say which one
		if err := json.Unmarshal(raw, &elems); err != nil {
			return d.errAt(at.valueLine(), w.name, "", "not a list: "+err.Error(), "")
		}
		lines := at.itemLines(len(elems))
		l.items = make([]item, len(elems))
		for i, e := range elems {
			switch jsonKind(e) {
			case "null":
				l.items[i] = item{null: true, line: lines[i]}
			case "a string":
				var s string
				if err := json.Unmarshal(e, &s); err != nil {
					return d.errAt(lines[i], fmt.Sprintf("%s[%d]", w.name, i), "", "not a string: "+err.Error(), "")
				}
				l.items[i] = item{text: s, line: lines[i]}
			default:
				return d.errAt(lines[i], fmt.Sprintf("%s[%d]", w.name, i), scalarText(e),
					fmt.Sprintf("list item is %s, not a %s string", jsonKind(e), what), "write a "+what+" such as "+example)
			}
		}
	case keySNATToInterface:
		doc.snatToInterface.where = w
		var s string
		switch {
		case kind == "null":
			return nil
		case json.Unmarshal(raw, &s) == nil:
			doc.snatToInterface.set, doc.snatToInterface.v = true, s
			return nil
		}
		return d.errAt(at.valueLine(), w.name, scalarText(raw), fmt.Sprintf("must be an interface name, not %s", kind),
			fmt.Sprintf("write one name, e.g. %s: eth0", w.name))
	case keyMasqLinkLocal, keyMasqLinkLocalIPv6, keyEnableIPv6, keyFlushConntrack:
		f := map[key]*scalar[bool]{keyMasqLinkLocal: &doc.masqLinkLocal, keyMasqLinkLocalIPv6: &doc.masqLinkLocalIPv6,
			keyEnableIPv6: &doc.enableIPv6, keyFlushConntrack: &doc.flushConntrack}[k]
		f.where = w
		switch string(raw) {
		case "null":
			return nil
		case "true", "false":
			f.set, f.v = true, string(raw) == "true"
			return nil
		}
		fix := fmt.Sprintf("write %s: true or %s: false", w.name, w.name)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			switch strings.ToLower(s) {
			case "true", "yes", "y", "on":
				fix = fmt.Sprintf("write %s: true, unquoted", w.name)
			case "false", "no", "n", "off":
				fix = fmt.Sprintf("write %s: false, unquoted", w.name)
			}
		}
		return d.errAt(at.valueLine(), w.name, scalarText(raw), fmt.Sprintf("must be true or false, not %s", kind), fix)
	case keyCIDRLimit:
		doc.cidrLimit.where = w
		if kind == "null" {
			return nil
		}
		fix := fmt.Sprintf("write a whole number, e.g. %s: 64", w.name)
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			msg := fmt.Sprintf("must be a whole number, not %s", kind)
			var s string
			switch {
			case kind == "a whole number" || isWhole(raw): // YAML 1.1 reads 99999999999999999999 as 1e+20
				msg = "number is too large"
			case kind == "a string" && json.Unmarshal(raw, &s) == nil:
				if _, err := strconv.Atoi(s); err == nil {
					fix = fmt.Sprintf("write %s: %s, unquoted", w.name, s)
				}
			}
			e := d.errAt(at.valueLine(), w.name, scalarText(raw), msg, fix)
			e.Err = err
			return e
		}
		doc.cidrLimit.set, doc.cidrLimit.v = true, n
	case keyResyncInterval:
		doc.resyncInterval.where = w
		var s string
		if err := json.Unmarshal(raw, &s); err != nil { // metav1.Duration takes only a string (or null)
			fix := fmt.Sprintf("write a duration with a unit, e.g. %s: 60s", w.name)
			if kind == "a whole number" && raw[0] != '-' {
				fix = fmt.Sprintf("write a duration with a unit, e.g. %s: %ss", w.name, raw)
			}
			return d.errAt(at.valueLine(), w.name, scalarText(raw), fmt.Sprintf("must be a duration string, not %s", kind), fix)
		}
		// null reads as "", which upstream's metav1.Duration then fails to parse, as build does.
		doc.resyncInterval.set, doc.resyncInterval.v = true, s
	}
	return nil
}

// jsonKind names what a JSON value is, for messages: "a list", "a number", "null".
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "invalid"
	}
	switch raw[0] {
	case '{':
		return "a mapping"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if bytes.ContainsAny(raw, ".eE") {
			return "a non-integer number"
		}
		return "a whole number"
	}
	return "invalid"
}

// scalarText is a scalar JSON value as text for messages (a string unquoted), and "" for a list or mapping.
func scalarText(raw []byte) string {
	switch jsonKind(raw) {
	case "a list", "a mapping", "null":
		return ""
	case "a string":
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// shortJSON is a top-level scalar as text for messages.
func shortJSON(js []byte) string { return scalarText(js) }

// jsonError is a file that looks like JSON (its first character is "{") but is not valid JSON. Upstream passes
// such a file to encoding/json as it is, without reading it as YAML, and fails as well.
func (d *decoder) jsonError(data []byte, err error) *Error {
	line := 0
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se) && se.Offset > 0 && int(se.Offset) <= len(data):
		line = lineAt(data, int(se.Offset)-1)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		line = lineAt(data, len(bytes.TrimRight(data, " \t\r\n")))
		err = fmt.Errorf("unexpected end of file: %w", err)
	}
	e := d.errAt(line, "", "", "invalid JSON: "+err.Error(),
		`a file whose first character is "{" is read as JSON: quote every key and string and remove comments and trailing commas, or write it as YAML`)
	e.Err = err
	return e
}

// manifestFields returns the top-level keys that make a file a Kubernetes object rather than a config, or
// nil: apiVersion and kind together.
func manifestFields(unknown []string) []string {
	var apiVersion, kind bool
	for _, k := range unknown {
		apiVersion = apiVersion || k == "apiVersion"
		kind = kind || k == "kind"
	}
	if !apiVersion || !kind {
		return nil
	}
	return unknown
}

// syntaxError wraps an error from the YAML decoder, taking the line from its text when it has one
// ("yaml: line 3: did not find expected key").
//
// The decoder numbers lines in two ways: a scanner error names the 1-based line, a parser error the 0-based one,
// and either leaves the line out when it is the first. The line is corrected to be 1-based.
func (d *decoder) syntaxError(data []byte, err error) *Error {
	if e := d.checkText(data); e != nil {
		e.Err = err
		return e
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
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
	if strings.HasPrefix(msg, "invalid map key") { // sigs.k8s.io/yaml: a key that is a list or mapping
		e := d.errAt(complexKeyLine(data), "", "", "a key is a list or a mapping; keys must be strings",
			"write keys as plain words, e.g. nonMasqueradeCIDRs:")
		e.Err = err
		return e
	}
	if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		name = strings.TrimSuffix(name, "' referenced")
		line = 0
		if i := bytes.Index(data, []byte("*"+name)); i >= 0 {
			line = lineAt(data, i)
		}
		e := d.errAt(line, "", "*"+name, "the alias *"+name+" has no anchor &"+name,
			"define the anchor (&"+name+") before the alias, or write the value out in full")
		e.Err = err
		return e
	}
	e := d.errAt(line, "", "", "invalid YAML: "+msg, `check the indentation and quoting; quote a value that starts with ":" (such as "::/0")`)
	switch {
	case strings.Contains(msg, "excessive aliasing"), strings.HasPrefix(msg, "exceeded max depth"):
		e.Source.Line = 0
		e.Fix = "write the values out in full: lists of strings need no anchors, aliases or nesting"
	case strings.Contains(msg, "tab character") || strings.Contains(msg, "cannot start any token"):
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

// checkText explains bytes the YAML decoder refused without saying where: invalid UTF-8, NUL bytes and the
// control characters YAML does not allow. It returns nil when the text is not the problem.
func (d *decoder) checkText(data []byte) *Error {
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

// yamlPrintable reports whether YAML allows r in a file (YAML 1.1, section 5.1).
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85, r == 0xFEFF:
		return true
	case r >= 0x20 && r <= 0x7E:
		return true
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
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

// complexKeyLine is the line of the first key that is not a scalar, 0 when it cannot tell.
func complexKeyLine(data []byte) int {
	for _, ks := range locateKeys(data) {
		if ks.Kind != yaml.ScalarNode {
			return ks.Line
		}
	}
	return 0
}

// isWhole reports whether a JSON number is a whole one, whatever its notation (1e+26).
func isWhole(raw []byte) bool {
	f, err := strconv.ParseFloat(string(raw), 64)
	return err == nil && f == math.Trunc(f)
}

// keyWithoutBlank finds the first line that starts with a config key and a colon followed by something other
// than a blank ("cidrLimit:10", "nonMasqueradeCIDRs:# pods"), and returns its line and key.
func keyWithoutBlank(data []byte) (int, string) {
	for i, line := range bytes.Split(data, []byte{'\n'}) {
		name, rest, ok := bytes.Cut(bytes.TrimLeft(line, " "), []byte(":"))
		if !ok || len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r' {
			continue
		}
		if _, known := lookupKey(string(name)); known {
			return i + 1, string(name)
		}
	}
	return 0, ""
}

// listItems is what a list key's items are, for messages, and an example of one.
func listItems(k key) (what, example string) {
	switch k {
	case keyEgressInterfaces:
		return "interface name", "eth0"
	case keySNATTo:
		return "address", "192.0.2.10"
	}
	return "CIDR", "10.0.0.0/8"
}
