# Developer recipes. `just` itself: `npm install -g rust-just` (Debian 12 does not package it).

# Print the ruleset the embedded default config gives.
dry-run *ARGS:
	go run ./cmd/masqd --dry-run {{ARGS}}

# Every test; kernel and e2e tests need root.
test:
	go test ./...

# What CI runs.
ci:
	bash .ci/run

# Benchmarks (root): raw output kept in bench/raw.txt, figures copied into BENCHMARKS.md by hand.
bench:
	mkdir -p bench
	go test -run '^$' -bench . -benchtime 5x ./nft | tee bench/raw.txt

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o bin/masqd ./cmd/masqd
