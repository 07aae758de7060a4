// Command tuxscope watches a Linux host's TCP connections with eBPF.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/tuxscope/tuxscope/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A closed stdout (tuxscope net | head) must surface as EPIPE from
	// Write, so the run can end cleanly, not kill the process.
	signal.Ignore(syscall.SIGPIPE)
	// TUXSCOPE_CPUPROFILE=FILE writes a pprof CPU profile of the whole
	// run (for development: where the tracer's own CPU goes).
	if path := os.Getenv("TUXSCOPE_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintf(os.Stderr, "tuxscope: cpu profile: %v\n", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "tuxscope: cpu profile: %v\n", err)
		} else {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if code != 0 {
		pprof.StopCPUProfile()
		os.Exit(code)
	}
}
