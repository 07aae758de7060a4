package main

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The packet hooks, one by one: what the cgroup packet programs
// (dns_egress, which also captures TLS ClientHellos and counts UDP flows,
// and dns_ingress) cost per run under loads that take their different
// paths, for this build and the -before one, interleaved over rounds. The
// churn cells cannot show it: their first data segments are plain text
// and they carry no UDP.

// hookProgs are the programs measured.
var hookProgs = []string{"dns_egress", "dns_ingress"}

// hookLoad is one load: it runs to completion and says how many units
// (connections, round trips, MiB) it made.
type hookLoad struct {
	Name, Unit, Note string
	run              func() (int, error)
}

// hookSample is one program's runs and run time under one load, in one
// round, for one build.
type hookSample struct {
	Load         int // index in the loads
	Build, Prog  string
	Round, Units int
	Runs, Ns     uint64
}

func (e *env) hookLoads(tcpAddr, udpAddr string) []hookLoad {
	o := e.o
	hello := make([]byte, 1500) // a TLS record and ClientHello header, then zeros: the capture copies it whatever it says
	copy(hello, []byte{0x16, 0x03, 0x01, 0x05, 0xd7, 0x01, 0x00, 0x05, 0xd3})
	return []hookLoad{
		{"TCP bulk", "MiB", "one connection, 64 KiB writes: data segments after the first, and ACKs",
			func() (int, error) { return o.hookMiB, hookBulk(tcpAddr, o.hookMiB) }},
		{"TCP churn, plain text first", "connection", "connect, 27 bytes of HTTP/1.1, close",
			func() (int, error) {
				return o.hookConns, hookChurn(tcpAddr, o.hookConns, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			}},
		{"TCP churn, TLS ClientHello first", "connection", "connect, a 1,500-byte ClientHello record, close: the capture's copy to the ring buffer",
			func() (int, error) { return o.hookConns, hookChurn(tcpAddr, o.hookConns, hello) }},
		{"UDP ping-pong", "round trip", "a connected socket and a local echo server, 100-byte datagrams: a known flow's counting",
			func() (int, error) { return o.hookTrips, hookPingPong(udpAddr, o.hookTrips) }},
	}
}

// packetHooks runs the loads under each build's `tuxscope net --format
// json` (every feature on by default), BPF statistics on.
func (e *env) packetHooks() ([]hookLoad, []hookSample, error) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, nil, fmt.Errorf("BPF statistics: %w", err)
	}
	defer stats.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	loads := e.hookLoads(ln.Addr().String(), pc.LocalAddr().String())
	// Every port: the packet hooks run for every packet anyway.
	tracer := &cell{Name: "this build", args: func(int) []string { return []string{"net", "--format", "json"} }}
	tracer.Tracer, tracer.attach, tracer.marker = "tuxscope", attachStderr, "tuxscope: attached"
	cells := []*cell{tracer}
	if e.before != nil {
		at := *tracer
		at.Name, at.Build = "@"+e.before.short, e.before
		cells = append(cells, &at)
	}
	var out []hookSample
	for r := 0; r < e.o.rounds; r++ {
		for i := range cells {
			c := cells[(i+r)%len(cells)]
			samples, err := e.hookRound(c, loads, r)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", c.Name, err)
			}
			out = append(out, samples...)
			logf("packet hooks: round %d/%d, %s", r+1, e.o.rounds, c.Name)
		}
	}
	return loads, out, nil
}

// hookRound starts tracer c, runs every load under it and stops it.
func (e *env) hookRound(c *cell, loads []hookLoad, round int) ([]hookSample, error) {
	t, err := e.startTracer(c, 0, fmt.Sprintf("hooks-r%d", round))
	if err != nil {
		return nil, err
	}
	defer t.stop()
	select {
	case <-t.attached:
	case <-t.exited:
		return nil, fmt.Errorf("tracer exited before attaching: %s", lastLines(t.stderrText(), 3))
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("tracer did not attach within 60s")
	}
	pid := t.cmd.Process.Pid
	var out []hookSample
	for li, l := range loads {
		before := progStats(pid)
		units, err := l.run()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Name, err)
		}
		after := progStats(pid)
		for _, name := range hookProgs {
			s := hookSample{Load: li, Build: c.Name, Round: round, Prog: name, Units: units}
			for _, a := range after {
				if a.Name != name {
					continue
				}
				s.Runs, s.Ns = a.Cnt, a.Ns
				if i := slices.IndexFunc(before, func(b progStat) bool { return b.Name == name }); i >= 0 {
					s.Runs -= before[i].Cnt
					s.Ns -= before[i].Ns
				}
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// hookBulk sends mib MiB over one connection in 64 KiB writes.
func hookBulk(addr string, mib int) error {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	for i := 0; i < mib*16; i++ {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// hookChurn makes n connections, each writing first and then closing.
func hookChurn(addr string, n int, first []byte) error {
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			return err
		}
		_, err = c.Write(first)
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// hookPingPong sends n 100-byte datagrams from one connected socket, each
// after the echo of the one before.
func hookPingPong(addr string, n int) error {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	out, in := make([]byte, 100), make([]byte, 2048)
	for i := 0; i < n; i++ {
		if _, err := c.Write(out); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(in); err != nil {
			return fmt.Errorf("round trip %d: %w", i, err)
		}
	}
	return nil
}

// hooksMarkdown is the report's section on the packet hooks: per load,
// build and program, runs per unit and the median run time per run over
// the rounds, with each round's.
func hooksMarkdown(b *strings.Builder, loads []hookLoad, samples []hookSample, o *options) {
	if len(samples) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Packet hooks one by one\n\n")
	p("The cgroup packet programs run for every packet of every process, whatever `--port` says: `dns_egress` reads DNS queries, captures a connection's first data segment when it is a TLS ClientHello and counts UDP flows; `dns_ingress` reads DNS answers and counts UDP flows. Under `tuxscope net --format json` to /dev/null (defaults: names and UDP flows on), BPF statistics on, rounds: %d, builds alternating; each load from the runner's own process over loopback:\n\n", o.rounds)
	for _, l := range loads {
		p("- %s: %s.\n", l.Name, l.Note)
	}
	p("\n| load | build | program | runs per unit | ns / run, median | ns / run, per round | ns per unit |\n|---|---|---|---|---|---|---|\n")
	type key struct {
		load        int
		build, prog string
	}
	var order []key
	by := map[key][]hookSample{}
	for _, s := range samples {
		k := key{s.Load, s.Build, s.Prog}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], s)
	}
	slices.SortStableFunc(order, func(a, b key) int { return a.load - b.load })
	for _, k := range order {
		ss := by[k]
		var per, perUnit []float64
		var runs, units uint64
		var rounds []string
		for _, s := range ss {
			runs += s.Runs
			units += uint64(s.Units)
			if s.Runs == 0 {
				rounds = append(rounds, "n/a")
				continue
			}
			v := float64(s.Ns) / float64(s.Runs)
			per = append(per, v)
			perUnit = append(perUnit, float64(s.Ns)/float64(s.Units))
			rounds = append(rounds, f0(v))
		}
		med, medUnit := "n/a", "n/a"
		if len(per) > 0 {
			med, medUnit = f0(median(per)), f0(median(perUnit))
		}
		l := loads[k.load]
		p("| %s | %s | `%s` | %s per %s | %s | %s | %s |\n", l.Name, k.build, k.prog, f3(float64(runs)/float64(max(units, 1))), l.Unit, med, strings.Join(rounds, ", "), medUnit)
	}
	p("\n")
}
