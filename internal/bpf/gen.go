// Package bpf holds tuxscope's BPF C sources and the Go bindings bpf2go
// generates from them (committed, so building needs no clang).
package bpf

// Regenerate with `go generate ./...` (or `make generate`); needs clang-16
// and libbpf-dev. CI fails when the committed output is stale.
//go:generate go tool bpf2go -cc clang-16 -strip llvm-strip-16 -target amd64,arm64 -type event_header -type event -type dns_event -type tls_event -type udp_flow_key -type udp_flow -type udp_sock -go-package bpf Tuxscope tuxscope.bpf.c -- -O2 -g -Wall -Werror -Iinclude
