package tracer

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/event"
)

// openConn says whether an entry of the kernel's conns map (socket ->
// struct conn, internal/bpf/lifecycle.bpf.h) is a connection still open:
// every tracked socket but a connect still in its handshake (whose end,
// established or failed, is not a close). So each one counted is a close
// tuxscope would have reported. This is the one place that reads struct
// conn's fields for it.
func openConn(v *bpf.TuxscopeConn) (event.OpenConn, bool) {
	if v.SynNs != 0 && v.EstablishedNs == 0 {
		return event.OpenConn{}, false
	}
	c := event.OpenConn{Inbound: v.Inbound != 0, PID: v.Owner.Pid, CgroupID: v.Owner.CgroupId}
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
	var out []event.OpenConn
	keep := func(v *bpf.TuxscopeConn) {
		if c, ok := openConn(v); ok {
			out = append(out, c)
		}
	}
	// Batch lookups on hash maps: Linux 5.6 and later.
	if err := batchWalk(m, keep); err != nil {
		return nil, fmt.Errorf("reading the connections map: %w", err)
	}
	return out, nil
}

// batchWalk reads the map a few thousand entries per system call (18,000
// entries one by one took a quarter of a second).
func batchWalk(m *ebpf.Map, fn func(*bpf.TuxscopeConn)) error {
	const chunk = 4096
	keys := make([]uint64, chunk)
	values := make([]bpf.TuxscopeConn, chunk)
	var cursor ebpf.MapBatchCursor
	for seen := 0; ; {
		n, err := m.BatchLookup(&cursor, keys, values, nil)
		for i := range n {
			fn(&values[i])
		}
		if seen += n; errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if seen > int(m.MaxEntries()) {
			return fmt.Errorf("more than its %d entries: it changed while read", m.MaxEntries())
		}
	}
}
