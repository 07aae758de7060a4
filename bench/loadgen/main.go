// Command loadgen makes TCP connection churn on loopback for tuxscope's
// benchmarks: one process holds both the server (a listener on 127.0.0.1)
// and the clients, so every event a tracer sees for this traffic belongs to
// this one process.
//
// Each connection: connect, optionally a small payload each way (the client
// writes, the server reads it and answers as many bytes, the client reads
// them), then close, by the pattern asked for:
//
//	client  the client closes first (FIN); the server closes on EOF
//	server  the server closes first (FIN); the client closes on EOF
//	reset   the client closes with SO_LINGER 0 (RST); the server closes on the error
//
// Modes: -rate 0 (the default) runs as fast as -concurrency clients go; -rate
// N paces connection starts at N per second in total. It stops starting
// connections after -duration (or -count connections), waits for every
// connection in flight to finish at both ends, and prints its counts as one
// JSON object on stdout.
//
// -role server runs only the server: it prints {"role":"server","port":...,
// "pid":...} once listening, serves until SIGTERM or SIGINT, waits for its
// connections to finish and prints its counts. -role client runs only the
// clients, against -port. Separate processes, so that a tracer's attribution
// of each end to its own process can be checked, and so that the load looks
// like a real server's: with -reuseport several server processes listen on
// the same port, as prefork servers' workers do (nginx's reuseport), and the
// kernel spreads the connections between them; -source gives each client
// process a loopback address of its own (127.0.0.0/8), so that the client
// end of every connection names the process that made it.
//
// It only ever talks to 127.0.0.1 (from 127.0.0.0/8 with -source).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuxscope/tuxscope/bench/internal/load"
)

type counters struct {
	attempted, completed, failed  atomic.Uint64
	accepted, srvClosed, srvError atomic.Uint64
	late                          atomic.Uint64
	mu                            sync.Mutex
	errs                          map[string]uint64
}

func (c *counters) addErr(side string, err error) {
	kind := side + ": " + errKind(err)
	c.mu.Lock()
	c.errs[kind]++
	c.mu.Unlock()
}

// errKind is a short, bounded name for an error (no addresses or ports).
func errKind(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		msg := op.Err.Error()
		var se *os.SyscallError
		if errors.As(op.Err, &se) {
			msg = se.Err.Error()
		}
		return op.Op + ": " + msg
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected EOF"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func main() {
	var (
		port        = flag.Int("port", 0, "server port on 127.0.0.1 (0: any free port)")
		duration    = flag.Duration("duration", 5*time.Second, "how long to start connections")
		count       = flag.Uint64("count", 0, "stop after this many connections (0: only -duration)")
		rate        = flag.Float64("rate", 0, "connections per second in total (0: max rate)")
		concurrency = flag.Int("concurrency", 8, "client connections in flight at once")
		closeMode   = flag.String("close", "client", "who closes: client, server or reset (client with SO_LINGER 0)")
		payload     = flag.Int("payload", 32, "bytes sent each way per connection (0: none)")
		startDelay  = flag.Duration("start-delay", 0, "wait this long after listening before connecting")
		role        = flag.String("role", "both", "both: server and clients in this process; server: only the server; client: only the clients (needs -port)")
		reusePort   = flag.Bool("reuseport", false, "the server's listener sets SO_REUSEPORT, so that several -role server processes can share -port")
		source      = flag.String("source", "", "the clients' local address, in 127.0.0.0/8 (default: the kernel's choice, 127.0.0.1)")
	)
	flag.Parse()
	switch *closeMode {
	case "client", "server", "reset":
	default:
		fatalf("-close must be client, server or reset, not %q", *closeMode)
	}
	if *concurrency < 1 || *payload < 0 || *payload > 1<<20 || *rate < 0 || *duration <= 0 {
		fatalf("bad -concurrency, -payload, -rate or -duration")
	}
	switch *role {
	case "both", "server":
	case "client":
		if *port == 0 {
			fatalf("-role client needs -port")
		}
	default:
		fatalf("-role must be both, server or client, not %q", *role)
	}
	var dial func() (*net.TCPConn, error)
	c := &counters{errs: map[string]uint64{}}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: *port}
	if *source == "" {
		dial = func() (*net.TCPConn, error) { return net.DialTCP("tcp4", nil, addr) }
	} else {
		ip := net.ParseIP(*source).To4()
		if ip == nil || ip[0] != 127 {
			fatalf("-source must be an IPv4 address in 127.0.0.0/8, not %q", *source)
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Control: bindAddressNoPort}
		dial = func() (*net.TCPConn, error) {
			conn, err := d.Dial("tcp4", addr.String())
			if err != nil {
				return nil, err
			}
			return conn.(*net.TCPConn), nil
		}
	}
	var (
		ln    *net.TCPListener
		srvWG sync.WaitGroup
	)
	if *role != "client" {
		var lc net.ListenConfig
		if *reusePort {
			lc.Control = setReusePort
		}
		l, err := lc.Listen(context.Background(), "tcp4", addr.String())
		if err != nil {
			fatalf("listen: %v", err)
		}
		ln = l.(*net.TCPListener)
		addr = ln.Addr().(*net.TCPAddr)
		go serve(ln, c, &srvWG, *closeMode, *payload)
	}
	if *role == "server" {
		serveOnly(ln, c, &srvWG, addr.Port, *closeMode, *payload)
		return
	}
	if *startDelay > 0 {
		time.Sleep(*startDelay)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var budget atomic.Int64 // connections left to start with -count
	budget.Store(int64(*count))
	take := func() bool {
		if *count == 0 {
			return true
		}
		return budget.Add(-1) >= 0
	}

	var tokens chan struct{}
	if *rate > 0 {
		// Room for 100ms of starts, so that a late tick (a busy machine)
		// does not drop starts that a free client could still make.
		tokens = make(chan struct{}, max(*concurrency, int(*rate/10)))
		go pace(ctx, tokens, *rate, c)
	}

	start := time.Now()
	var cliWG sync.WaitGroup
	for i := 0; i < *concurrency; i++ {
		cliWG.Add(1)
		go func() {
			defer cliWG.Done()
			buf := make([]byte, max(*payload, 1))
			msg := make([]byte, *payload)
			for j := range msg {
				msg[j] = 'a' + byte(j%26)
			}
			for {
				if tokens != nil {
					select {
					case <-ctx.Done():
						return
					case <-tokens:
					}
				} else if ctx.Err() != nil {
					return
				}
				if !take() {
					return
				}
				c.attempted.Add(1)
				if err := client(dial, *closeMode, msg, buf); err != nil {
					c.failed.Add(1)
					c.addErr("client", err)
				} else {
					c.completed.Add(1)
				}
			}
		}()
	}
	cliWG.Wait()
	if ln != nil {
		// Every client is done; wait for the server's side of each connection.
		done := make(chan struct{})
		go func() {
			for c.accepted.Load() < c.completed.Load() {
				time.Sleep(time.Millisecond)
			}
			srvWG.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.addErr("server", errors.New("gave up waiting for server-side closes"))
		}
		ln.Close()
	}
	elapsed := time.Since(start)

	res := load.Result{
		Role: *role, Mode: "max", Concurrency: *concurrency, Close: *closeMode, Payload: *payload,
		Port: addr.Port, PID: os.Getpid(), Source: *source,
		Attempted: c.attempted.Load(), Completed: c.completed.Load(), Failed: c.failed.Load(),
		DurationSec: elapsed.Seconds(),
		Accepted:    c.accepted.Load(), ServerClosed: c.srvClosed.Load(), ServerErrors: c.srvError.Load(),
		Late: c.late.Load(),
	}
	if *rate > 0 {
		res.Mode, res.TargetRate = "fixed", *rate
	}
	if res.DurationSec > 0 {
		res.Rate = float64(res.Completed) / res.DurationSec
	}
	printResult(&res, c)
}

// serveOnly is -role server: announce, serve until SIGTERM or SIGINT, let
// the connections in flight finish, print the server's counts.
func serveOnly(ln *net.TCPListener, c *counters, srvWG *sync.WaitGroup, port int, closeMode string, payload int) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	ready, _ := json.Marshal(map[string]any{"role": "server", "port": port, "pid": os.Getpid()})
	fmt.Println(string(ready))
	start := time.Now()
	<-sig
	ln.Close()
	done := make(chan struct{})
	go func() { srvWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.addErr("server", errors.New("gave up waiting for server-side closes"))
	}
	res := load.Result{
		Role: "server", Mode: "server", Close: closeMode, Payload: payload, Port: port, PID: os.Getpid(),
		DurationSec: time.Since(start).Seconds(),
		Accepted:    c.accepted.Load(), ServerClosed: c.srvClosed.Load(), ServerErrors: c.srvError.Load(),
	}
	printResult(&res, c)
}

func printResult(res *load.Result, c *counters) {
	if len(c.errs) > 0 {
		res.Errors = c.errs
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if len(c.errs) > 0 {
		kinds := make([]string, 0, len(c.errs))
		for k, n := range c.errs {
			kinds = append(kinds, fmt.Sprintf("%s (%d)", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(os.Stderr, "loadgen: errors: %s\n", strings.Join(kinds, "; "))
	}
}

// pace hands out one token per 1/rate seconds from the start, in batches
// every millisecond; a token that finds the queue full (every client busy
// for 100ms' worth of starts) is counted late and dropped, so the rate is
// open-loop and an overload shows.
func pace(ctx context.Context, tokens chan<- struct{}, rate float64, c *counters) {
	start := time.Now()
	var issued uint64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due := uint64(now.Sub(start).Seconds() * rate)
			for ; issued < due; issued++ {
				select {
				case tokens <- struct{}{}:
				default:
					c.late.Add(1)
				}
			}
		}
	}
}

// setReusePort is a listener's control function: SO_REUSEPORT before bind.
func setReusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// bindAddressNoPort is a dialer's control function: with a local address
// given, bind() takes the address only and connect() picks the port, as it
// does without one (IP_BIND_ADDRESS_NO_PORT), instead of bind() searching
// for a free port on its own.
func bindAddressNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// client makes one connection and closes it by the pattern.
func client(dial func() (*net.TCPConn, error), closeMode string, msg, buf []byte) error {
	conn, err := dial()
	if err != nil {
		return err
	}
	if len(msg) > 0 {
		if _, err := conn.Write(msg); err != nil {
			conn.Close()
			return err
		}
		if _, err := io.ReadFull(conn, buf[:len(msg)]); err != nil {
			conn.Close()
			return err
		}
	}
	switch closeMode {
	case "server":
		// Wait for the server's FIN, then close.
		if n, err := conn.Read(buf[:1]); n != 0 || err != io.EOF {
			conn.Close()
			if err == nil {
				err = errors.New("data after the payload")
			}
			return err
		}
	case "reset":
		if err := conn.SetLinger(0); err != nil {
			conn.Close()
			return err
		}
	}
	return conn.Close()
}

// serve accepts until the listener is closed; each connection is answered
// and closed by the pattern in its own goroutine.
func serve(ln *net.TCPListener, c *counters, wg *sync.WaitGroup, closeMode string, payload int) {
	for {
		conn, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.srvError.Add(1)
			c.addErr("server", err)
			continue
		}
		// Count the accept after Add so that the client side's wait for
		// accepted >= completed, then wg.Wait(), covers this handler.
		wg.Add(1)
		c.accepted.Add(1)
		go func() {
			defer wg.Done()
			if err := handle(conn, closeMode, payload); err != nil {
				c.srvError.Add(1)
				c.addErr("server", err)
			}
			c.srvClosed.Add(1)
		}()
	}
}

func handle(conn *net.TCPConn, closeMode string, payload int) error {
	buf := make([]byte, max(payload, 1))
	if payload > 0 {
		if _, err := io.ReadFull(conn, buf[:payload]); err != nil {
			conn.Close()
			return err
		}
		if _, err := conn.Write(buf[:payload]); err != nil {
			conn.Close()
			return err
		}
	}
	switch closeMode {
	case "client", "reset":
		// Wait for the client's FIN (EOF) or RST (ECONNRESET), then close.
		n, err := conn.Read(buf[:1])
		if n != 0 {
			conn.Close()
			return errors.New("data after the payload")
		}
		if closeMode == "client" && err != io.EOF {
			conn.Close()
			return err
		}
	}
	return conn.Close()
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}
