# Developer recipes. `just` itself: `npm install -g rust-just` (Debian 12 does not package it).

# Print the ruleset the embedded default config gives.
dry-run *ARGS:
	go run ./cmd/masqd --dry-run {{ARGS}}

# Every test, as CI runs them: installs what the tests need, then runs them as root (through sudo when you
# are not) with MASQD_E2E=required, so that nothing skips but the opt-in tests. Arguments go to go test.
test *ARGS:
	./test {{ARGS}}

# What CI runs.
ci:
	bash .ci/run

# Benchmarks (root), masqd beside the iptables way, in fresh network namespaces. Raw output and benchstat's
# medians (columns per implementation, with the ratio) go to bench/; BENCHMARKS.md quotes them.
bench:
	mkdir -p bench
	go test ./ruleset ./nft -run '^$' -bench . -benchtime 5x -count 5 | tee bench/nft.txt
	go test ./e2e -run '^$' -bench 'FullApply|OnePrefixChange|Connect' -count 5 -timeout 60m | tee bench/e2e.txt
	go test ./e2e -run '^$' -bench '^BenchmarkEditToKernel$' -benchtime 1000x -count 1 | tee bench/edit.txt
	go test ./e2e -run '^$' -bench '^BenchmarkKubeEditToKernel$' -benchtime 200x -count 1 | tee bench/kube-edit.txt
	go test ./e2e -run '^$' -bench 'AgentCost' -benchtime 1x -count 1 | tee bench/agent.txt
	go test ./config -run '^$' -bench Parse -benchmem -count 1 | tee bench/config.txt
	go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -col /impl bench/e2e.txt | tee bench/benchstat.txt

# The whole path as users meet it (root): masqd's processes on a directory of four files holding 100,000
# prefixes per family (IPv4, IPv6, both), beside iptables-legacy-restore and iptables-nft-restore of
# ip-masq-agent's chain, with edits and drift observed through packets. IP_MASQ_AGENT=path/to/ip-masq-agent
# (built from kubernetes-sigs/ip-masq-agent) adds upstream's first sync and resync. BENCHMARKS.md, "End to
# end", quotes bench/endtoend.txt.
bench-e2e prefixes="100000" runs="5":
	mkdir -p bench
	MASQD_BENCH_E2E_PREFIXES={{prefixes}} MASQD_BENCH_IP_MASQ_AGENT=${IP_MASQ_AGENT:-} go test ./e2e -run '^$' -bench 'EndToEnd' -benchtime {{runs}}x -count 1 -timeout 120m | tee bench/endtoend.txt

# The version stamped into masqd: the tag (v0.1.0), or the tag, commits since and commit (v0.1.0-3-gabc1234),
# -dirty when the tree has changes; dev outside git.
version := `git describe --tags --always --dirty 2>/dev/null || echo dev`
revision := `git rev-parse HEAD 2>/dev/null || true`

# A static, stripped masqd in bin/, stamped with the version and revision (masqd --version).
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version={{version}} -X main.revision={{revision}}" -o bin/masqd ./cmd/masqd

# Set the release everywhere it is pinned: the image tag of deploy/kubernetes, the Helm chart's version and
# appVersion, and the README's install section. `just set-version 0.2.0`, then tag v0.2.0.
set-version v:
	sed -i 's/^\(  *newTag: \)v.*/\1v{{v}}/' deploy/kubernetes/base/kustomization.yaml
	sed -i 's/^version: .*/version: {{v}}/; s/^appVersion: .*/appVersion: "{{v}}"/' deploy/helm/masqd/Chart.yaml
	sed -i 's/^The release is \*\*v[^*]*\*\*: the image `ghcr.io\/masqd\/masqd:v[^`]*`/The release is **v{{v}}**: the image `ghcr.io\/masqd\/masqd:v{{v}}`/' README.md

# The container image (needs podman, docker or another OCI builder; none runs on the development machines).
image tag=("masqd:" + version) engine="podman":
	{{engine}} build -f Containerfile --build-arg VERSION={{version}} --build-arg REVISION={{revision}} -t {{tag}} .

# The reliability suite at its default sizes, rewriting the figures in RELIABILITY.md; the run's whole output
# is kept in reliability/default.txt, which the figures name.
reliability:
	#!/usr/bin/env bash
	set -euo pipefail
	mkdir -p reliability
	./test ./e2e -run 'Reliab' -v 2>&1 | tee reliability/default.txt
	go run ./e2e/internal/reliabilityreport -raw reliability/default.txt

# The same at the long sizes (10,000 edits, 3,000 kernel transactions per variant; up to its 120 minute timeout), kept in
# reliability/soak.txt.
soak:
	#!/usr/bin/env bash
	set -euo pipefail
	mkdir -p reliability
	MASQD_SOAK=1 ./test ./e2e -run 'Reliab' -timeout 120m -v 2>&1 | tee reliability/soak.txt
	go run ./e2e/internal/reliabilityreport -raw reliability/soak.txt -soak
