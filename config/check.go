package config

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Check is `masqd check`'s linter: it reads a config file, or a Kubernetes ConfigMap manifest as written for
// kubectl apply, the way the agent would, and reports every problem it can find (not only the first),
// each at its line with a fix, including the mistakes of text pasted from a web page that YAML reads as
// something else. It is pure: the caller reads the file and prints the result.

type Severity int

const (
	SevError Severity = iota
	SevWarning
	SevNote
)

func (s Severity) String() string { return [...]string{"error", "warning", "note"}[s] }

// Finding is one problem, at a line of the file (0: the whole file).
type Finding struct {
	Line     int
	Severity Severity
	Msg      string
	Fix      string
}

// CheckResult is what check found in one file.
type CheckResult struct {
	Findings []Finding
	// Configs are the configs found (one per ConfigMap), when the file has no error.
	Configs []Config
	// Repaired are the lines read as if fixed, to check the rest of the file.
	Repaired []int
}

func (r *CheckResult) add(line int, sev Severity, msg, fix string) {
	r.Findings = append(r.Findings, Finding{Line: line, Severity: sev, Msg: msg, Fix: fix})
}

func (r *CheckResult) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Check checks a raw config file or a ConfigMap manifest.
func Check(data []byte, opts Options) *CheckResult {
	res := &CheckResult{}
	text := lintText(string(data), res)
	docs, err := decodeDocuments(text)
	if err != nil && (len(docs) == 0 || isManifest(docs)) {
		res.Findings = append(res.Findings, yamlFinding(text, err))
		return res
	}
	// A config whose later documents do not decode: only the first is read (as by ip-masq-agent), and
	// Parse says so in a warning.
	if isManifest(docs) {
		checkManifest(docs, opts, res)
		return res
	}
	if cfg, ok := checkConfig(text, func(n int) int { return n }, opts, res); ok {
		res.Configs = append(res.Configs, cfg)
	}
	return res
}

// Text as it comes out of a web page or a chat: typographic dashes as list markers, no space between ':' and
// '#', a key without its ':', non-breaking spaces. YAML then reads something else than what the user sees.
var (
	webDashes = map[rune]string{
		'\u2010': "U+2010 HYPHEN", '\u2011': "U+2011 NON-BREAKING HYPHEN", '\u2012': "U+2012 FIGURE DASH",
		'\u2013': "U+2013 EN DASH", '\u2014': "U+2014 EM DASH", '\u2212': "U+2212 MINUS SIGN",
		'\ufe63': "U+FE63 SMALL HYPHEN-MINUS", '\uff0d': "U+FF0D FULLWIDTH HYPHEN-MINUS",
	}
	colonHashRE = regexp.MustCompile(`^(\s*(?:-\s+)?[A-Za-z_][\w.-]*)\s*:#`)
	bareKeyRE   = regexp.MustCompile(`^(\s*)([A-Za-z_][\w.-]*)\s*$`)
	keyLineRE   = regexp.MustCompile(`^\s*[A-Za-z_][\w.-]*\s*:(\s|$)`)
)

// lintText finds the mistakes of text pasted from elsewhere, which YAML reads as something else or not at
// all. Each is an error; the text is returned with them fixed (line numbers unchanged), so that the rest of
// the file can still be checked.
func lintText(text string, res *CheckResult) string {
	lines := strings.Split(text, "\n")
	repaired := false
	for i := range lines {
		n := i + 1
		fixed := false
		body := strings.TrimLeft(lines[i], " ")
		indent := lines[i][:len(lines[i])-len(body)]
		if j := strings.IndexFunc(body, func(r rune) bool { return r != '\u00a0' && r != ' ' && r != '\t' }); j > 0 && strings.ContainsRune(body[:j], '\u00a0') {
			res.add(n, SevError, "non-breaking space (U+00A0) in the indentation: YAML indents with plain spaces only",
				"replace it with a space")
			body = strings.ReplaceAll(body[:j], "\u00a0", " ") + body[j:]
			lines[i] = indent + body
			body = strings.TrimLeft(lines[i], " ")
			indent = lines[i][:len(lines[i])-len(body)]
			fixed = true
		}
		if body == "" || body[0] == '#' {
			if fixed {
				res.Repaired = append(res.Repaired, n)
				repaired = true
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(body)
		if name, ok := webDashes[r]; ok && (len(body) == size || body[size] == ' ') {
			res.add(n, SevError, fmt.Sprintf("%q (%s) is not a YAML list marker, so this item is read as text (copied from a web page?)", string(r), name),
				"write a hyphen: -")
			lines[i] = indent + "-" + body[size:]
			fixed = true
		}
		if m := colonHashRE.FindStringSubmatchIndex(lines[i]); m != nil {
			key := strings.TrimSpace(lines[i][m[2]:m[3]])
			res.add(n, SevError, fmt.Sprintf("'#' right after %q does not start a comment (YAML needs a space before it), so the line is read as text", key+":"),
				fmt.Sprintf("put a space before '#': %s: # ...", strings.TrimLeft(key, "- ")))
			colon := m[1] - 2 // the match ends with ":#"
			lines[i] = lines[i][:colon+1] + " " + lines[i][colon+1:]
			fixed = true
		}
		if m := bareKeyRE.FindStringSubmatch(lines[i]); m != nil && nextLineIsKeyBelow(lines, i, len(m[1])) {
			res.add(n, SevError, fmt.Sprintf("%s has no ':' after it, so the lines indented below it are not its value", m[2]),
				fmt.Sprintf("write %s:", m[2]))
			lines[i] = m[1] + m[2] + ":"
			fixed = true
		}
		if fixed {
			res.Repaired = append(res.Repaired, n)
			repaired = true
		}
	}
	if !repaired {
		res.Repaired = nil
		return text
	}
	return strings.Join(lines, "\n")
}

// nextLineIsKeyBelow reports whether the next line holding something is indented more than indent and
// starts with a key.
func nextLineIsKeyBelow(lines []string, i, indent int) bool {
	for _, l := range lines[i+1:] {
		body := strings.TrimLeft(l, " ")
		if body == "" || body[0] == '#' {
			continue
		}
		return len(l)-len(body) > indent && keyLineRE.MatchString(l)
	}
	return false
}

// decodeDocuments decodes every YAML document of text; on an error it returns the documents before it too.
func decodeDocuments(text string) (docs []*yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML decoder failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(strings.NewReader(text))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return docs, nil
		} else if err != nil {
			return docs, err
		}
		docs = append(docs, &doc)
	}
}

// yamlFinding words a YAML syntax error. Parse reads the same YAML and knows how the decoder numbers
// lines, so its error is used when it is about the same problem.
func yamlFinding(text string, yerr error) Finding {
	f := Finding{Severity: SevError, Msg: "invalid YAML: " + strings.TrimPrefix(yerr.Error(), "yaml: "),
		Fix: "check the indentation and quoting"}
	_, _, err := Parse("", []byte(text), Options{})
	var e *Error
	if errors.As(err, &e) && e.Key == "" && !strings.HasPrefix(e.Msg, "more than one") {
		f = Finding{Line: e.Source.Line, Severity: SevError, Msg: e.Msg, Fix: e.Fix}
	}
	if l := misindentedBlockBefore(text, f.Line); l.line > 0 {
		f.Line = l.line
		f.Msg = fmt.Sprintf("invalid YAML: %s, indented less than its first line (line %d) and more than the key",
			l.what, l.first)
		f.Fix = fmt.Sprintf("indent this line by %d spaces, as line %d", l.indent, l.first)
	}
	return f
}

// misindentedBlockBefore finds a misindented line of a block string that starts at or before line, where
// the YAML decoder stopped: it blames the misindented line, or the line of "key: |".
func misindentedBlockBefore(text string, line int) misindented {
	for from := 1; from <= line; from++ {
		if m := misindentedBlockLine(text, from); m.line > 0 && m.line >= line {
			return m
		}
	}
	return misindented{}
}

var blockScalarRE = regexp.MustCompile(`^(\s*)(?:-\s+)?([\w.-]+)\s*:\s*[|>][-+0-9]*\s*(?:#.*)?$`)

// misindented is a line that ends a block string (key: |) by being less indented than its first line, and
// is still more indented than the key, so it is neither in the block nor the next key.
type misindented struct {
	line, first, indent int
	what                string
}

// misindentedBlockLine finds the first misindented line of a block string at or after line from. The YAML
// decoder blames the line of "key: |" for it, not the line itself; from is that line.
func misindentedBlockLine(text string, from int) misindented {
	lines := strings.Split(text, "\n")
	if from < 1 || from > len(lines) || !blockScalarRE.MatchString(lines[from-1]) {
		return misindented{}
	}
	for i := from - 1; i < len(lines); i++ {
		m := blockScalarRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		keyIndent, first := len(m[1]), -1
		for j := i + 1; j < len(lines); j++ {
			body := strings.TrimLeft(lines[j], " ")
			if body == "" {
				continue
			}
			indent := len(lines[j]) - len(body)
			if first < 0 {
				first = j
				continue
			}
			blockIndent := len(lines[first]) - len(strings.TrimLeft(lines[first], " "))
			if indent < blockIndent {
				if indent > keyIndent {
					return misindented{line: j + 1, first: first + 1, indent: blockIndent,
						what: fmt.Sprintf("this line ends the block %s: | (line %d)", m[2], i+1)}
				}
				break
			}
		}
	}
	return misindented{}
}

// checkConfig checks the text of a config as the agent reads it; lineOf maps its lines to the file's. It
// returns the config when it is valid.
func checkConfig(text string, lineOf func(int) int, opts Options, res *CheckResult) (Config, bool) {
	cfg, warnings, err := Parse("", []byte(text), opts)
	var errs []*Error
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			res.add(lineOf(0), SevError, err.Error(), "")
			return Config{}, false
		}
		errs, warnings = moreErrors(text, e, opts)
	}

	var root yaml.Node
	if yaml.Unmarshal([]byte(text), &root) == nil {
		if m := docRoot(&root); m != nil {
			if kind, api := lookupFold(m, "kind"), lookupFold(m, "apiVersion"); kind != nil && api != nil {
				// Parse refuses it, saying why; its error is placed on the first of these keys.
				for i := range errs {
					if errs[i].Source.Line == 0 {
						errs[i].Source.Line = min(kind.Line, api.Line)
					}
				}
			}
		}
	}
	for _, e := range errs {
		msg, fix := e.Msg, e.Fix
		switch {
		case e.Key != "" && e.Value != "":
			msg = fmt.Sprintf("%s %q: %s", e.Key, e.Value, e.Msg)
		case e.Key != "":
			msg = e.Key + ": " + e.Msg
		}
		if strings.Contains(e.Key, "[") && strings.Contains(e.Value, " - ") {
			// "- a" with "   - b" more indented below it: YAML reads one item, "a - b".
			fix = "indent every '-' item the same: a line indented more than the item above continues it"
		}
		res.add(lineOf(e.Source.Line), SevError, msg, fix)
	}
	for _, w := range warnings {
		res.add(lineOf(w.Source.Line), SevWarning, w.Key+": "+w.Msg, "")
	}
	return cfg, err == nil
}

func lookupFold(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if strings.EqualFold(m.Content[i].Value, key) {
			return m.Content[i]
		}
	}
	return nil
}

// moreErrors finds the errors after first. Parse stops at the first one, so the line at fault is
// replaced and the text parsed again, while that is safe: a whole block-list item becomes a harmless one (the
// list keeps its length, and its items their indexes), a whole key with its value on its line is removed.
// It returns the errors in the order found, and the warnings of the last parse when it succeeded.
func moreErrors(text string, first *Error, opts Options) ([]*Error, []Warning) {
	lines := strings.Split(text, "\n")
	errs := []*Error{first}
	for e := first; len(errs) < 100 && replaceable(lines, e); {
		line := lines[e.Source.Line-1]
		if strings.Contains(e.Key, "[") {
			lines[e.Source.Line-1] = line[:len(line)-len(strings.TrimLeft(line, " "))] + "- 0.0.0.0/32"
		} else {
			lines[e.Source.Line-1] = ""
		}
		_, warnings, err := Parse("", []byte(strings.Join(lines, "\n")), opts)
		if err == nil {
			return errs, warnings
		}
		var next *Error
		if !errors.As(err, &next) || next.Key == "" || next.Source.Line == e.Source.Line {
			break
		}
		errs = append(errs, next)
		e = next
	}
	return errs, nil
}

// replaceable reports whether the line of e can be replaced without changing how the rest of the text reads.
func replaceable(lines []string, e *Error) bool {
	n := e.Source.Line
	if e.Key == "" || n < 1 || n > len(lines) || strings.Contains(e.Msg, "cidrLimit") {
		return false
	}
	line := lines[n-1]
	body := strings.TrimLeft(line, " ")
	if strings.Contains(e.Key, "[") {
		return body == "-" || strings.HasPrefix(body, "- ")
	}
	name := strings.TrimSpace(strings.TrimSuffix(e.Key, ":"))
	rest, ok := strings.CutPrefix(body, name)
	if !ok {
		return false
	}
	rest = strings.TrimLeft(rest, " ")
	if !strings.HasPrefix(rest, ":") || strings.TrimSpace(strings.TrimPrefix(rest, ":")) == "" {
		return false // the value is on the lines below
	}
	indent := len(line) - len(body)
	for _, l := range lines[n:] {
		b := strings.TrimLeft(l, " ")
		if b == "" || b[0] == '#' {
			continue
		}
		return len(l)-len(b) <= indent
	}
	return true
}
