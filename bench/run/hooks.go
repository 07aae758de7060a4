package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
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
	Build, Load, Prog string
	Round, Units      int
	Runs, Ns          uint64
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
	builds := []struct{ name, bin string }{{"this build", e.tuxscope}}
	if e.before != nil {
		builds = append(builds, struct{ name, bin string }{"@" + e.before.short, e.before.bin})
	}
	var out []hookSample
	for r := 0; r < e.o.rounds; r++ {
		for i := range builds {
			b := builds[(i+r)%len(builds)]
			samples, err := hookRound(b.bin, loads)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", b.name, err)
			}
			for _, s := range samples {
				s.Build, s.Round = b.name, r
				out = append(out, s)
			}
			logf("packet hooks: round %d/%d, %s", r+1, e.o.rounds, b.name)
		}
	}
	return loads, out, nil
}

// hookRound starts one tracer, runs every load under it and stops it.
func hookRound(bin string, loads []hookLoad) ([]hookSample, error) {
	cmd := exec.Command(bin, "net", "--format", "json")
	cmd.Stdout = io.Discard
	stderr := &syncBuilder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "attached"); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("tracer exited: %v: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("tracer not attached after 30s: %s", stderr.String())
		}
	}
	var out []hookSample
	for _, l := range loads {
		before := progStats(cmd.Process.Pid)
		units, err := l.run()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Name, err)
		}
		after := progStats(cmd.Process.Pid)
		for _, name := range hookProgs {
			s := hookSample{Load: l.Name, Prog: name, Units: units}
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
	p("\n| load | build | program | runs per %s | ns / run, median | ns / run, per round | ns per %s |\n|---|---|---|---|---|---|---|\n", "unit", "unit")
	type key struct{ load, build, prog string }
	var order []key
	by := map[key][]hookSample{}
	for _, s := range samples {
		k := key{s.Load, s.Build, s.Prog}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], s)
	}
	slices.SortStableFunc(order, func(a, b key) int {
		ia := slices.IndexFunc(loads, func(l hookLoad) bool { return l.Name == a.load })
		ib := slices.IndexFunc(loads, func(l hookLoad) bool { return l.Name == b.load })
		return ia - ib
	})
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
		unit := loads[slices.IndexFunc(loads, func(l hookLoad) bool { return l.Name == k.load })].Unit
		med, medUnit := "n/a", "n/a"
		if len(per) > 0 {
			med, medUnit = f0(median(per)), f0(median(perUnit))
		}
		p("| %s | %s | `%s` | %s per %s | %s | %s | %s |\n", k.load, k.build, k.prog, f3(float64(runs)/float64(max(units, 1))), unit, med, strings.Join(rounds, ", "), medUnit)
	}
	p("\n")
}

// syncBuilder is a strings.Builder a child process's output and a reader
// can share.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
