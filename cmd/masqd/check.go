package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/nft"
)

const checkUsage = `Usage: masqd check [flags] [FILE...]

Checks a config file, or a Kubernetes ConfigMap manifest as written for kubectl apply, before it is
applied; then prints what the config would do (the same text as masqd --dry-run). With no FILE it
checks --config; a FILE of - is the standard input (... | masqd check -).

A manifest is recognised by its apiVersion and kind. It must be a ConfigMap named ip-masq-agent in
kube-system, with the config as a block string under data.config:

  apiVersion: v1
  kind: ConfigMap
  metadata:
    name: ip-masq-agent
    namespace: kube-system
  data:
    config: |
      nonMasqueradeCIDRs:
        - 10.0.0.0/8

Every finding is one line, FILE:LINE: error|warning|note: what is wrong; how to fix it. Lines inside
config: | are the manifest's lines. Errors stop the config from being applied (by kubectl, by
ip-masq-agent or by masqd); warnings are things that work but are likely mistakes (unknown keys,
flags written as keys); notes are things that work as written but read oddly. Give it the agent's
flags (--enable-ipv6, --nomasq-all-reserved-ranges, --random-fully): they change what is valid and
what the config does.

Exit status: 0 no errors; 1 errors; 2 a file cannot be read.

Flags:
`

// checkMain is `masqd check`.
func checkMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		path    string
		cfgOpts config.Options
		nftOpts nft.Options
	)
	fs := newFlagSet("masqd check")
	addConfigFlags(fs, &path, &cfgOpts, &nftOpts)
	files, err := parseCommand(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs, checkUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "masqd check: %v\n", err)
		return 2
	}
	if len(files) == 0 {
		files = []string{path}
	}
	code := 0
	for i, file := range files {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		data, err := readCheckFile(file, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "masqd check: %v\n", err)
			code = 2
			continue
		}
		name := file
		if file == "-" {
			name = stdinName
		}
		res := checkFile(data, cfgOpts)
		res.write(stdout, name, nftOpts)
		if res.count(sevError) > 0 && code == 0 {
			code = 1
		}
	}
	return code
}

// stdinName names the standard input in findings (masqd check -).
const stdinName = "<stdin>"

// readCheckFile reads file, or stdin when file is "-".
func readCheckFile(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, config.MaxFileSize+4096))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", stdinName, err)
		}
		return data, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory: check its files one by one", file)
	}
	// A ConfigMap holds at most 1 MiB; read a little more, so that config.Parse can say the file is too large.
	return io.ReadAll(io.LimitReader(f, config.MaxFileSize+4096))
}

type severity int

const (
	sevError severity = iota
	sevWarning
	sevNote
)

func (s severity) String() string { return [...]string{"error", "warning", "note"}[s] }

// finding is one problem, at a line of the file (0: the whole file).
type finding struct {
	line int
	sev  severity
	msg  string
	fix  string
}

// checkResult is what check found in one file.
type checkResult struct {
	findings []finding
	// configs are the configs found (one per ConfigMap), when the file has no error.
	configs []config.Config
	// repaired are the lines read as if fixed, to check the rest of the file.
	repaired []int
}

func (r *checkResult) add(line int, sev severity, msg, fix string) {
	r.findings = append(r.findings, finding{line: line, sev: sev, msg: msg, fix: fix})
}

func (r *checkResult) count(s severity) int {
	n := 0
	for _, f := range r.findings {
		if f.sev == s {
			n++
		}
	}
	return n
}

// write prints the findings in line order, a summary, and what the config would do.
func (r *checkResult) write(w io.Writer, file string, nftOpts nft.Options) {
	slices.SortStableFunc(r.findings, func(a, b finding) int { return cmp.Compare(a.line, b.line) })
	for _, f := range r.findings {
		s := fmt.Sprintf("%s: %s: %s", location(file, f.line), f.sev, f.msg)
		if f.fix != "" {
			s += "; " + f.fix
		}
		fmt.Fprintln(w, s)
	}
	if len(r.repaired) > 0 {
		lines := make([]string, len(r.repaired))
		for i, l := range r.repaired {
			lines[i] = strconv.Itoa(l)
		}
		word := "line"
		if len(lines) > 1 {
			word = "lines"
		}
		fmt.Fprintf(w, "%s: note: %s %s read as if fixed, to check the rest of the file\n", file, word, strings.Join(lines, ", "))
	}
	errs := r.count(sevError)
	fmt.Fprintf(w, "%s: %s, %s, %s\n", file, plural(errs, "error"), plural(r.count(sevWarning), "warning"), plural(r.count(sevNote), "note"))
	if errs > 0 {
		fmt.Fprintln(w, "Not applied as it is: fix the errors, then check again.")
		return
	}
	for i, cfg := range r.configs {
		if i == 0 {
			fmt.Fprintln(w, "\nWhat it does (the same as masqd --dry-run):")
		}
		fmt.Fprint(w, nft.Compile(cfg, nftOpts).String())
	}
}

// checkFile checks a raw config file or a ConfigMap manifest.
func checkFile(data []byte, opts config.Options) *checkResult {
	res := &checkResult{}
	text := lintText(string(data), res)
	docs, err := decodeDocuments(text)
	if err != nil {
		res.findings = append(res.findings, yamlFinding(text, err))
		return res
	}
	if isManifest(docs) {
		checkManifest(docs, opts, res)
		return res
	}
	if cfg, ok := checkConfig(text, func(n int) int { return n }, opts, res); ok {
		res.configs = append(res.configs, cfg)
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
func lintText(text string, res *checkResult) string {
	lines := strings.Split(text, "\n")
	repaired := false
	for i := range lines {
		n := i + 1
		fixed := false
		body := strings.TrimLeft(lines[i], " ")
		indent := lines[i][:len(lines[i])-len(body)]
		if j := strings.IndexFunc(body, func(r rune) bool { return r != '\u00a0' && r != ' ' && r != '\t' }); j > 0 && strings.ContainsRune(body[:j], '\u00a0') {
			res.add(n, sevError, "non-breaking space (U+00A0) in the indentation: YAML indents with plain spaces only",
				"replace it with a space")
			body = strings.ReplaceAll(body[:j], "\u00a0", " ") + body[j:]
			lines[i] = indent + body
			body = strings.TrimLeft(lines[i], " ")
			indent = lines[i][:len(lines[i])-len(body)]
			fixed = true
		}
		if body == "" || body[0] == '#' {
			if fixed {
				res.repaired = append(res.repaired, n)
				repaired = true
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(body)
		if name, ok := webDashes[r]; ok && (len(body) == size || body[size] == ' ') {
			res.add(n, sevError, fmt.Sprintf("%q (%s) is not a YAML list marker, so this item is read as text (copied from a web page?)", string(r), name),
				"write a hyphen: -")
			lines[i] = indent + "-" + body[size:]
			fixed = true
		}
		if m := colonHashRE.FindStringSubmatchIndex(lines[i]); m != nil {
			key := strings.TrimSpace(lines[i][m[2]:m[3]])
			res.add(n, sevError, fmt.Sprintf("'#' right after %q does not start a comment (YAML needs a space before it), so the line is read as text", key+":"),
				fmt.Sprintf("put a space before '#': %s: # ...", strings.TrimLeft(key, "- ")))
			colon := m[1] - 2 // the match ends with ":#"
			lines[i] = lines[i][:colon+1] + " " + lines[i][colon+1:]
			fixed = true
		}
		if m := bareKeyRE.FindStringSubmatch(lines[i]); m != nil && nextLineIsKeyBelow(lines, i, len(m[1])) {
			res.add(n, sevError, fmt.Sprintf("%s has no ':' after it, so the lines indented below it are not its value", m[2]),
				fmt.Sprintf("write %s:", m[2]))
			lines[i] = m[1] + m[2] + ":"
			fixed = true
		}
		if fixed {
			res.repaired = append(res.repaired, n)
			repaired = true
		}
	}
	if !repaired {
		res.repaired = nil
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

// decodeDocuments decodes every YAML document of text.
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
			return nil, err
		}
		docs = append(docs, &doc)
	}
}

// yamlFinding words a YAML syntax error. config.Parse reads the same YAML and knows how the decoder numbers
// lines, so its error is used when it is about the same problem.
func yamlFinding(text string, yerr error) finding {
	f := finding{sev: sevError, msg: "invalid YAML: " + strings.TrimPrefix(yerr.Error(), "yaml: "),
		fix: "check the indentation and quoting"}
	_, _, err := config.Parse("", []byte(text), config.Options{})
	var e *config.Error
	if errors.As(err, &e) && e.Key == "" && !strings.HasPrefix(e.Msg, "more than one") {
		f = finding{line: e.Source.Line, sev: sevError, msg: e.Msg, fix: e.Fix}
	}
	if l := misindentedBlockBefore(text, f.line); l.line > 0 {
		f.line = l.line
		f.msg = fmt.Sprintf("invalid YAML: %s, indented less than its first line (line %d) and more than the key",
			l.what, l.first)
		f.fix = fmt.Sprintf("indent this line by %d spaces, as line %d", l.indent, l.first)
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

// isManifest reports whether any document is a Kubernetes object (has apiVersion or kind).
func isManifest(docs []*yaml.Node) bool {
	for _, d := range docs {
		if root := docRoot(d); root != nil && (lookup(root, "apiVersion") != nil || lookup(root, "kind") != nil) {
			return true
		}
	}
	return false
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		return doc.Content[0]
	}
	return nil
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if k := lookupKey(m, key); k != nil {
		return m.Content[slices.Index(m.Content, k)+1]
	}
	return nil
}

// lookupKey returns the key node key in mapping m, or nil.
func lookupKey(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

// checkManifest checks each ConfigMap of a manifest. In a file of several objects only ConfigMaps are checked.
func checkManifest(docs []*yaml.Node, opts config.Options, res *checkResult) {
	single := len(docs) == 1
	found := false
	for _, doc := range docs {
		root := docRoot(doc)
		if root == nil {
			if single {
				res.add(doc.Line, sevError, "not a Kubernetes object", "write a ConfigMap: apiVersion, kind, metadata and data")
			}
			continue
		}
		kind := lookup(root, "kind")
		switch {
		case kind != nil && kind.Value == "ConfigMap":
		case !single:
			continue
		case kind == nil:
			res.add(root.Line, sevError, "no kind", "ip-masq-agent reads a ConfigMap: write kind: ConfigMap")
		default:
			res.add(kind.Line, sevError, fmt.Sprintf("kind is %q, not ConfigMap", kind.Value), "ip-masq-agent reads a ConfigMap: write kind: ConfigMap")
		}
		found = true
		checkConfigMap(root, opts, res)
	}
	if !found {
		res.add(0, sevError, "no ConfigMap in this file", "ip-masq-agent reads a ConfigMap named ip-masq-agent in kube-system")
	}
}

// Names of the ConfigMap the agent reads: the DaemonSet mounts data.config of kube-system/ip-masq-agent as the
// file /etc/config/ip-masq-agent.
const (
	configMapName      = "ip-masq-agent"
	configMapNamespace = "kube-system"
	configMapKey       = "config"
)

// documentedKeys are the config keys as documented; the agent matches them without regard to case.
var documentedKeys = []string{"nonMasqueradeCIDRs", "masqueradeCIDRs", "cidrLimit", "masqLinkLocal", "masqLinkLocalIPv6", "resyncInterval", "enableIPv6"}

func checkConfigMap(root *yaml.Node, opts config.Options, res *checkResult) {
	switch v := lookup(root, "apiVersion"); {
	case v == nil:
		res.add(root.Line, sevError, "no apiVersion", "write apiVersion: v1")
	case v.Value != "v1":
		res.add(v.Line, sevError, fmt.Sprintf("apiVersion is %q, but a ConfigMap is v1", v.Value), "write apiVersion: v1")
	}

	meta := lookup(root, "metadata")
	if meta == nil || meta.Kind != yaml.MappingNode {
		res.add(root.Line, sevError, "no metadata: the ConfigMap needs a name and a namespace",
			"write metadata: with name: ip-masq-agent and namespace: kube-system below it")
	} else {
		switch name := lookup(meta, "name"); {
		case name == nil:
			res.add(meta.Line, sevError, "no name", "write name: "+configMapName)
		case name.Value != configMapName:
			res.add(name.Line, sevError, fmt.Sprintf("name is %q, but the agent reads only the ConfigMap named %s", name.Value, configMapName),
				"write name: "+configMapName)
		}
		switch ns := lookup(meta, "namespace"); {
		case ns == nil:
			res.add(lookupKey(root, "metadata").Line, sevWarning,
				"no namespace: kubectl apply puts the ConfigMap in the current namespace (often default), where the agent does not look",
				"write namespace: kube-system, or apply it with kubectl apply -n kube-system")
		case ns.Value != configMapNamespace:
			res.add(ns.Line, sevError, fmt.Sprintf("namespace is %q, but the agent's DaemonSet reads the ConfigMap in %s", ns.Value, configMapNamespace),
				"write namespace: "+configMapNamespace)
		}
	}

	dataKey, data := lookupKey(root, "data"), lookup(root, "data")
	if data == nil || isNullNode(data) {
		line := root.Line
		if dataKey != nil {
			line = dataKey.Line
		}
		res.add(line, sevError, "no data: the ConfigMap holds no config, so the agent uses the defaults",
			"add data: with config: | and the config indented below it")
		return
	}
	if data.Kind != yaml.MappingNode {
		res.add(dataKey.Line, sevError, "data must hold keys with string values", "write data: with config: | below it")
		return
	}
	key := lookupKey(data, configMapKey)
	if key == nil {
		var keys, configKeys []string
		for i := 0; i+1 < len(data.Content); i += 2 {
			k := data.Content[i].Value
			keys = append(keys, k)
			if slices.ContainsFunc(documentedKeys, func(d string) bool { return strings.EqualFold(d, k) }) {
				configKeys = append(configKeys, k)
			}
		}
		msg := "data has no key config: the DaemonSet mounts data.config as the file the agent reads, so it uses the defaults"
		fix := "write the config under config: |"
		switch {
		case len(configKeys) > 0:
			msg = fmt.Sprintf("data has no key config, and %s are config keys written straight under data: the agent sees no config and uses the defaults",
				strings.Join(configKeys, ", "))
			fix = "write config: | under data and the config indented below it"
		case len(keys) == 1:
			msg = fmt.Sprintf("data has no key config (it has %s): the DaemonSet mounts data.config as the file the agent reads, so it uses the defaults", keys[0])
			fix = fmt.Sprintf("rename %s to config", keys[0])
		case len(keys) > 1:
			msg = fmt.Sprintf("data has no key config (it has %s): the DaemonSet mounts data.config as the file the agent reads, so it uses the defaults", strings.Join(keys, ", "))
		}
		res.add(dataKey.Line, sevError, msg, fix)
		return
	}
	v := lookup(data, configMapKey)
	switch {
	case v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode:
		what := "a mapping (the config's keys written as YAML)"
		if v.Kind == yaml.SequenceNode {
			what = "a list"
		}
		res.add(key.Line, sevError, fmt.Sprintf("config holds %s, but ConfigMap data values are strings: kubectl apply rejects the file", what),
			"write config: | and indent the config below it")
		return
	case isNullNode(v) || v.Value == "":
		res.add(key.Line, sevWarning, "config is empty: the agent uses the defaults", "write the config below config: |")
	}
	if v.Style&yaml.LiteralStyle != 0 || isNullNode(v) {
		// Line n of the config is line v.Line+n of the manifest: the block starts on the line after '|'.
		if cfg, ok := checkConfig(v.Value, func(n int) int { return v.Line + n }, opts, res); ok {
			res.configs = append(res.configs, cfg)
		}
		return
	}

	// A folded, plain or quoted string: the agent reads the string as it comes out of YAML, whose lines are
	// not the manifest's. Its findings are put on the config: line.
	style := "a plain string"
	switch {
	case v.Style&yaml.FoldedStyle != 0:
		style = "a folded string (config: >, which joins lines)"
	case v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		style = "a quoted string"
	}
	sub := &checkResult{}
	cfg, ok := checkConfig(v.Value, func(int) int { return key.Line }, opts, sub)
	if ok {
		res.add(key.Line, sevWarning, fmt.Sprintf("config is %s, not a block (config: |): it works, but it is easy to break", style),
			"write config: | and the config below it, one key per line")
		res.findings = append(res.findings, sub.findings...)
		res.configs = append(res.configs, cfg)
		return
	}
	res.add(key.Line, sevError, fmt.Sprintf("config is %s, not a block (config: |), and the text the agent gets is not a valid config", style),
		"write config: | and the config below it, one key per line")
	for _, f := range sub.findings {
		f.msg = "in that text: " + f.msg
		res.findings = append(res.findings, f)
	}
}

func isNullNode(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// checkConfig checks the text of a config as the agent reads it; lineOf maps its lines to the file's. It
// returns the config when it is valid.
func checkConfig(text string, lineOf func(int) int, opts config.Options, res *checkResult) (config.Config, bool) {
	cfg, warnings, err := config.Parse("", []byte(text), opts)
	var errs []*config.Error
	if err != nil {
		var e *config.Error
		if !errors.As(err, &e) {
			res.add(lineOf(0), sevError, err.Error(), "")
			return config.Config{}, false
		}
		errs, warnings = moreErrors(text, e, opts)
	}

	var root yaml.Node
	if yaml.Unmarshal([]byte(text), &root) == nil {
		if m := docRoot(&root); m != nil {
			if kind, api := lookupFold(m, "kind"), lookupFold(m, "apiVersion"); kind != nil && api != nil {
				// config.Parse refuses it, saying why; its error is placed on the first of these keys.
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
		res.add(lineOf(e.Source.Line), sevError, msg, fix)
	}
	for _, w := range warnings {
		res.add(lineOf(w.Source.Line), sevWarning, w.Key+": "+w.Msg, "")
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

// moreErrors finds the errors after first. config.Parse stops at the first one, so the line at fault is
// replaced and the text parsed again, while that is safe: a whole block-list item becomes a harmless one (the
// list keeps its length, and its items their indexes), a whole key with its value on its line is removed.
// It returns the errors in the order found, and the warnings of the last parse when it succeeded.
func moreErrors(text string, first *config.Error, opts config.Options) ([]*config.Error, []config.Warning) {
	lines := strings.Split(text, "\n")
	errs := []*config.Error{first}
	for e := first; len(errs) < 100 && replaceable(lines, e); {
		line := lines[e.Source.Line-1]
		if strings.Contains(e.Key, "[") {
			lines[e.Source.Line-1] = line[:len(line)-len(strings.TrimLeft(line, " "))] + "- 0.0.0.0/32"
		} else {
			lines[e.Source.Line-1] = ""
		}
		_, warnings, err := config.Parse("", []byte(strings.Join(lines, "\n")), opts)
		if err == nil {
			return errs, warnings
		}
		var next *config.Error
		if !errors.As(err, &next) || next.Key == "" || next.Source.Line == e.Source.Line {
			break
		}
		errs = append(errs, next)
		e = next
	}
	return errs, nil
}

// replaceable reports whether the line of e can be replaced without changing how the rest of the text reads.
func replaceable(lines []string, e *config.Error) bool {
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
