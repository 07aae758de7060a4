package quic

import "encoding/binary"

// Limits on what ServerName returns.
const (
	MaxServerName = 255 // bytes of a host name (RFC 6066 allows 2^16-1; DNS names are shorter)
	MaxALPN       = 16  // protocols returned; more are counted as ErrTooLarge
)

// reader takes big-endian fields off a byte slice; a read past the end
// sets bad and returns zeros.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16() int {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(v))
}

func (r *reader) u24() int {
	v := r.bytes(3)
	if v == nil {
		return 0
	}
	return int(v[0])<<16 | int(v[1])<<8 | int(v[2])
}

// vec reads a vector with an n-byte length prefix (1 or 2).
func (r *reader) vec(n int) reader {
	var l int
	if n == 1 {
		l = r.u8()
	} else {
		l = r.u16()
	}
	return reader{b: r.bytes(l), bad: r.bad}
}

// ServerName reads the server name (SNI, RFC 6066: the first host_name)
// and the ALPN protocols (RFC 7301) of a ClientHello handshake message as
// ClientHello returns it. Either may be absent (empty). The name is
// returned as sent, control bytes included: escape it before printing.
// With more than MaxALPN protocols it returns the name, the first
// MaxALPN protocols and an error wrapping ErrTooLarge; other errors wrap
// ErrMalformed.
func ServerName(hello []byte) (sni string, alpn []string, err error) {
	r := reader{b: hello}
	if r.u8() != 1 {
		return "", nil, errorf(ErrMalformed, "not a ClientHello")
	}
	body := reader{b: r.bytes(r.u24())}
	if r.bad {
		return "", nil, errorf(ErrMalformed, "ClientHello length past its %d bytes", len(hello))
	}
	body.bytes(2 + 32) // legacy_version, random
	if sid := body.vec(1); len(sid.b) > 32 {
		return "", nil, errorf(ErrMalformed, "session id of %d bytes", len(sid.b))
	}
	if cs := body.vec(2); len(cs.b)%2 != 0 || len(cs.b) == 0 {
		return "", nil, errorf(ErrMalformed, "cipher suites of %d bytes", len(cs.b))
	}
	body.vec(1) // legacy_compression_methods
	if body.bad {
		return "", nil, errorf(ErrMalformed, "ClientHello truncated")
	}
	if len(body.b) == 0 {
		return "", nil, nil // no extensions
	}
	exts := body.vec(2)
	if body.bad {
		return "", nil, errorf(ErrMalformed, "extensions truncated")
	}
	seenSNI, seenALPN := false, false
	// Every extension takes at least 4 bytes, so the loop ends.
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.vec(2)
		if exts.bad {
			return "", nil, errorf(ErrMalformed, "extension %d truncated", typ)
		}
		switch {
		case typ == 0 && !seenSNI: // server_name
			seenSNI = true
			if sni, err = hostName(data); err != nil {
				return "", nil, err
			}
		case typ == 16 && !seenALPN: // application_layer_protocol_negotiation
			seenALPN = true
			list := data.vec(2)
			if data.bad || len(data.b) != 0 || len(list.b) == 0 {
				return "", nil, errorf(ErrMalformed, "ALPN extension")
			}
			for len(list.b) > 0 {
				p := list.vec(1)
				if list.bad || len(p.b) == 0 {
					return "", nil, errorf(ErrMalformed, "ALPN protocol name")
				}
				if len(alpn) == MaxALPN {
					err = errorf(ErrTooLarge, "more than %d ALPN protocols", MaxALPN)
					continue
				}
				alpn = append(alpn, string(p.b))
			}
		}
	}
	return sni, alpn, err
}

// hostName reads a server_name extension's first host_name entry.
func hostName(data reader) (string, error) {
	list := data.vec(2)
	if data.bad || len(data.b) != 0 {
		return "", errorf(ErrMalformed, "server_name extension")
	}
	for len(list.b) > 0 {
		typ := list.u8()
		name := list.vec(2)
		if list.bad {
			return "", errorf(ErrMalformed, "server_name entry truncated")
		}
		if typ != 0 { // not host_name
			continue
		}
		if len(name.b) == 0 || len(name.b) > MaxServerName {
			return "", errorf(ErrMalformed, "host name of %d bytes", len(name.b))
		}
		return string(name.b), nil
	}
	return "", nil
}
