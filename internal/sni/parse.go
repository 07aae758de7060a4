// Package sni reads the server name (SNI) and the offered application
// protocols (ALPN) from the first bytes a client sent on a TLS
// connection: its ClientHello, as the kernel side captured it from the
// connection's first data segment. Plain Go, bounded, no dependencies;
// the input is untrusted (any process can send anything).
package sni

import (
	"errors"
)

// Limits on what is kept of a ClientHello.
const (
	// MaxNameLen is the longest server name accepted (a DNS name's).
	MaxNameLen = 253
	// MaxProtocols is how many ALPN protocols are kept; more are
	// ignored.
	MaxProtocols = 8
	// maxRecord is the TLS plaintext record's limit (RFC 8446 5.1).
	maxRecord = 1 << 14
)

// Errors Parse returns. A ClientHello that continues past the captured
// bytes is not an error when its server name lay wholly in them.
var (
	// ErrNotClientHello: the bytes are not a TLS handshake record
	// carrying a well-formed ClientHello (as far as they go).
	ErrNotClientHello = errors.New("not a TLS ClientHello")
	// ErrSplit: the ClientHello continues in later segments (its
	// record is longer than the first segment), and its server name, if
	// any, was not in the first one.
	ErrSplit = errors.New("ClientHello split over segments, no server name in the first")
	// ErrOversized: the first segment was longer than what was
	// captured of it, or the ClientHello longer than a TLS record (it
	// continues in the next), and the server name, if any, was not in
	// the part read.
	ErrOversized = errors.New("ClientHello larger than the capture, no server name in the part captured")
)

// Hello is what a ClientHello says about where it is going.
type Hello struct {
	// ServerName is the server_name extension's host_name (lower case
	// not enforced: as the client sent it); "" if none.
	ServerName string
	// Protocols are the ALPN protocols offered, in the client's order
	// (h2, http/1.1); nil if none.
	Protocols []string
	// Partial: the ClientHello continued past the bytes seen; what is
	// here came from extensions that lay wholly within them.
	Partial bool
}

// reader is a bounded cursor over b.
type reader struct {
	b   []byte
	off int
	bad bool // a read went past the end
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) u8() int {
	if r.left() < 1 {
		r.bad = true
		return 0
	}
	v := int(r.b[r.off])
	r.off++
	return v
}

func (r *reader) u16() int {
	if r.left() < 2 {
		r.bad = true
		return 0
	}
	v := int(r.b[r.off])<<8 | int(r.b[r.off+1])
	r.off += 2
	return v
}

func (r *reader) u24() int {
	if r.left() < 3 {
		r.bad = true
		return 0
	}
	v := int(r.b[r.off])<<16 | int(r.b[r.off+1])<<8 | int(r.b[r.off+2])
	r.off += 3
	return v
}

// bytes returns the next n bytes, or nil (and bad) if fewer are left.
func (r *reader) bytes(n int) []byte {
	if n < 0 || r.left() < n {
		r.bad = true
		r.off = len(r.b)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

// Parse reads a ClientHello from b, the captured start of a connection's
// first data segment, which carried total bytes in all (total >= len(b);
// more when the capture cut it).
//
// A ClientHello may be longer than b: it may continue in the next
// segments (ErrSplit) or past the capture (ErrOversized). Then only the
// extensions that lie wholly within b are read, never a partial one, and
// the result counts (Partial) only if the server name was among them.
func Parse(b []byte, total int) (Hello, error) {
	h, err := parse(b, total)
	if err != nil {
		return Hello{}, err
	}
	return h, nil
}

// ParseHandshake reads a complete ClientHello handshake message (type 1,
// a 24-bit length, the body), as QUIC carries it in CRYPTO frames rather
// than in TLS records, with the same rules as Parse. A message longer
// than a TLS record (16 KiB) is ErrOversized.
func ParseHandshake(msg []byte) (Hello, error) {
	if len(msg) > maxRecord {
		return Hello{}, ErrOversized
	}
	b := make([]byte, 5, 5+len(msg))
	b[0], b[1], b[2], b[3], b[4] = 22, 3, 3, byte(len(msg)>>8), byte(len(msg))
	b = append(b, msg...)
	h, err := parse(b, len(b))
	if err != nil || h.Partial {
		// Complete, the message cannot be partial: a shorter length
		// field than the bytes given is malformed.
		if err == nil || errors.Is(err, ErrSplit) {
			err = ErrNotClientHello
		}
		return Hello{}, err
	}
	return h, nil
}

func parse(b []byte, total int) (Hello, error) {
	var h Hello
	total = max(total, len(b))
	r := reader{b: b}
	// TLS record header: handshake (22), legacy version 3.x, length.
	if r.u8() != 22 || r.u8() != 3 {
		return h, ErrNotClientHello
	}
	minor := r.u8()
	recLen := r.u16()
	if r.bad || minor > 4 || recLen < 4 || recLen > maxRecord {
		return h, ErrNotClientHello
	}
	// Handshake header: ClientHello (1), length. A ClientHello longer
	// than its record continues in the next record: partial as well.
	if r.u8() != 1 {
		return h, ErrNotClientHello
	}
	hsLen := r.u24()
	if r.bad || hsLen < 38 {
		return h, ErrNotClientHello
	}
	// What of the ClientHello b holds: up to its end, its record's end
	// (a longer one continues in the next record, after that record's
	// header, which is not read), and the capture's.
	end := 9 + hsLen
	limit := min(len(b), 5+recLen, end)
	spansRecords := hsLen+4 > recLen
	partial := spansRecords || end > len(b)
	if hsLen+4 < recLen {
		// Something after the ClientHello in the same record: a
		// handshake message the client may not send yet.
		return h, ErrNotClientHello
	}
	r.b = b[:limit] // what follows (early data, the next record) is not read
	incomplete := func() error {
		if spansRecords || total > len(b) {
			return ErrOversized
		}
		return ErrSplit
	}
	// legacy_version, random, session id, cipher suites, compression.
	r.bytes(2 + 32)
	sid := r.u8()
	if sid > 32 {
		return h, ErrNotClientHello
	}
	r.bytes(sid)
	cs := r.u16()
	if !r.bad && (cs%2 != 0 || cs == 0) {
		return h, ErrNotClientHello
	}
	r.bytes(cs)
	cm := r.u8()
	if !r.bad && cm == 0 {
		return h, ErrNotClientHello
	}
	r.bytes(cm)
	if r.bad {
		if partial {
			return h, incomplete()
		}
		return h, ErrNotClientHello
	}
	if r.left() == 0 && !partial {
		return h, nil // no extensions at all (TLS 1.2 and older may send none)
	}
	extLen := r.u16()
	if r.bad {
		return h, incomplete()
	}
	if !partial && extLen != r.left() {
		return h, ErrNotClientHello
	}
	if partial && extLen > hsLen {
		return h, ErrNotClientHello
	}
	var seenSNI, seenALPN bool
	// Each extension takes at least 4 bytes of b: at most len(b)/4 turns.
	for r.left() > 0 {
		typ := r.u16()
		n := r.u16()
		if r.bad || n > r.left() {
			if partial {
				break // it continues past what was seen
			}
			return h, ErrNotClientHello
		}
		data := r.bytes(n)
		switch typ {
		case 0: // server_name
			if seenSNI {
				return Hello{}, ErrNotClientHello
			}
			seenSNI = true
			name, err := serverName(data)
			if err != nil {
				return Hello{}, err
			}
			h.ServerName = name
		case 16: // application_layer_protocol_negotiation
			if seenALPN {
				return Hello{}, ErrNotClientHello
			}
			seenALPN = true
			ps, err := protocols(data)
			if err != nil {
				return Hello{}, err
			}
			h.Protocols = ps
		}
	}
	if partial {
		if h.ServerName == "" {
			return Hello{}, incomplete()
		}
		h.Partial = true
	}
	return h, nil
}

// serverName reads a server_name extension's host_name (RFC 6066 3).
func serverName(b []byte) (string, error) {
	r := reader{b: b}
	list := r.bytes(r.u16())
	if r.bad || r.left() != 0 {
		return "", ErrNotClientHello
	}
	r = reader{b: list}
	name := ""
	for r.left() > 0 {
		typ := r.u8()
		v := r.bytes(r.u16())
		if r.bad {
			return "", ErrNotClientHello
		}
		if typ != 0 {
			continue // not a host_name: none other is defined
		}
		if name != "" || !validName(v) {
			return "", ErrNotClientHello
		}
		name = string(v)
	}
	return name, nil
}

// validName accepts a DNS host name as SNI carries it: ASCII letters,
// digits, '-', '_' and '.', 1 to MaxNameLen bytes (RFC 6066: no trailing
// dot, no IP address; neither is checked, both are harmless).
func validName(b []byte) bool {
	if len(b) == 0 || len(b) > MaxNameLen {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// protocols reads an ALPN extension's protocol list (RFC 7301 3.1):
// at most MaxProtocols, each printable ASCII (others are skipped: the
// list is offered, not chosen, and only shown).
func protocols(b []byte) ([]string, error) {
	r := reader{b: b}
	list := r.bytes(r.u16())
	if r.bad || r.left() != 0 || len(list) == 0 {
		return nil, ErrNotClientHello
	}
	r = reader{b: list}
	var ps []string
	for r.left() > 0 {
		v := r.bytes(r.u8())
		if r.bad || len(v) == 0 {
			return nil, ErrNotClientHello
		}
		if len(ps) < MaxProtocols && printable(v) {
			ps = append(ps, string(v))
		}
	}
	return ps, nil
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
