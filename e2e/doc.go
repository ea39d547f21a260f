//go:build linux

// Package e2e holds masqd's kernel tests. It has no non-test code.
//
// Each test builds a throwaway lab of three network namespaces (pod, node, outside) joined by veth pairs, with
// addresses shaped like a cloud VPC, and asks an echo server which source address it saw. Nothing touches the
// host's own namespace; every namespace is deleted when its test ends.
//
// The tests need root and the `ip`, `nft` and `sysctl` commands, and some of them more (iptables, conntrack,
// systemd-analyze, setpriv, and kube-apiserver, etcd and kubectl built into ~/.cache/masqd-e2e). Without what
// they need they skip through internal/testenv, saying why; with MASQD_E2E=required in the environment a skip
// is a failure that names the package to install. ./test, at the repository root, installs all of it and
// runs the tests that way, as root:
//
//	./test ./e2e -run TestAgentDrift -v
package e2e
