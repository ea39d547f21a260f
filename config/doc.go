// Package config reads ip-masq-agent's configuration (YAML or JSON, the same keys and meaning as upstream
// kubernetes-sigs/ip-masq-agent) into validated values.
//
// Reading happens in two layers: the file is decoded into a tree that keeps line numbers, then each known key
// is turned into a typed value (netip.Prefix, time.Duration). Errors say where (file, line, key, value) and how
// to fix it. The package never logs: problems that do not stop the config from being used are returned as
// Warnings for the caller to report.
//
// Nothing here touches the kernel or keeps state; every function is safe for concurrent use.
package config
