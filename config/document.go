package config

// document is one file as ip-masq-agent's decoder reads it, before validation: which keys it sets, to what,
// and where each was written. Both readers fill it, the fast one (fast.go) for the shape nearly every file
// has, the full one (decode.go) for everything else; build (parse.go) validates it into a Config, so that the
// two readers cannot disagree on what a value means.
type document struct {
	nonMasq, masq, cluster, masqSrc              list
	egress, snatTo                               list // masqd's own lists of names and of addresses
	snatToInterface                              scalar[string]
	cidrLimit                                    scalar[int]
	masqLinkLocal, masqLinkLocalIPv6, enableIPv6 scalar[bool]
	flushConntrack                               scalar[bool]
	resyncInterval                               scalar[string] // as written; build parses it
	// topLevel is a Kubernetes object's fields at the top of the file (apiVersion, kind, ...), in file
	// order: a whole ConfigMap manifest where its config was meant. Nil for a config.
	topLevel []string
}

// where is the key of a value as written and its line (0 when unknown).
type where struct {
	name string
	line int
}

// scalar is a key holding one value. set is false when the file leaves the key out or, as upstream's JSON
// decoder has it, sets it to null: either way the default stays.
type scalar[T any] struct {
	where
	set bool
	v   T
}

// list is a key holding a list of CIDRs. set with no items is an empty list ([], or null as upstream reads
// it).
type list struct {
	where
	set   bool
	items []item
}

// item is one list entry: the text of a string, or null (a bare "-").
type item struct {
	text string
	line int
	null bool
}
