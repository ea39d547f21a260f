// Package e2e holds masqd's kernel tests. It has no non-test code.
//
// Each test builds a throwaway lab of three network namespaces (pod, node, outside) joined by veth pairs, with
// addresses shaped like a cloud VPC, and asks an echo server which source address it saw. Nothing touches the
// host's own namespace; every namespace is deleted when its test ends.
//
// The tests need root and the `ip`, `nft` and `sysctl` commands. Without them they skip; with MASQD_E2E=required in the
// environment (as in CI) a skip becomes a failure:
//
//	sudo MASQD_E2E=required go test ./e2e -count=1 -v
package e2e
