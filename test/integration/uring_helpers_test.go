package integration

// Helper roles that make connections the ways that bypass connect(2) and
// accept(2): io_uring's IORING_OP_CONNECT and IORING_OP_ACCEPT (raw
// io_uring syscalls, so the qemu guests, which have no C toolchain or
// liburing, run them too), and TCP Fast Open (sendto with MSG_FASTOPEN,
// or the TCP_FASTOPEN_CONNECT option).

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// From include/uapi/linux/io_uring.h (stable ABI since Linux 5.5).
const (
	ioringOpAccept       = 13
	ioringOpConnect      = 16
	ioringEnterGetevents = 1
	ioringOffSqRing      = 0
	ioringOffCqRing      = 0x8000000
	ioringOffSqes        = 0x10000000
	sqeSize, cqeSize     = 64, 16
)

// struct io_uring_params.
type uringParams struct {
	SqEntries, CqEntries, Flags, SqThreadCPU, SqThreadIdle, Features, WqFd uint32
	Resv                                                                   [3]uint32
	SqOff                                                                  struct {
		Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
		UserAddr                                                        uint64
	}
	CqOff struct {
		Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
		UserAddr                                                        uint64
	}
}

// uring is a minimal io_uring: one request at a time, submitted and
// waited for with io_uring_enter.
type uring struct {
	fd           int
	p            uringParams
	sq, cq, sqes []byte
}

func newUring() (*uring, error) {
	r := &uring{}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&r.p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r.fd = int(fd)
	var err error
	if r.sq, err = unix.Mmap(r.fd, ioringOffSqRing, int(r.p.SqOff.Array+r.p.SqEntries*4), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("mmap sq ring: %w", err)
	}
	if r.cq, err = unix.Mmap(r.fd, ioringOffCqRing, int(r.p.CqOff.Cqes+r.p.CqEntries*cqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("mmap cq ring: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, ioringOffSqes, int(r.p.SqEntries*sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("mmap sqes: %w", err)
	}
	return r, nil
}

func u32at(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// run submits one request (opcode on fd, with addr and off, as the
// opcode reads them) and returns its result: >= 0, or the errno.
func (r *uring) run(opcode uint8, fd int, addr, off uintptr) (int, error) {
	mask := *u32at(r.sq, r.p.SqOff.RingMask)
	tail := atomic.LoadUint32(u32at(r.sq, r.p.SqOff.Tail))
	idx := tail & mask
	sqe := r.sqes[idx*sqeSize : (idx+1)*sqeSize]
	clear(sqe)
	sqe[0] = opcode
	binary.NativeEndian.PutUint32(sqe[4:], uint32(int32(fd)))
	binary.NativeEndian.PutUint64(sqe[8:], uint64(off))
	binary.NativeEndian.PutUint64(sqe[16:], uint64(addr))
	binary.NativeEndian.PutUint64(sqe[32:], uint64(tail)+1) // user_data
	*u32at(r.sq, r.p.SqOff.Array+idx*4) = idx
	atomic.StoreUint32(u32at(r.sq, r.p.SqOff.Tail), tail+1)
	toSubmit := uintptr(1)
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), toSubmit, 1, ioringEnterGetevents, 0, 0)
		if errno != 0 && errno != unix.EINTR {
			return 0, fmt.Errorf("io_uring_enter: %w", errno)
		}
		if errno == 0 {
			toSubmit = 0
		}
		head := atomic.LoadUint32(u32at(r.cq, r.p.CqOff.Head))
		if head == atomic.LoadUint32(u32at(r.cq, r.p.CqOff.Tail)) {
			continue
		}
		cqe := r.cq[r.p.CqOff.Cqes+(head&*u32at(r.cq, r.p.CqOff.RingMask))*cqeSize:]
		res := int32(binary.NativeEndian.Uint32(cqe[8:]))
		atomic.StoreUint32(u32at(r.cq, r.p.CqOff.Head), head+1)
		if res < 0 {
			return 0, syscall.Errno(-res)
		}
		return int(res), nil
	}
}

// rawSockaddr is ap as the kernel reads it, with its length.
func rawSockaddr(ap netip.AddrPort) (*unix.RawSockaddrAny, uintptr) {
	var rsa unix.RawSockaddrAny
	if ap.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = ap.Addr().As4()
		return &rsa, unix.SizeofSockaddrInet4
	}
	sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = ap.Addr().As16()
	return &rsa, unix.SizeofSockaddrInet6
}

func familyOfAddr(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// helperUringClient connects with IORING_OP_CONNECT, prints "LOCAL
// addr:port", transfers like helperClient (-send, -recv) and waits for
// stdin to close before closing.
func helperUringClient(args []string) error {
	fs := flag.NewFlagSet("uring-client", flag.ContinueOnError)
	addr := fs.String("addr", "", "remote ip:port")
	send := fs.Int("send", 0, "after connecting, send this many bytes")
	recv := fs.Int("recv", 0, "then read this many bytes (-1: until EOF)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	remote, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return err
	}
	r, err := newUring()
	if err != nil {
		return err
	}
	fd, err := unix.Socket(familyOfAddr(remote.Addr()), unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	rsa, size := rawSockaddr(remote)
	_, err = r.run(ioringOpConnect, fd, uintptr(unsafe.Pointer(rsa)), size)
	runtime.KeepAlive(rsa)
	if err != nil {
		return fmt.Errorf("IORING_OP_CONNECT: %w", err)
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	fmt.Printf("LOCAL %s\n", addrOf(local))
	if err := transfer(fd, *send, *recv); err != nil {
		return err
	}
	bufio.NewReader(os.Stdin).ReadString('\n')
	return unix.Close(fd)
}

// helperUringServer listens, prints "READY port", accepts -n connections
// with IORING_OP_ACCEPT, printing "ACCEPTED peer" for each, and serves
// each like helperServer (-recv, -send, -wait-eof), then closes it.
func helperUringServer(args []string) error {
	fs := flag.NewFlagSet("uring-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen ip:port")
	n := fs.Int("n", 1, "connections to accept")
	send := fs.Int("send", 0, "per connection: send this many bytes")
	recv := fs.Int("recv", 0, "per connection: read this many bytes (-1: until EOF)")
	waitEOF := fs.Bool("wait-eof", false, "per connection: after sending, wait for the client to close first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap := netip.MustParseAddrPort(*addr)
	fd, err := unix.Socket(familyOfAddr(ap.Addr()), unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	sa, err := sockaddr(ap, familyOfAddr(ap.Addr()))
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return err
	}
	if err := unix.Listen(fd, 128); err != nil {
		return err
	}
	local, _ := unix.Getsockname(fd)
	fmt.Printf("READY %d\n", addrOf(local).Port())
	r, err := newUring()
	if err != nil {
		return err
	}
	for i := 0; i < *n; i++ {
		nfd, err := r.run(ioringOpAccept, fd, 0, 0)
		if err != nil {
			return fmt.Errorf("IORING_OP_ACCEPT: %w", err)
		}
		peer, err := unix.Getpeername(nfd)
		if err != nil {
			return err
		}
		fmt.Printf("ACCEPTED %s\n", addrOf(peer))
		if err := serveTransfer(nfd, *recv, *send, *waitEOF, false, true); err != nil {
			return err
		}
	}
	bufio.NewReader(os.Stdin).ReadString('\n')
	return unix.Close(fd)
}

// helperFastOpenClient connects with TCP Fast Open: -mode sendto sends
// -send bytes with sendto(MSG_FASTOPEN) (no connect(2) at all); -mode
// connect sets TCP_FASTOPEN_CONNECT, connects (which returns at once,
// before any SYN) and writes. It prints "LOCAL addr:port", reads -recv
// bytes, prints "DONE sent received errno" and waits for stdin to close.
func helperFastOpenClient(args []string) error {
	fs := flag.NewFlagSet("fastopen-client", flag.ContinueOnError)
	addr := fs.String("addr", "", "remote ip:port")
	mode := fs.String("mode", "sendto", "sendto (MSG_FASTOPEN) or connect (TCP_FASTOPEN_CONNECT)")
	send := fs.Int("send", 100, "bytes to send")
	recv := fs.Int("recv", 0, "then read this many bytes")
	lateACK := fs.Bool("late-ack", false, "delay the ACK of the server's SYN-ACK (TCP_DEFER_ACCEPT on this socket: up to 200 ms), so a Fast Open server accepts before its handshake ends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	remote, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return err
	}
	family := familyOfAddr(remote.Addr())
	fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	if *lateACK {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1); err != nil {
			return fmt.Errorf("TCP_DEFER_ACCEPT: %w", err)
		}
	}
	sa, err := sockaddr(remote, family)
	if err != nil {
		return err
	}
	data := make([]byte, *send)
	for i := range data {
		data[i] = 'f'
	}
	switch *mode {
	case "sendto":
		if err := unix.Sendto(fd, data, unix.MSG_FASTOPEN, sa); err != nil {
			return fmt.Errorf("sendto MSG_FASTOPEN: %w", err)
		}
	case "connect":
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT, 1); err != nil {
			return fmt.Errorf("TCP_FASTOPEN_CONNECT: %w", err)
		}
		if err := unix.Connect(fd, sa); err != nil {
			return err
		}
		if _, err := writeN(fd, data, len(data)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown -mode %q", *mode)
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	fmt.Printf("LOCAL %s\n", addrOf(local))
	if err := transfer(fd, 0, *recv); err != nil {
		return err
	}
	bufio.NewReader(os.Stdin).ReadString('\n')
	return unix.Close(fd)
}
