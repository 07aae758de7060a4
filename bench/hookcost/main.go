// Command hookcost measures what the cgroup egress program (dns_egress,
// which also captures TLS ClientHellos) costs per run under three loads
// on loopback, for one or more tuxscope binaries in turn: a bulk transfer
// (mostly data segments after the first, and ACKs), connections whose
// first segment is a TLS ClientHello, and connections whose first segment
// is plain text. It turns on the kernel's BPF statistics for the run and
// reads the program's run count and time from its info.
//
//	go run ./hookcost -bin ../tuxscope -bin /tmp/base/tuxscope
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

type bins []string

func (b *bins) String() string     { return strings.Join(*b, ",") }
func (b *bins) Set(s string) error { *b = append(*b, s); return nil }

func main() {
	var list bins
	flag.Var(&list, "bin", "tuxscope binary (repeat)")
	rounds := flag.Int("rounds", 3, "rounds per binary, interleaved")
	conns := flag.Int("conns", 2000, "connections per churn load")
	mb := flag.Int("mb", 2000, "MB of the bulk load")
	prog := flag.String("prog", "dns_egress", "program to measure")
	flag.Parse()
	if err := run(list, *rounds, *conns, *mb, *prog); err != nil {
		fmt.Fprintln(os.Stderr, "hookcost:", err)
		os.Exit(1)
	}
}

func run(list []string, rounds, conns, mb int, prog string) error {
	const stats = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(stats)
	if err != nil {
		return err
	}
	if err := os.WriteFile(stats, []byte("1"), 0); err != nil {
		return err
	}
	defer os.WriteFile(stats, old, 0)

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
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
	addr := ln.Addr().String()
	hello := fakeHello()
	loads := []struct {
		name string
		fn   func() error
	}{
		{"bulk", func() error { return bulk(addr, mb) }},
		{"tls-churn", func() error { return churn(addr, conns, hello) }},
		{"plain-churn", func() error { return churn(addr, conns, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }},
	}
	fmt.Printf("%-40s %-12s %10s %10s %8s\n", "binary", "load", "runs", "ns total", "ns/run")
	for r := 0; r < rounds; r++ {
		for _, bin := range list {
			cmd := exec.Command(bin, "net", "--format", "json")
			cmd.Stdout = io.Discard
			stderr := &strings.Builder{}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				return err
			}
			for !strings.Contains(stderr.String(), "attached") {
				if cmd.ProcessState != nil {
					return fmt.Errorf("%s: %s", bin, stderr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			p, err := findProg(prog)
			if err != nil {
				cmd.Process.Kill()
				return err
			}
			for _, l := range loads {
				n0, t0 := progStats(p)
				if err := l.fn(); err != nil {
					return err
				}
				n1, t1 := progStats(p)
				ns := 0.0
				if n1 > n0 {
					ns = float64(t1-t0) / float64(n1-n0)
				}
				fmt.Printf("%-40s %-12s %10d %10d %8.1f\n", bin, l.name, n1-n0, t1-t0, ns)
			}
			p.Close()
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
		}
	}
	return nil
}

// findProg is the newest loaded program of that name.
func findProg(name string) (*ebpf.Program, error) {
	var found ebpf.ProgramID
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && info.Name == name {
			found = id
		}
		p.Close()
	}
	if found == 0 {
		return nil, fmt.Errorf("no program %s loaded", name)
	}
	return ebpf.NewProgramFromID(found)
}

func progStats(p *ebpf.Program) (runs, ns uint64) {
	st, err := p.Stats()
	if err != nil {
		return 0, 0
	}
	return st.RunCount, uint64(st.Runtime)
}

// bulk sends mb megabytes over one connection in 64 KiB writes.
func bulk(addr string, mb int) error {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	for i := 0; i < mb*16; i++ {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// churn makes n connections, each writing first and then closing.
func churn(addr string, n int, first []byte) error {
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			return err
		}
		c.Write(first)
		c.Close()
	}
	return nil
}

// fakeHello is a 1,500-byte TLS record header and ClientHello header
// followed by zeros: the capture copies it whatever it says.
func fakeHello() []byte {
	b := make([]byte, 1500)
	copy(b, []byte{0x16, 0x03, 0x01, 0x05, 0xd7, 0x01, 0x00, 0x05, 0xd3})
	return b
}
