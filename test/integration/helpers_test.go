package integration

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the client and server programs the tests
// observe: run through a symlink named tsclient or tsserver (that name is
// the process's comm) with TUXSCOPE_TEST_HELPER set. Sockets are made with
// raw syscalls where the test needs to choose exactly which syscall runs
// (blocking connect, accept vs accept4, a dual-stack listener).
const helperEnv = "TUXSCOPE_TEST_HELPER"

func runHelper(role string, args []string) int {
	var err error
	switch role {
	case "client":
		err = helperClient(args)
	case "server":
		err = helperServer(args)
	case "child":
		err = helperChild(args)
	case "uring-client":
		err = helperUringClient(args)
	case "uring-server":
		err = helperUringServer(args)
	case "fastopen-client":
		err = helperFastOpenClient(args)
	case "udp-client":
		err = helperUDPClient(args)
	case "udp-server":
		err = helperUDPServer(args)
	default:
		err = fmt.Errorf("unknown helper role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
		return 1
	}
	return 0
}

func sockaddr(ap netip.AddrPort, family int) (unix.Sockaddr, error) {
	switch family {
	case unix.AF_INET:
		if !ap.Addr().Is4() {
			return nil, fmt.Errorf("%v is not IPv4", ap)
		}
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, nil
	default:
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, nil
	}
}

func addrOf(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

func familyOf(v int) int {
	if v == 6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// helperClient connects once and prints "LOCAL addr:port" (or
// "FAILED errno addr:port" with the port it had bound), then waits for
// stdin to close. With -wait it first waits for a line on stdin, so the
// test can start the tracer knowing the pid.
func helperClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	family := fs.Int("family", 4, "socket family 4 or 6")
	addr := fs.String("addr", "", "remote ip:port")
	bind := fs.String("bind", "", "local ip:port to bind first")
	mode := fs.String("mode", "blocking", "blocking (raw connect) or go (Go's non-blocking dialer)")
	wait := fs.Bool("wait", false, "wait for a line on stdin before connecting (with -count, before the first)")
	name := fs.String("name", "", "thread name (comm) to connect under")
	thread := fs.String("thread", "", "connect from a thread other than the main one, named this")
	reset := fs.Bool("reset", false, "close with SO_LINGER 0 (a reset) instead of a FIN")
	count := fs.Int("count", 0, "make this many connections (printing CONNECTED n at the end): each with the -send/-recv transfer and closed, or without one held until stdin closes")
	send := fs.Int("send", 0, "after connecting, send this many bytes")
	recv := fs.Int("recv", 0, "then read this many bytes (-1: until EOF), and close without waiting")
	abort := fs.Bool("abort", false, "connect without blocking and close at once (EINPROGRESS)")
	hold := fs.Bool("hold", false, "after the transfer, keep the connection until stdin closes")
	resolve := fs.String("resolve", "", "resolve this name with Go's resolver first, and connect to its first IPv4 address at -port")
	port := fs.Int("port", 0, "with -resolve: the port to connect to")
	dnsServer := fs.String("dns-server", "", "with -resolve: the DNS server, ip:port")
	dnsTCP := fs.Bool("dns-tcp", false, "with -resolve: ask over TCP")
	fs.BoolVar(&clientTCPInfo, "tcpinfo", false, "after the transfer (without one: after connecting), print the socket's tcp_info: TCPINFO total_retrans rtt_us rttvar_us bytes_retrans")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name != "" {
		// comm is per thread: name this one and connect from it.
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&append([]byte(*name), 0)[0])), 0, 0, 0); err != nil {
			return err
		}
	}
	if *thread != "" {
		// The main goroutine keeps the main thread (whose name is the
		// process's; locked in init); the client runs in a thread of its
		// own, renamed.
		errc := make(chan error)
		go func() {
			runtime.LockOSThread()
			if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&append([]byte(*thread), 0)[0])), 0, 0, 0); err != nil {
				errc <- err
				return
			}
			fmt.Printf("THREAD %d\n", unix.Gettid())
			errc <- runClient(*family, *addr, *bind, *mode, *wait, *send, *recv, *abort, *hold, *resolve, *port, *dnsServer, *dnsTCP, *reset)
		}()
		return <-errc
	}
	if *count > 0 {
		if *wait {
			// One line, read unbuffered: manyConnections reads on.
			var b [1]byte
			for b[0] != '\n' {
				if n, err := os.Stdin.Read(b[:]); n == 0 || err != nil {
					return fmt.Errorf("waiting for a line on stdin: %v", err)
				}
			}
		}
		return manyConnections(*addr, *count, *send, *recv)
	}
	return runClient(*family, *addr, *bind, *mode, *wait, *send, *recv, *abort, *hold, *resolve, *port, *dnsServer, *dnsTCP, *reset)
}

// manyConnections makes n IPv4 connections to addr one after the other.
// With a transfer each is closed after it (the client first); without,
// all are held until stdin closes, then reset (no TIME_WAIT left behind).
func manyConnections(addr string, n, send, recv int) error {
	if err := raiseFileLimit(n + 64); err != nil {
		return err
	}
	sa, err := sockaddr(netip.MustParseAddrPort(addr), unix.AF_INET)
	if err != nil {
		return err
	}
	var held []int
	for i := 0; i < n; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		if err := unix.Connect(fd, sa); err != nil {
			return fmt.Errorf("connection %d: %w", i+1, err)
		}
		if send == 0 && recv == 0 {
			held = append(held, fd)
			continue
		}
		buf := make([]byte, 64<<10)
		if _, err := writeN(fd, buf, send); err != nil {
			return err
		}
		for got := 0; got < recv; {
			m, err := unix.Read(fd, buf)
			if err != nil || m == 0 {
				return fmt.Errorf("connection %d: read %d of %d bytes: %v", i+1, got, recv, err)
			}
			got += m
		}
		unix.Close(fd)
	}
	fmt.Printf("CONNECTED %d\n", n)
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, fd := range held {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(fd)
	}
	return nil
}

// raiseFileLimit lets this process hold n descriptors.
func raiseFileLimit(n int) error {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return err
	}
	if r.Cur >= uint64(n) {
		return nil
	}
	r.Cur = max(r.Cur, uint64(n))
	r.Max = max(r.Max, r.Cur)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return fmt.Errorf("raising the open-files limit to %d: %w", n, err)
	}
	return nil
}

// clientTCPInfo: runClient prints the socket's tcp_info after the
// transfer, just before it closes (-tcpinfo).
var clientTCPInfo bool

func runClient(family int, addr, bind, mode string, wait bool, send, recv int, abort, hold bool, resolve string, port int, dnsServer string, dnsTCP, reset bool) error {
	in := bufio.NewReader(os.Stdin)
	if wait {
		if _, err := in.ReadString('\n'); err != nil {
			return err
		}
	}
	if resolve != "" {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			if dnsTCP {
				network = "tcp"
			}
			var d net.Dialer
			return d.DialContext(ctx, network, dnsServer)
		}}
		ips, err := r.LookupNetIP(context.Background(), "ip4", resolve)
		if err != nil || len(ips) == 0 {
			return fmt.Errorf("resolving %s: %v", resolve, err)
		}
		fmt.Printf("RESOLVED %s\n", ips[0])
		addr = netip.AddrPortFrom(ips[0], uint16(port)).String()
	}
	remote, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	if mode == "go" {
		d := net.Dialer{Timeout: 5 * time.Second}
		if bind != "" {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.MustParseAddrPort(bind))
		}
		c, err := d.Dial("tcp", remote.String())
		if err != nil {
			return err
		}
		fmt.Printf("LOCAL %s\n", c.LocalAddr())
		in.ReadString('\n')
		return c.Close()
	}
	fd, err := unix.Socket(familyOf(family), unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if reset {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	if bind != "" {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		sa, err := sockaddr(netip.MustParseAddrPort(bind), familyOf(family))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, sa); err != nil {
			return err
		}
	}
	sa, err := sockaddr(remote, familyOf(family))
	if err != nil {
		return err
	}
	if abort {
		unix.SetNonblock(fd, true)
		err := unix.Connect(fd, sa)
		fmt.Printf("ABORTED %v\n", err)
		return nil // the deferred close abandons the handshake
	}
	if err := unix.Connect(fd, sa); err != nil {
		errno, _ := err.(syscall.Errno)
		fmt.Printf("FAILED %d %s\n", int(errno), bind)
		in.ReadString('\n')
		return nil
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	fmt.Printf("LOCAL %s\n", addrOf(local))
	if send != 0 || recv != 0 {
		err := transfer(fd, send, recv)
		if err == nil && clientTCPInfo {
			err = printTCPInfo(fd)
		}
		if err != nil || !hold {
			return err
		}
	} else if clientTCPInfo {
		// No transfer: right after connect.
		if err := printTCPInfo(fd); err != nil {
			return err
		}
	}
	in.ReadString('\n')
	return nil
}

// printTCPInfo prints fd's tcp_info: "TCPINFO total_retrans rtt_us
// rttvar_us bytes_retrans".
func printTCPInfo(fd int) error {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return err
	}
	fmt.Printf("TCPINFO %d %d %d %d\n", ti.Total_retrans, ti.Rtt, ti.Rttvar, ti.Bytes_retrans)
	return nil
}

// transfer writes send bytes, then reads recv bytes (-1: until EOF) and
// prints "DONE sent received errno" (errno 0 when the reads ended cleanly).
func transfer(fd, send, recv int) error {
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = 'x'
	}
	sent, err := writeN(fd, buf, send)
	if err != nil {
		return err
	}
	got, errno := 0, 0
	for recv < 0 || got < recv {
		n, err := unix.Read(fd, buf)
		if err != nil {
			errno = int(err.(syscall.Errno))
			break
		}
		if n == 0 {
			break
		}
		got += n
	}
	fmt.Printf("DONE %d %d %d\n", sent, got, errno)
	return nil
}

// helperServer listens, prints "READY port", accepts -n connections with
// the chosen syscall (blocking), printing "ACCEPTED peer" for each, then
// waits for stdin to close.
func helperServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	family := fs.Int("family", 4, "socket family 4 or 6")
	addr := fs.String("addr", "127.0.0.1:0", "listen ip:port")
	dual := fs.Bool("dualstack", false, "AF_INET6 listener that also takes IPv4 (IPV6_V6ONLY=0)")
	n := fs.Int("n", 1, "connections to accept")
	call := fs.String("syscall", "accept4", "accept or accept4")
	mode := fs.String("mode", "raw", "raw (blocking syscalls) or go (Go's net.Listener)")
	send := fs.Int("send", 0, "per connection: send this many bytes")
	recv := fs.Int("recv", 0, "per connection: read this many bytes (-1: until EOF), then close")
	reset := fs.Bool("reset", false, "per connection: close with SO_LINGER 0 (a reset) after the transfer")
	waitEOF := fs.Bool("wait-eof", false, "per connection: after sending, wait for the client to close first")
	handoff := fs.Bool("handoff", false, "per connection: a child process serves it (the fork-after-accept of sshd, PostgreSQL)")
	closeListener := fs.Bool("close-listener", false, "close the listener once the last connection is accepted")
	waitLine := fs.Bool("wait-line", false, "per connection: wait for a line on stdin before serving it")
	acceptWait := fs.Bool("accept-wait", false, "wait for a line on stdin before each accept")
	quiet := fs.Bool("quiet", false, "print ACCEPTED n once, after the last connection, instead of ACCEPTED and SERVED lines for each")
	fastOpen := fs.Int("fastopen", 0, "TCP_FASTOPEN queue length on the listener (0: no Fast Open)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mode == "go" {
		return goServer(*addr, *n)
	}
	fd, err := unix.Socket(familyOf(*family), unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if *family == 6 {
		v6only := 1
		if *dual {
			v6only = 0
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return err
		}
	}
	sa, err := sockaddr(netip.MustParseAddrPort(*addr), familyOf(*family))
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return err
	}
	if err := raiseFileLimit(*n + 64); err != nil {
		return err
	}
	if *fastOpen > 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_FASTOPEN, *fastOpen); err != nil {
			return fmt.Errorf("TCP_FASTOPEN: %w", err)
		}
	}
	if err := unix.Listen(fd, 4096); err != nil { // crowds of connects must not overflow it
		return err
	}
	local, _ := unix.Getsockname(fd)
	fmt.Printf("READY %d\n", addrOf(local).Port())
	var conns []int
	stdin := bufio.NewReader(os.Stdin)
	for i := 0; i < *n; i++ {
		if *acceptWait {
			if _, err := stdin.ReadString('\n'); err != nil {
				return err
			}
		}
		var rsa unix.RawSockaddrAny
		size := uint32(unix.SizeofSockaddrAny)
		nr := uintptr(unix.SYS_ACCEPT4)
		if *call == "accept" {
			nr = unix.SYS_ACCEPT
		}
		// accept(2) and accept4(2) with flags 0 take the same first three
		// arguments; the fourth is ignored by accept.
		nfd, _, errno := unix.Syscall6(nr, uintptr(fd), uintptr(ptr(&rsa)), uintptr(ptr(&size)), 0, 0, 0)
		if errno != 0 {
			return fmt.Errorf("%s: %v", *call, errno)
		}
		peer, err := unix.Getpeername(int(nfd))
		if errors.Is(err, unix.ENOTCONN) {
			fmt.Println("ACCEPTED closed") // the peer reset it in the accept queue
			conns = append(conns, int(nfd))
			continue
		}
		if err != nil {
			return err
		}
		if !*quiet {
			fmt.Printf("ACCEPTED %s\n", addrOf(peer))
		} else if i == *n-1 {
			fmt.Printf("ACCEPTED %d\n", *n)
		}
		if *closeListener && i == *n-1 {
			unix.Close(fd)
			fmt.Println("UNLISTENED")
		}
		if *waitLine {
			if _, err := stdin.ReadString('\n'); err != nil {
				return err
			}
		}
		if *handoff {
			if err := handOff(int(nfd), *recv, *send, *waitEOF, *reset); err != nil {
				return err
			}
			continue
		}
		if *send != 0 || *recv != 0 || *reset {
			// Read first, then answer: the client sends, then reads.
			if err := serveTransfer(int(nfd), *recv, *send, *waitEOF, *reset, !*quiet); err != nil {
				return err
			}
			continue
		}
		conns = append(conns, int(nfd))
	}
	stdin.ReadString('\n')
	for _, c := range conns {
		unix.Close(c)
	}
	if *closeListener {
		return nil
	}
	return unix.Close(fd)
}

// handOff serves an accepted connection in a child process, as servers
// that fork after accept do: the child gets the socket, this process
// closes its copy at once and waits for the child.
func handOff(fd, recv, send int, waitEOF, reset bool) error {
	child := exec.Command(os.Args[0], "-recv", fmt.Sprint(recv), "-send", fmt.Sprint(send),
		fmt.Sprintf("-wait-eof=%v", waitEOF), fmt.Sprintf("-reset=%v", reset))
	child.Env = append(os.Environ(), helperEnv+"=child")
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	child.ExtraFiles = []*os.File{os.NewFile(uintptr(fd), "conn")}
	if err := child.Start(); err != nil {
		return err
	}
	unix.Close(fd)
	return child.Wait()
}

// helperChild serves the connection on fd 3 (see handOff).
func helperChild(args []string) error {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	send := fs.Int("send", 0, "send this many bytes")
	recv := fs.Int("recv", 0, "read this many bytes (-1: until EOF) first")
	reset := fs.Bool("reset", false, "close with SO_LINGER 0 (a reset)")
	waitEOF := fs.Bool("wait-eof", false, "after sending, wait for the client to close first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Printf("CHILD %d\n", os.Getpid())
	return serveTransfer(3, *recv, *send, *waitEOF, *reset, true)
}

func ptr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// writeN writes n bytes from buf (repeated as needed) and says how many
// went out.
func writeN(fd int, buf []byte, n int) (int, error) {
	sent := 0
	for sent < n {
		w, err := unix.Write(fd, buf[:min(len(buf), n-sent)])
		if err != nil {
			return sent, err
		}
		sent += w
	}
	return sent, nil
}

// goServer accepts through Go's runtime (non-blocking accept4 and epoll),
// the way Go servers do.
func goServer(addr string, n int) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("READY %d\n", l.Addr().(*net.TCPAddr).Port)
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		fmt.Printf("ACCEPTED %s\n", c.RemoteAddr())
		conns = append(conns, c)
	}
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// serveTransfer reads recv bytes (-1: until EOF), writes send bytes, and
// closes (after the client has, with waitEOF), with a reset if asked.
func serveTransfer(fd, recv, send int, waitEOF, reset, say bool) error {
	buf := make([]byte, 64<<10)
	got := 0
	for recv < 0 || got < recv {
		n, err := unix.Read(fd, buf)
		if err != nil || n == 0 {
			break
		}
		got += n
	}
	sent, err := writeN(fd, buf, send)
	if err != nil {
		return err
	}
	for waitEOF {
		if n, err := unix.Read(fd, buf); err != nil || n == 0 {
			break
		}
	}
	if reset {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	if say {
		fmt.Printf("SERVED %d %d\n", got, sent)
	}
	return unix.Close(fd)
}
