package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tuxscope/tuxscope/bench/internal/load"
)

// How a cell knows its tracer has attached.
const (
	attachStderr   = iota + 1 // a line on stderr starting with cell.marker
	attachBPFLink             // the process holds a bpf_link fd (libbpf tools)
	attachDisabled            // no tracer
)

// cell is one configuration measured in every round.
type cell struct {
	Name string
	// Kind: "max", overhead at max rate; "fixed", at the fixed rate;
	// "complete", max rate with every event to a file and BPF stats on;
	// "attrib", like complete with the loadgen as two processes; "procs",
	// max rate with the loadgen as several server and client processes
	// (-procs), against a baseline of its own.
	Kind   string
	Tracer string // "", "tuxscope", "tcplife", "tcpstates", "bpftrace"
	Build  *build // with Tracer "tuxscope": nil for this tree's, else the -before build
	Rate   float64
	ToFile bool   // the tracer's stdout goes to a file that is counted
	Layout layout // the loadgen's processes (zero: one holding server and clients)
	Stats  bool   // BPF run-time statistics are on during the cell
	// args gives the tracer's arguments for the loadgen port.
	args   func(port int) []string
	env    []string
	attach int
	marker string
	// PerConn is the number of events expected per completed connection
	// (0: not known for this cell).
	PerConn float64
	// count reads the tracer's output after it stopped: events received,
	// lost events (-1: not reported in this cell), events attributed to
	// another process than the one that made that end (-1: not known).
	count func(res *result, stdout, stderr string, lr load.Result)
	// scrape, if set, reads the tracer's counts while it still runs.
	scrape func(res *result)
	// Note is shown beside the cell's command in the report.
	Note string
}

func (e *env) cells() []*cell {
	o := e.o
	var cells []*cell
	tux := func(extra ...string) func(int) []string {
		return func(port int) []string {
			return append([]string{"net", "--port", strconv.Itoa(port)}, extra...)
		}
	}
	tuxAttach := func(c *cell) *cell {
		c.Tracer, c.attach, c.marker = "tuxscope", attachStderr, "tuxscope: attached"
		return c
	}
	add := func(c *cell) *cell { cells = append(cells, c); return c }
	// The peers, filtered to the loadgen's port where they can be.
	dPort := func(p int) []string { return []string{"-D", strconv.Itoa(p)} }
	bcc := func(c *cell, tool string) *cell {
		c.Tracer, c.attach, c.args = tool, attachBPFLink, dPort
		return c
	}
	bpftrace := func(c *cell, print bool) *cell {
		c.Tracer, c.attach, c.marker = "bpftrace", attachStderr, "__BPFTRACE_NOTIFY_PROBES_ATTACHED"
		c.env = []string{"__BPFTRACE_NOTIFY_PROBES_ATTACHED=1"}
		c.ToFile, c.PerConn = true, 2
		if print {
			c.args = func(p int) []string { return []string{"-e", bpftraceScript(p, true)} }
			c.count = countBpftracePrint
		} else {
			c.args = func(p int) []string { return []string{"-B", "line", "-e", bpftraceScript(p, false)} }
			c.count = countBpftraceMap
		}
		return c
	}

	add(&cell{Name: "baseline", Kind: "max", attach: attachDisabled})
	perState := map[string]float64{"client": 5, "server": 5, "reset": 3}[o.closeMode]
	table := add(tuxAttach(&cell{Name: "tuxscope table", Kind: "max", args: tux(), PerConn: 5,
		count: countTuxscopeTable, Note: "table to /dev/null; lost from stderr"}))
	jsonOut := add(tuxAttach(&cell{Name: "tuxscope json", Kind: "max", args: tux("--format", "json"), PerConn: 5,
		Note: "JSON to /dev/null (lost events are in band, so not seen here)"}))
	summary := add(tuxAttach(&cell{Name: "tuxscope summary", Kind: "max", ToFile: true, PerConn: 5,
		args:  tux("--summary", "--format", "json", "--top", "0"),
		count: countTuxscopeSummary, Note: "--summary --format json (one line at the end, to a file)"}))
	// The Prometheus agent: the same events aggregated in memory, nothing
	// written; its /metrics is read once after the load (scrapeServe).
	serve := func(c *cell) *cell {
		var addr string
		c.args = func(port int) []string {
			addr = fmt.Sprintf("127.0.0.1:%d", freePort())
			return []string{"serve", "--port", strconv.Itoa(port), "--listen", addr}
		}
		c.scrape = func(res *result) { scrapeServe(res, addr) }
		c.PerConn = 5
		return tuxAttach(c)
	}
	add(serve(&cell{Name: "tuxscope serve", Kind: "max",
		Note: "Prometheus agent (serve), counts read from /metrics after the load"}))
	// The same three with tuxscope built at -before: a before/after
	// comparison in the same rotation.
	if e.before != nil {
		for _, c := range []*cell{table, jsonOut, summary} {
			add(e.before.cell(c))
		}
	}
	add(tuxAttach(&cell{Name: "tuxscope table, max-delay 0", Kind: "max", args: tux("--max-delay", "0"), PerConn: 5,
		count: countTuxscopeTable, Note: "woken for every event it can be: what batching wake-ups saves"}))
	add(tuxAttach(&cell{Name: "tuxscope table, no names", Kind: "max", args: tux("--no-names"), PerConn: 5,
		count: countTuxscopeTable, Note: "without the DNS packet hooks: what hostnames cost"}))
	add(tuxAttach(&cell{Name: "tuxscope table, updates 1s", Kind: "max", args: tux("--updates", "1s"), PerConn: 5,
		count: countTuxscopeTable, Note: "--updates 1s: one sock_diag dump a second (the loadgen's connections are shorter, so no update rows)"}))
	if o.peers {
		add(bcc(&cell{Name: "tcplife -D port", Kind: "max", PerConn: 1,
			Note: "client side only (its port filters are ANDed: no either-end filter)"}, "tcplife"))
		add(&cell{Name: "tcplife (all ports)", Kind: "max", Tracer: "tcplife", attach: attachBPFLink, PerConn: 2,
			args: func(int) []string { return nil },
			Note: "no filter: both ends, and any other TCP traffic on the host"})
		add(bcc(&cell{Name: "tcpstates -D port", Kind: "max", PerConn: perState, Note: "client side only"}, "tcpstates"))
		add(bpftrace(&cell{Name: "bpftrace count", Kind: "max",
			Note: "count() of closes (either end) in a map, printed at exit"}, false))
	}

	// Completeness: every event to a file, counted; BPF run-time stats on.
	jsonFile := add(tuxAttach(&cell{Name: "tuxscope json > file", Kind: "complete", ToFile: true, Stats: true, PerConn: 5,
		args: tux("--format", "json"), count: countTuxscopeJSON,
		Note: "connect + established + accept + close x2 per connection"}))
	if e.before != nil { // and its BPF programs' cost, before and after
		add(e.before.cell(jsonFile))
	}
	if o.peers {
		add(bcc(&cell{Name: "tcplife -D port > file", Kind: "complete", ToFile: true, Stats: true, PerConn: 1,
			count: countHeaderLines, Note: "one line per client-side close"}, "tcplife"))
		add(bcc(&cell{Name: "tcpstates -D port > file", Kind: "complete", ToFile: true, Stats: true, PerConn: perState,
			count: countHeaderLines, Note: "one line per client-side state change"}, "tcpstates"))
		add(bpftrace(&cell{Name: "bpftrace print > file", Kind: "complete", Stats: true,
			Note: "one printf per close (either end)"}, true))
	}

	// Attribution: the loadgen as two processes, server and clients, so
	// that each end's events must name its own process.
	add(tuxAttach(&cell{Name: "tuxscope json > file, 2 procs", Kind: "attrib", ToFile: true, Layout: layout{1, 1}, PerConn: 5,
		args: tux("--format", "json"), count: countTuxscopeJSON,
		Note: "loadgen server and clients in two processes: is each end attributed to its own?"}))
	if o.peers {
		add(bcc(&cell{Name: "tcplife -D port > file, 2 procs", Kind: "attrib", ToFile: true, Layout: layout{1, 1}, PerConn: 1,
			count: countHeaderLines, Note: "its PID column against the client process"}, "tcplife"))
		add(bpftrace(&cell{Name: "bpftrace print > file, 2 procs", Kind: "attrib", Layout: layout{1, 1},
			Note: "`pid` at each close against the process of that end"}, true))
	}

	// Like real servers: several server processes on one port
	// (SO_REUSEPORT, as prefork workers) and several client processes,
	// -concurrency in all, against a baseline of that same load.
	pl := o.procs
	procs := pl.cellName
	add(&cell{Name: procs("baseline"), Kind: "procs", Layout: pl, attach: attachDisabled})
	add(tuxAttach(&cell{Name: procs("tuxscope table"), Kind: "procs", Layout: pl, args: tux(), PerConn: 5,
		count: countTuxscopeTable, Note: "table to /dev/null; lost from stderr"}))
	add(tuxAttach(&cell{Name: procs("tuxscope json"), Kind: "procs", Layout: pl, args: tux("--format", "json"), PerConn: 5,
		Note: "JSON to /dev/null"}))
	add(tuxAttach(&cell{Name: procs("tuxscope summary"), Kind: "procs", Layout: pl, ToFile: true, PerConn: 5,
		args:  tux("--summary", "--format", "json", "--top", "0"),
		count: countTuxscopeSummary, Note: "--summary --format json to a file: counts, and each process's peers by direction"}))
	add(serve(&cell{Name: procs("tuxscope serve"), Kind: "procs", Layout: pl,
		Note: "Prometheus agent (serve), counts read from /metrics after the load"}))
	add(tuxAttach(&cell{Name: procs("tuxscope json > file"), Kind: "procs", Layout: pl, ToFile: true, PerConn: 5,
		args: tux("--format", "json"), count: countTuxscopeJSON,
		Note: "every event counted; each client end's pid checked against the client process of its source address, each server end's against the server processes"}))
	if o.peers {
		add(bcc(&cell{Name: procs("tcplife -D port"), Kind: "procs", Layout: pl, PerConn: 1,
			Note: "client side only"}, "tcplife"))
	}

	if o.fixedRate > 0 {
		r := o.fixedRate
		add(&cell{Name: "baseline @fixed", Kind: "fixed", Rate: r, attach: attachDisabled})
		add(tuxAttach(&cell{Name: "tuxscope table @fixed", Kind: "fixed", Rate: r, args: tux(), PerConn: 5,
			count: countTuxscopeTable}))
		add(tuxAttach(&cell{Name: "tuxscope json @fixed", Kind: "fixed", Rate: r, args: tux("--format", "json"), PerConn: 5}))
		if o.peers {
			add(bcc(&cell{Name: "tcplife -D port @fixed", Kind: "fixed", Rate: r, PerConn: 1}, "tcplife"))
			add(bpftrace(&cell{Name: "bpftrace count @fixed", Kind: "fixed", Rate: r}, false))
		}
	}

	if o.cells != "" {
		var keep []*cell
		for _, c := range cells {
			if c.Tracer == "" {
				keep = append(keep, c)
				continue
			}
			for _, s := range strings.Split(o.cells, ",") {
				if s = strings.TrimSpace(s); s != "" && matchCell(c.Name, s) {
					keep = append(keep, c)
					break
				}
			}
		}
		cells = keep
	}
	return cells
}

// cell is c with tuxscope as built at b.
func (b *build) cell(c *cell) *cell {
	at := *c
	at.Name = c.Name + " @" + b.short
	at.Build = b
	at.Note = "built at " + b.short + "; " + c.Note
	return &at
}

// tracerName is the cell's tracer, with the commit of an earlier build.
func (c *cell) tracerName() string {
	if c.Build != nil {
		return c.Tracer + "@" + c.Build.short
	}
	return c.Tracer
}

// bpftraceScript counts (or prints) TCP closes at either end of the
// loadgen's port, leaving out the listener's own close.
func bpftraceScript(port int, print bool) string {
	pred := fmt.Sprintf("/args->protocol == 6 && args->newstate == 7 && args->oldstate != 10 && (args->sport == %d || args->dport == %d)/", port, port)
	action := "@closes = count();"
	if print {
		action = `printf("close %d %s %d %d\n", pid, comm, args->sport, args->dport);`
	}
	return "tracepoint:sock:inet_sock_set_state " + pred + " { " + action + " }"
}

// matchCell says whether -cells' item s selects the cell named name: a
// part of its name, or, with a leading =, its whole name (or that name
// with the -before build's " @COMMIT").
func matchCell(name, s string) bool {
	if exact, ok := strings.CutPrefix(s, "="); ok {
		return name == exact || strings.HasPrefix(name, exact+" @")
	}
	return strings.Contains(name, s)
}
