package quic

import (
	"container/list"
	"encoding/binary"
	"errors"
)

// stream puts one connection's CRYPTO data together, in at most MaxHello
// bytes.
type stream struct {
	buf []byte // grows to the highest byte received, at most MaxHello
	// ranges[:n] are the byte ranges received, [start, end), sorted,
	// neither overlapping nor touching.
	ranges [maxRanges][2]int
	n      int
}

func (s *stream) add(offset uint64, data []byte) error {
	if offset > MaxHello || uint64(len(data)) > MaxHello-offset {
		return errorf(ErrTooLarge, "CRYPTO data at %d..%d, past %d bytes", offset, offset+uint64(len(data)), MaxHello)
	}
	if len(data) == 0 {
		return nil
	}
	start, end := int(offset), int(offset)+len(data)
	if end > len(s.buf) {
		if end > cap(s.buf) {
			grown := make([]byte, end, min(MaxHello, max(end, 2*cap(s.buf))))
			copy(grown, s.buf)
			s.buf = grown
		}
		s.buf = s.buf[:end]
	}
	copy(s.buf[start:end], data)
	// Merge [start, end) into the sorted ranges: rs[i:j] are those it
	// overlaps or touches.
	rs := s.ranges[:s.n]
	i := 0
	for i < len(rs) && rs[i][1] < start {
		i++
	}
	j := i
	for j < len(rs) && rs[j][0] <= end {
		start, end = min(start, rs[j][0]), max(end, rs[j][1])
		j++
	}
	if i == j { // a new piece
		if s.n == maxRanges {
			return errorf(ErrMalformed, "CRYPTO data in more than %d pieces", maxRanges)
		}
		copy(s.ranges[i+1:s.n+1], rs[i:])
		s.n++
	} else {
		copy(s.ranges[i+1:], rs[j:])
		s.n -= j - i - 1
	}
	s.ranges[i] = [2]int{start, end}
	return nil
}

// hello returns the ClientHello if its bytes are all here, or an error:
// ErrIncomplete while they may still come.
func (s *stream) hello() ([]byte, error) {
	if s.n == 0 || s.ranges[0][0] != 0 || s.ranges[0][1] < 4 {
		return nil, errorf(ErrIncomplete, "%d CRYPTO pieces, none from offset 0 on", s.n)
	}
	if s.buf[0] != 1 {
		return nil, errorf(ErrMalformed, "TLS message type %d, not ClientHello", s.buf[0])
	}
	n := 4 + int(binary.BigEndian.Uint32(s.buf[0:4])&0xffffff)
	if n > MaxHello {
		return nil, errorf(ErrTooLarge, "ClientHello of %d bytes, more than %d", n, MaxHello)
	}
	if s.ranges[0][1] < n {
		return nil, errorf(ErrIncomplete, "%d of %d ClientHello bytes", s.ranges[0][1], n)
	}
	return s.buf[:n:n], nil
}

// scratchBuf is a copy of the datagram being read, decrypted in place so
// the caller's bytes stay untouched.
type scratchBuf []byte

func (b *scratchBuf) copyOf(d []byte) []byte {
	if cap(*b) < len(d) {
		*b = make([]byte, len(d))
	}
	*b = (*b)[:len(d)]
	copy(*b, d)
	return *b
}

// connections finds the keys for an Initial's version and connection id,
// and once the packet opened, its connection's CRYPTO stream.
type connections interface {
	keys(h *header) (*keys, error)
	stream(h *header) *stream
}

// readDatagram reads the client Initials of one datagram. It returns the
// connection's stream if any Initial opened, and the first error: a
// datagram with a damaged packet gives no ClientHello, even if the other
// packets complete it.
func readDatagram(d []byte, scratch *scratchBuf, conns connections) (*stream, error) {
	if len(d) == 0 {
		return nil, errorf(ErrNotQUIC, "empty datagram")
	}
	if len(d) > maxDatagram {
		return nil, errorf(ErrMalformed, "datagram of %d bytes", len(d))
	}
	if d[0]&0x80 == 0 {
		if d[0]&0x40 != 0 {
			return nil, errorf(ErrNotInitial, "short header packet")
		}
		return nil, errorf(ErrNotQUIC, "first byte %#02x", d[0])
	}
	pkt := scratch.copyOf(d)
	var (
		first   []byte // the first Initial's connection id
		st      *stream
		firstEr error
	)
	for i := 0; i < maxPackets && len(pkt) > 0 && pkt[0]&0x80 != 0; i++ {
		h, err := parseLong(pkt)
		if err != nil {
			if firstEr == nil {
				firstEr = err
			}
			break // without a length, the next packet cannot be found
		}
		next := pkt[h.end:]
		// RFC 9000 section 12.2: coalesced packets with another
		// destination connection id than the first are ignored.
		if h.initial && (first == nil || string(h.dcid) == string(first)) {
			if err := readInitial(&h, pkt[:h.end], conns, &st); err != nil && firstEr == nil {
				firstEr = err
			}
			if first == nil {
				first = h.dcid
			}
		}
		pkt = next
	}
	if st == nil {
		if firstEr == nil {
			firstEr = errorf(ErrNotInitial, "no Initial packet in the datagram")
		}
		return nil, firstEr
	}
	return st, firstEr
}

func readInitial(h *header, pkt []byte, conns connections, st **stream) error {
	k, err := conns.keys(h)
	if err != nil {
		return err
	}
	payload, err := open(k, h, pkt)
	if err != nil {
		return err
	}
	*st = conns.stream(h)
	_, err = frames(payload, *st)
	return err
}

// oneDatagram is ClientHello's connections: one stream, keys derived
// for each connection id met (the coalesced Initials of a datagram share
// one).
type oneDatagram struct {
	s   stream
	k   *keys
	cid []byte
}

func (o *oneDatagram) keys(h *header) (*keys, error) {
	if o.k == nil || string(o.cid) != string(h.dcid) {
		k, err := deriveKeys(h.params, h.dcid)
		if err != nil {
			return nil, err
		}
		o.k, o.cid = k, h.dcid
	}
	return o.k, nil
}

func (o *oneDatagram) stream(*header) *stream { return &o.s }

// ClientHello reads the ClientHello out of one datagram's client
// Initial packets: the TLS handshake message (type 1, 3-byte length,
// body). A ClientHello that continues in the next datagram gives
// ErrIncomplete: use an Assembler for those.
func ClientHello(datagram []byte) ([]byte, error) {
	var (
		scratch scratchBuf
		o       oneDatagram
	)
	st, err := readDatagram(datagram, &scratch, &o)
	if st == nil {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return st.hello()
}

// connKey names one connection's Initials: version and destination
// connection id.
type connKey struct {
	version uint32
	n       uint8
	id      [MaxConnIDLen]byte
}

type conn struct {
	key  connKey
	keys *keys
	s    stream
	elem *list.Element
}

// Assembler puts ClientHellos together from Initials spread over several
// datagrams, keyed by version and destination connection id. It holds at
// most its capacity of incomplete ClientHellos (each at most MaxHello
// bytes); taking one more evicts the oldest, which Evicted counts. Not
// safe for concurrent use.
type Assembler struct {
	max     int
	conns   map[connKey]*conn
	order   list.List // of *conn, oldest first
	scratch scratchBuf
	evicted uint64
	cur     *conn // the connection of the datagram being read
	// Keys derived for a connection not held yet: kept until one of its
	// Initials opens (or another connection id comes).
	pendingKeys *keys
	pendingKey  connKey
}

// DefaultConns is NewAssembler's capacity for 0.
const DefaultConns = 128

// NewAssembler returns an Assembler that holds at most conns incomplete
// ClientHellos (DefaultConns if conns <= 0).
func NewAssembler(conns int) *Assembler {
	if conns <= 0 {
		conns = DefaultConns
	}
	return &Assembler{max: conns, conns: make(map[connKey]*conn)}
}

// Add reads one datagram. It returns the ClientHello once its bytes are
// all there (the connection is then forgotten; the slice is the
// caller's), ErrIncomplete while more should come, or another error.
// A connection is only taken once one of its Initials opened, so
// datagrams that cannot be read hold no room.
func (a *Assembler) Add(datagram []byte) ([]byte, error) {
	a.cur = nil
	st, err := readDatagram(datagram, &a.scratch, a)
	c := a.cur
	a.cur = nil
	if st == nil {
		return nil, err
	}
	var hello []byte
	if err == nil {
		hello, err = st.hello()
	}
	if err == nil || errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
		// Done, or this connection's ClientHello cannot be read any more.
		a.forget(c)
	}
	return hello, err
}

func keyOf(h *header) connKey {
	key := connKey{version: h.version, n: uint8(len(h.dcid))}
	copy(key.id[:], h.dcid)
	return key
}

func (a *Assembler) keys(h *header) (*keys, error) {
	if c := a.conns[keyOf(h)]; c != nil {
		return c.keys, nil
	}
	if a.pendingKeys == nil || a.pendingKey != keyOf(h) {
		k, err := deriveKeys(h.params, h.dcid)
		if err != nil {
			return nil, err
		}
		a.pendingKeys, a.pendingKey = k, keyOf(h)
	}
	return a.pendingKeys, nil
}

func (a *Assembler) stream(h *header) *stream {
	key := keyOf(h)
	c := a.conns[key]
	if c == nil {
		c = a.take(key, a.pendingKeys)
		a.pendingKeys = nil
	}
	a.cur = c
	return &c.s
}

// take adds a connection, evicting the oldest if the assembler is full.
func (a *Assembler) take(key connKey, k *keys) *conn {
	for len(a.conns) >= a.max {
		oldest := a.order.Front()
		if oldest == nil {
			break
		}
		a.forget(oldest.Value.(*conn))
		a.evicted++
	}
	c := &conn{key: key, keys: k}
	c.elem = a.order.PushBack(c)
	a.conns[key] = c
	return c
}

func (a *Assembler) forget(c *conn) {
	if c == nil || a.conns[c.key] != c {
		return
	}
	delete(a.conns, c.key)
	a.order.Remove(c.elem)
}

// Evicted counts the incomplete ClientHellos given up to make room.
func (a *Assembler) Evicted() uint64 { return a.evicted }

// Pending is how many incomplete ClientHellos the assembler holds.
func (a *Assembler) Pending() int { return len(a.conns) }
