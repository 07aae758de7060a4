// Command tuxscope watches a Linux host's TCP connections with eBPF.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tuxscope/tuxscope/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A closed stdout (tuxscope net | head) must surface as EPIPE from
	// Write, so the run can end cleanly, not kill the process.
	signal.Ignore(syscall.SIGPIPE)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
