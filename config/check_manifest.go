package config

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Check's reading of a Kubernetes ConfigMap manifest: the ConfigMap must be the one the agent reads, and the
// config is the block string under data.config, checked as a file whose lines are the manifest's.

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
	if k := lookupNodeKey(m, key); k != nil {
		return m.Content[slices.Index(m.Content, k)+1]
	}
	return nil
}

// lookupNodeKey returns the key node key in mapping m, or nil.
func lookupNodeKey(m *yaml.Node, key string) *yaml.Node {
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
func checkManifest(docs []*yaml.Node, opts Options, res *CheckResult) {
	single := len(docs) == 1
	found := false
	for _, doc := range docs {
		root := docRoot(doc)
		if root == nil {
			if single {
				res.add(doc.Line, SevError, "not a Kubernetes object", "write a ConfigMap: apiVersion, kind, metadata and data")
			}
			continue
		}
		kind := lookup(root, "kind")
		switch {
		case kind != nil && kind.Value == "ConfigMap":
		case !single:
			continue
		case kind == nil:
			res.add(root.Line, SevError, "no kind", "ip-masq-agent reads a ConfigMap: write kind: ConfigMap")
		default:
			res.add(kind.Line, SevError, fmt.Sprintf("kind is %q, not ConfigMap", kind.Value), "ip-masq-agent reads a ConfigMap: write kind: ConfigMap")
		}
		found = true
		checkConfigMap(root, opts, res)
	}
	if !found {
		res.add(0, SevError, "no ConfigMap in this file", "ip-masq-agent reads a ConfigMap named ip-masq-agent in kube-system")
	}
}

// documentedKeys are the config keys as documented; the agent matches them without regard to case.
var documentedKeys = []string{"nonMasqueradeCIDRs", "masqueradeCIDRs", "cidrLimit", "masqLinkLocal", "masqLinkLocalIPv6", "resyncInterval", "enableIPv6"}

func checkConfigMap(root *yaml.Node, opts Options, res *CheckResult) {
	switch v := lookup(root, "apiVersion"); {
	case v == nil:
		res.add(root.Line, SevError, "no apiVersion", "write apiVersion: v1")
	case v.Value != "v1":
		res.add(v.Line, SevError, fmt.Sprintf("apiVersion is %q, but a ConfigMap is v1", v.Value), "write apiVersion: v1")
	}

	meta := lookup(root, "metadata")
	if meta == nil || meta.Kind != yaml.MappingNode {
		res.add(root.Line, SevError, "no metadata: the ConfigMap needs a name and a namespace",
			"write metadata: with name: ip-masq-agent and namespace: kube-system below it")
	} else {
		switch name := lookup(meta, "name"); {
		case name == nil:
			res.add(meta.Line, SevError, "no name", "write name: "+ConfigMapName)
		case name.Value != ConfigMapName:
			res.add(name.Line, SevError, fmt.Sprintf("name is %q, but the agent reads only the ConfigMap named %s", name.Value, ConfigMapName),
				"write name: "+ConfigMapName)
		}
		switch ns := lookup(meta, "namespace"); {
		case ns == nil:
			res.add(lookupNodeKey(root, "metadata").Line, SevWarning,
				"no namespace: kubectl apply puts the ConfigMap in the current namespace (often default), where the agent does not look",
				"write namespace: kube-system, or apply it with kubectl apply -n kube-system")
		case ns.Value != ConfigMapNamespace:
			res.add(ns.Line, SevError, fmt.Sprintf("namespace is %q, but the agent's DaemonSet reads the ConfigMap in %s", ns.Value, ConfigMapNamespace),
				"write namespace: "+ConfigMapNamespace)
		}
	}

	dataKey, data := lookupNodeKey(root, "data"), lookup(root, "data")
	if data == nil || isNullNode(data) {
		line := root.Line
		if dataKey != nil {
			line = dataKey.Line
		}
		res.add(line, SevError, "no data: the ConfigMap holds no config, so the agent uses the defaults",
			"add data: with config: | and the config indented below it")
		return
	}
	if data.Kind != yaml.MappingNode {
		res.add(dataKey.Line, SevError, "data must hold keys with string values", "write data: with config: | below it")
		return
	}
	key := lookupNodeKey(data, ConfigMapKey)
	if key == nil {
		// The agent reads the key ip-masq-agent when there is no key config (agent.configData).
		if key = lookupNodeKey(data, ConfigMapAltKey); key != nil {
			res.add(key.Line, SevNote, fmt.Sprintf("the agent reads data key %s, as there is no key %s; a DaemonSet that mounts the ConfigMap as a volume must name this key in its items",
				ConfigMapAltKey, ConfigMapKey), "")
		}
	}
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
		res.add(dataKey.Line, SevError, msg, fix)
		return
	}
	v := lookup(data, key.Value)
	switch {
	case v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode:
		what := "a mapping (the config's keys written as YAML)"
		if v.Kind == yaml.SequenceNode {
			what = "a list"
		}
		res.add(key.Line, SevError, fmt.Sprintf("config holds %s, but ConfigMap data values are strings: kubectl apply rejects the file", what),
			"write config: | and indent the config below it")
		return
	case isNullNode(v) || v.Value == "":
		res.add(key.Line, SevWarning, "config is empty: the agent uses the defaults", "write the config below config: |")
	}
	if v.Style&yaml.LiteralStyle != 0 || isNullNode(v) {
		// Line n of the config is line v.Line+n of the manifest: the block starts on the line after '|'.
		if cfg, ok := checkConfig(v.Value, func(n int) int { return v.Line + n }, opts, res); ok {
			res.Configs = append(res.Configs, cfg)
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
	sub := &CheckResult{}
	cfg, ok := checkConfig(v.Value, func(int) int { return key.Line }, opts, sub)
	if ok {
		res.add(key.Line, SevWarning, fmt.Sprintf("config is %s, not a block (config: |): it works, but it is easy to break", style),
			"write config: | and the config below it, one key per line")
		res.Findings = append(res.Findings, sub.Findings...)
		res.Configs = append(res.Configs, cfg)
		return
	}
	res.add(key.Line, SevError, fmt.Sprintf("config is %s, not a block (config: |), and the text the agent gets is not a valid config", style),
		"write config: | and the config below it, one key per line")
	for _, f := range sub.Findings {
		f.Msg = "in that text: " + f.Msg
		res.Findings = append(res.Findings, f)
	}
}

func isNullNode(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }
