package tracer

import (
	"errors"
	"fmt"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/event"
)

// openConn says whether an entry of the kernel's conns map (socket ->
// struct conn, internal/bpf/lifecycle.bpf.h) is a connection that is open:
// one that completed its handshake, or was accepted here. A connect still
// in its handshake is not a connection yet. This is the one place that
// reads struct conn's fields for it.
func openConn(v *bpf.TuxscopeConn) (event.OpenConn, bool) {
	if v.EstablishedNs == 0 && v.Inbound == 0 {
		return event.OpenConn{}, false
	}
	c := event.OpenConn{Inbound: v.Inbound != 0, PID: v.Owner.Pid}
	comm := make([]byte, len(v.Owner.Comm))
	for i, ch := range v.Owner.Comm {
		comm[i] = byte(ch)
	}
	c.Comm.Set(comm)
	return c, true
}

// OpenConnections lists the connections the kernel side still tracks as
// open: established or accepted while tracing, not closed. Meant for after
// Run has returned (the hooks are detached, so the map holds still); the
// walk is bounded by the map's capacity.
func (t *Tracer) OpenConnections() ([]event.OpenConn, error) {
	m := t.loader.maps.Maps[bpf.TuxscopeMapConns]
	if m == nil {
		return nil, errors.New("the BPF object has no conns map")
	}
	var (
		key   uint64
		value bpf.TuxscopeConn
		out   []event.OpenConn
	)
	it := m.Iterate()
	// A hash map's walk restarts if the entry it stands on is deleted
	// meanwhile; the bound keeps a busy map from keeping us here.
	for seen := uint32(0); seen <= m.MaxEntries() && it.Next(&key, &value); seen++ {
		if c, ok := openConn(&value); ok {
			out = append(out, c)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the connections map: %w", err)
	}
	return out, nil
}
