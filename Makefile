# tuxscope — build, run and test. Run as root on Debian 12 (see README).

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)
# Fuzzing runs a count of inputs, not a time: with a time, Go 1.26's fuzz
# coordinator can fail a run with a bare "context deadline exceeded" when
# a worker is busy at the deadline (golang/go#75804; seen in CI here).
# About 5 s per target here; the DNS stream tracker's inputs cost more.
FUZZTIME ?= 50000x
FUZZTIME_SLOW ?= 20000x

# Packages the tests and `go generate` need, from Debian's archive.
# clang-16 is pinned: the committed BPF objects are its output.
TEST_PACKAGES := clang-16 llvm-16 libbpf-dev iproute2 curl python3 tmux dnsmasq-base dnsutils podman runc prometheus

# tools/ (the kernel matrix) and bench/ are Go modules of their own, so
# that the product's go.mod carries none of their dependencies: `go test
# ./...` and `go vet ./...` at the root do not descend into them, hence the
# `go -C tools` and `go -C bench` lines below. TOOL_BIN is where `make
# matrix` and `make bench-compare` build their runners, which then run from
# the repository root (relative paths in MATRIX_FLAGS and BENCH_FLAGS are
# relative to it, as before).
TOOL_BIN := $(CURDIR)/bin

.PHONY: build run test unit integration fuzz generate check-generated test-deps lint check-deps bench

build:
	$(GO) build -o tuxscope ./cmd/tuxscope

# The static binary the container image holds (no libc: CGO_ENABLED=0),
# checked to be static. VERSION goes into `tuxscope version` and the
# tuxscope_build_info metric.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
STATIC_DIR := $(CURDIR)/build/image
.PHONY: static image
static:
	mkdir -p $(STATIC_DIR)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/tuxscope/tuxscope/internal/cli.Version=$(VERSION)" \
	  -o $(STATIC_DIR)/tuxscope ./cmd/tuxscope
	@file $(STATIC_DIR)/tuxscope | grep -q 'statically linked' || \
	  { file $(STATIC_DIR)/tuxscope; echo "tuxscope is not statically linked"; exit 1; }

# The container image: FROM scratch plus the static binary, so it builds
# offline (no base image to pull). The build context is build/image alone.
# IMAGE_TOOL=docker works as well as podman.
IMAGE ?= localhost/tuxscope:$(VERSION)
IMAGE_TOOL ?= podman
image: static
	$(IMAGE_TOOL) build -t $(IMAGE) -f Dockerfile $(STATIC_DIR)

# Build and start `tuxscope net` (needs root, or the capabilities in the
# README's Privileges section).
run: build
	./tuxscope net

# Everything CI runs: the generated code is current, code is formatted and
# vetted, unit and integration tests (integration needs root), short
# fuzzing, and the kernel matrix under qemu.
test: test-deps check-generated lint check-deps
	$(GO) test -count=1 ./...
	$(GO) -C tools test -count=1 ./...
	$(GO) -C bench test -count=1 ./...
	$(MAKE) fuzz
	$(MAKE) matrix

unit:
	$(GO) test -count=1 ./internal/...

integration:
	$(GO) test -count=1 -v ./test/integration

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/tracer
	$(GO) test -run '^$$' -fuzz '^FuzzAppendJSONString$$' -fuzztime $(FUZZTIME) ./internal/output
	$(GO) test -run '^$$' -fuzz '^FuzzAppendTerminalSafe$$' -fuzztime $(FUZZTIME) ./internal/output
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/dns
	$(GO) test -run '^$$' -fuzz '^FuzzTrackerTCP$$' -fuzztime $(FUZZTIME_SLOW) ./internal/dns
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/hosts
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/container
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/sni
	$(GO) test -run '^$$' -fuzz '^FuzzParseHandshake$$' -fuzztime $(FUZZTIME) ./internal/sni
	$(GO) test -run '^$$' -fuzz '^FuzzClientHello$$' -fuzztime $(FUZZTIME) ./internal/quic
	$(GO) test -run '^$$' -fuzz '^FuzzServerName$$' -fuzztime $(FUZZTIME) ./internal/quic

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

generate:
	$(GO) generate ./...

# Regenerate the bpf2go output and fail if it differs from what is committed.
check-generated: generate
	@git diff --exit-code --stat -- internal/bpf || \
	  { echo "generated BPF code is stale: run 'make generate' and commit the result"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- internal/bpf)" || \
	  { git status --short -- internal/bpf; echo "untracked generated files: commit them"; exit 1; }

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) -C tools vet ./...
	$(GO) -C bench vet ./...

# The product builds for arm64 as for amd64, and its layers keep their
# dependencies: the domain model links no BPF library or generated code,
# the binary none of the benchmark's plotting libraries, deploy/'s
# test-only YAML parser nor internal/quic's test-only QUIC client.
check-deps:
	GOARCH=arm64 $(GO) build ./...
	GOARCH=arm64 $(GO) vet ./...
	@if $(GO) list -deps ./internal/event | grep -E 'cilium/ebpf|internal/bpf'; then \
	  echo "internal/event must not depend on BPF code"; exit 1; fi
	@if $(GO) list -deps ./cmd/tuxscope | grep gonum; then \
	  echo "tuxscope must not link the benchmark's dependencies"; exit 1; fi
	@if $(GO) list -deps ./cmd/tuxscope | grep yaml; then \
	  echo "tuxscope must not link the deployment test's YAML parser"; exit 1; fi
	@if $(GO) list -deps ./cmd/tuxscope | grep quic-go; then \
	  echo "tuxscope must not link the QUIC parser test's QUIC client"; exit 1; fi

test-deps:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Boot Debian kernels (5.10, 6.1, 6.12, newest sid; 6.12 arm64) under qemu and run the
# integration tests inside each, once per backend, plus the host; prints the
# kernel × backend matrix (root; tools/matrix; caches in
# /var/cache/tuxscope-matrix). E.g. MATRIX_FLAGS="-backends all -run all".
MATRIX_FLAGS ?=
.PHONY: matrix
matrix:
	$(GO) -C tools build -o $(TOOL_BIN)/matrix ./matrix
	$(TOOL_BIN)/matrix $(MATRIX_FLAGS)

# Benchmarks against the peers (libbpf-tools tcplife/tcpstates, bpftrace),
# interleaved over rounds: throughput, events and lost, CPU, RSS, start-up
# (root; loopback traffic only; installs libbpf-tools and bpftrace if
# missing). Writes docs/benchmarks.md and docs/benchmarks.png. E.g.
# BENCH_FLAGS="-rounds 5 -duration 8s -fixed-rate 3000"; BENCH_FLAGS="-before
# REV" also runs tuxscope built at git revision REV, beside this tree's.
BENCH_FLAGS ?=
.PHONY: bench-compare
bench-compare:
	$(GO) -C bench build -o $(TOOL_BIN)/bench-run ./run
	BENCH_VIA_MAKE=1 $(TOOL_BIN)/bench-run $(BENCH_FLAGS)
