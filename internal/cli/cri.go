package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tuxscope/tuxscope/internal/cri"
)

const (
	// criProbeTimeout bounds each default socket's probe: a socket that
	// is there but does not answer costs at most this at start.
	criProbeTimeout = time.Second
	// criOpenTimeout bounds the start of an explicit --cri-socket.
	criOpenTimeout = 3 * time.Second
)

// openCRI is the CRI runtime that names pods and containers, as
// --cri-socket says: none; the first of the default sockets that answers
// (nil, quietly, if none does); or the one given, whose failure is
// returned for the caller to report (it goes on without names).
func openCRI(ctx context.Context, socket string) (*cri.Client, error) {
	switch socket {
	case "none":
		return nil, nil
	case "":
		return cri.Probe(ctx, cri.DefaultSockets, criProbeTimeout), nil
	}
	ctx, cancel := context.WithTimeout(ctx, criOpenTimeout)
	defer cancel()
	return cri.Open(ctx, socket)
}

// startCRI opens the CRI runtime in the background (while the tracer
// loads); wait returns it, once, after saying on stderr why an explicit
// --cri-socket gives no names.
func startCRI(ctx context.Context, socket string, stderr io.Writer) (wait func() *cri.Client) {
	type result struct {
		c   *cri.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := openCRI(ctx, socket)
		ch <- result{c, err}
	}()
	return func() *cri.Client {
		r := <-ch
		if r.err != nil {
			fmt.Fprintf(stderr, "tuxscope: --cri-socket %s: %v; going on without pod and container names\n", socket, r.err)
		}
		return r.c
	}
}

// reportCRI says on stderr, at the end, what went wrong with the runtime
// during the run, if anything: failed listings (names may be missing or
// stale) and containers beyond the cache's bound.
func reportCRI(c *cri.Client, stderr io.Writer) {
	st := c.Stats()
	if st.Failures > 0 {
		fmt.Fprintf(stderr, "tuxscope: the CRI runtime at %s failed %d of %d listings (last: %v): pod and container names may be missing or stale\n", c.Socket, st.Failures, st.Refreshes, st.LastError)
	}
	if st.Dropped > 0 {
		fmt.Fprintf(stderr, "tuxscope: the CRI runtime at %s lists more than %d containers and pods: %d left unnamed\n", c.Socket, cri.MaxEntries, st.Dropped)
	}
}
