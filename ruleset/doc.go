// Package ruleset is masqd's desired state as data, on any GOOS: Compile turns a config.Config into the
// Ruleset of table inet masqd (interval sets of non-masquerade destinations per family, one masquerade rule
// per family); String renders it as the nft text `nft list table inet masqd` prints once it is applied;
// Explain says why one destination is or is not masqueraded.
//
// The apply boundary is data too. A backend reports what the kernel holds as an Observed; PlanFor(want,
// observed) returns the Plan that makes the kernel hold want, one or two Transactions of Ops, and a backend
// only sends it (package nft: one netlink batch a Transaction). Fake is a backend in memory that executes
// Plans the way the kernel does and dumps the result as golden text, so that the agent's and status's tests
// need no root; nft's kernel tests prove the real backend ends where the Fake does.
//
// Nothing here needs privileges, touches the kernel, logs or keeps state. Errors shared by the backends
// (ErrNotSupported, PrivilegeError) live here so that callers test them with errors.Is and errors.As.
package ruleset
