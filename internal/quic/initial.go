// Package quic reads the TLS ClientHello out of a QUIC client's Initial
// packets, so a UDP flow to port 443 can carry the server name (SNI) and
// ALPN protocols its client asked for, as a TCP flow's first segment does.
//
// An Initial packet is encrypted, but with keys anyone can derive: they
// come from the packet's destination connection id and a salt published
// for the version (RFC 9001 section 5.2 for QUIC v1, RFC 9369 section 3.3
// for v2). For each long-header packet of a datagram this package parses
// the header, derives the client's Initial secret (HKDF-SHA256,
// HKDF-Expand-Label "client in", then "quic key", "quic iv", "quic hp"),
// removes the header protection (AES-128 on a 16-byte sample of the
// ciphertext), opens the payload (AES-128-GCM, nonce = iv XOR packet
// number), walks its frames (PADDING, PING, ACK, CRYPTO,
// CONNECTION_CLOSE: the only ones an Initial may carry) and puts the
// CRYPTO frames' data together at their offsets. A ClientHello with a
// post-quantum key share (X25519MLKEM768, Go's and browsers' default) is
// larger than one 1,200-byte datagram and arrives in two or more; the
// Assembler gathers them by connection id, in bounded memory, and hands
// back the handshake message (type 1, 3-byte length, body) once its
// bytes are contiguous. ServerName reads the SNI and ALPN from it.
//
// Everything here handles bytes from the network: every length is
// checked, every loop is bounded by the input or a constant, and nothing
// panics. Each failure wraps one of the Err values below, and Reason
// names its category, so a caller can count what it could not parse.
//
// Only a client's Initials can be read this way, and only those sent
// before the server answers: the keys derive from the connection id the
// client first chose, while later Initials address the id the server
// picked (they fail with ErrDecrypt). A caller therefore parses the first
// datagrams of a flow and stops once it has a ClientHello.
package quic

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// Versions this package reads.
const (
	Version1 = 0x00000001 // RFC 9000
	Version2 = 0x6b3343cf // RFC 9369
)

// Limits.
const (
	MaxConnIDLen = 20         // RFC 9000 section 17.2, for versions 1 and 2
	MaxHello     = 16 << 10   // ClientHello bytes reassembled at most
	maxRanges    = 64         // disjoint CRYPTO ranges held per connection
	maxDatagram  = 64 << 10   // UDP payloads are smaller
	maxPackets   = 8          // packets read per datagram (a 1,200-byte one holds few)
	tagLen       = 16         // AES-GCM
	sampleLen    = 16         // header protection sample
	maxPNLen     = 4          // packet number bytes
	minPacketLen = 4 + tagLen // what the sample needs after the packet number offset
)

// Categories of failure. Every error returned by this package wraps
// exactly one of them.
var (
	// ErrNotQUIC: the datagram does not start with a QUIC packet header.
	ErrNotQUIC = errors.New("not a QUIC packet")
	// ErrNotInitial: a QUIC packet, but no Initial to read (a short
	// header, 0-RTT, Handshake, Retry or Version Negotiation packet).
	ErrNotInitial = errors.New("no QUIC Initial packet")
	// ErrVersion: a long header of a version other than 1 and 2.
	ErrVersion = errors.New("unsupported QUIC version")
	// ErrMalformed: truncated, or lengths, frames or the TLS message do
	// not hold together.
	ErrMalformed = errors.New("malformed QUIC Initial")
	// ErrDecrypt: the payload does not open with the keys derived from
	// the packet's connection id (a server's Initial, a client's Initial
	// after the server changed the connection id, or damage).
	ErrDecrypt = errors.New("QUIC Initial does not decrypt")
	// ErrIncomplete: Initials read, but the ClientHello is not complete
	// yet (more datagrams to come). Not a failure by itself.
	ErrIncomplete = errors.New("ClientHello incomplete")
	// ErrTooLarge: the ClientHello, its CRYPTO offsets or its ALPN list
	// go past this package's limits.
	ErrTooLarge = errors.New("ClientHello past the limits")
)

var categories = [...]struct {
	err    error
	reason string
}{
	{ErrNotQUIC, "not_quic"},
	{ErrNotInitial, "not_initial"},
	{ErrVersion, "version"},
	{ErrMalformed, "malformed"},
	{ErrDecrypt, "decrypt"},
	{ErrIncomplete, "incomplete"},
	{ErrTooLarge, "too_large"},
}

// Reason names err's category for a counter label: "not_quic",
// "not_initial", "version", "malformed", "decrypt", "incomplete" or
// "too_large"; "" for nil and "other" for errors not from this package.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, c := range categories {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	return "other"
}

func errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{kind}, args...)...)
}

// versionParams are what differ between v1 and v2 for Initials.
type versionParams struct {
	salt                       []byte
	keyLabel, ivLabel, hpLabel string
	initialType                byte // long header packet type bits of an Initial
	retryType                  byte
}

var (
	v1Params = versionParams{
		salt:        []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a},
		keyLabel:    "quic key",
		ivLabel:     "quic iv",
		hpLabel:     "quic hp",
		initialType: 0,
		retryType:   3,
	}
	v2Params = versionParams{
		salt:        []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9},
		keyLabel:    "quicv2 key",
		ivLabel:     "quicv2 iv",
		hpLabel:     "quicv2 hp",
		initialType: 1,
		retryType:   0,
	}
)

func paramsFor(version uint32) *versionParams {
	switch version {
	case Version1:
		return &v1Params
	case Version2:
		return &v2Params
	}
	return nil
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context (RFC
// 8446 section 7.1) for lengths up to one SHA-256 output, where
// HKDF-Expand is a single HMAC: T(1) = HMAC(secret, info || 0x01). mac is
// an HMAC-SHA256 keyed with the secret, reused across labels.
func expandLabel(mac hash.Hash, label string, length int) []byte {
	var info [64]byte
	b := append(info[:0], byte(length>>8), byte(length), byte(len("tls13 ")+len(label)))
	b = append(b, "tls13 "...)
	b = append(b, label...)
	b = append(b, 0, 1) // empty context, then HKDF's block counter
	mac.Reset()
	mac.Write(b)
	return mac.Sum(nil)[:length]
}

// keys are a client's Initial packet protection keys for one connection
// id and version.
type keys struct {
	aead cipher.AEAD
	hp   cipher.Block
	iv   [12]byte
}

// clientSecret is the client's Initial secret (RFC 9001 section 5.2):
// HKDF-Extract with the version's salt, then "client in".
func clientSecret(p *versionParams, dcid []byte) []byte {
	extract := hmac.New(sha256.New, p.salt)
	extract.Write(dcid)
	return expandLabel(hmac.New(sha256.New, extract.Sum(nil)), "client in", sha256.Size)
}

func deriveKeys(p *versionParams, dcid []byte) (*keys, error) {
	mac := hmac.New(sha256.New, clientSecret(p, dcid))
	k := &keys{}
	block, err := aes.NewCipher(expandLabel(mac, p.keyLabel, 16))
	if err != nil {
		return nil, err
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	if k.hp, err = aes.NewCipher(expandLabel(mac, p.hpLabel, 16)); err != nil {
		return nil, err
	}
	copy(k.iv[:], expandLabel(mac, p.ivLabel, 12))
	return k, nil
}

// varint reads a QUIC variable-length integer (RFC 9000 section 16).
func varint(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0, false
	}
	v = uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, n, true
}

// header is one long-header packet's parsed header.
type header struct {
	version  uint32
	params   *versionParams
	initial  bool
	dcid     []byte
	pnOffset int // from the packet's start
	end      int // the packet's length in the datagram (the next one starts there)
}

// parseLong parses the long header at the start of b. A Retry packet has
// no Length and ends the datagram: end is len(b).
func parseLong(b []byte) (h header, err error) {
	if len(b) < 7 {
		return h, errorf(ErrMalformed, "long header: %d bytes", len(b))
	}
	h.version = binary.BigEndian.Uint32(b[1:5])
	if h.version == 0 {
		return h, errorf(ErrNotInitial, "version negotiation packet")
	}
	if h.params = paramsFor(h.version); h.params == nil {
		return h, errorf(ErrVersion, "version %#08x", h.version)
	}
	typ := (b[0] >> 4) & 3
	pos := 5
	dcidLen := int(b[pos])
	pos++
	if dcidLen > MaxConnIDLen || len(b) < pos+dcidLen+1 {
		return h, errorf(ErrMalformed, "destination connection id length %d", dcidLen)
	}
	h.dcid = b[pos : pos+dcidLen]
	pos += dcidLen
	scidLen := int(b[pos])
	pos++
	if scidLen > MaxConnIDLen || len(b) < pos+scidLen {
		return h, errorf(ErrMalformed, "source connection id length %d", scidLen)
	}
	pos += scidLen
	if typ == h.params.retryType {
		h.end = len(b)
		return h, nil
	}
	h.initial = typ == h.params.initialType
	if h.initial {
		tokenLen, n, ok := varint(b[pos:])
		if !ok || tokenLen > uint64(len(b)-pos-n) {
			return h, errorf(ErrMalformed, "token length")
		}
		pos += n + int(tokenLen)
	}
	length, n, ok := varint(b[pos:])
	if !ok || length > uint64(len(b)-pos-n) {
		return h, errorf(ErrMalformed, "packet length %d past the datagram's %d bytes", length, len(b)-pos-n)
	}
	h.pnOffset = pos + n
	h.end = h.pnOffset + int(length)
	return h, nil
}

// open removes the header protection and decrypts the packet pkt (its
// header h), in place: pkt must be a copy the caller may overwrite. It
// returns the plaintext payload (a slice of pkt).
func open(k *keys, h *header, pkt []byte) ([]byte, error) {
	if h.end-h.pnOffset < minPacketLen {
		return nil, errorf(ErrMalformed, "packet of %d bytes after its header, too short to sample", h.end-h.pnOffset)
	}
	var mask [aes.BlockSize]byte
	sample := h.pnOffset + maxPNLen
	k.hp.Encrypt(mask[:], pkt[sample:sample+sampleLen])
	pkt[0] ^= mask[0] & 0x0f
	pnLen := int(pkt[0]&3) + 1
	if h.end-h.pnOffset < pnLen+tagLen {
		return nil, errorf(ErrMalformed, "packet of %d bytes after its header", h.end-h.pnOffset)
	}
	var pn uint64
	for i := range pnLen {
		pkt[h.pnOffset+i] ^= mask[1+i]
		pn = pn<<8 | uint64(pkt[h.pnOffset+i])
	}
	// The first Initials carry their full packet number (nothing was
	// acknowledged yet, so the truncated number is the number).
	nonce := k.iv
	for i := range 8 {
		nonce[len(nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	payloadAt := h.pnOffset + pnLen
	ct := pkt[payloadAt:h.end]
	plain, err := k.aead.Open(ct[:0], nonce[:], ct, pkt[:payloadAt])
	if err != nil {
		return nil, errorf(ErrDecrypt, "packet number %d, %d bytes", pn, len(ct))
	}
	return plain, nil
}

// cryptoSink receives CRYPTO frame data at its offset.
type cryptoSink interface {
	add(offset uint64, data []byte) error
}

// frames walks an Initial's plaintext payload and hands the CRYPTO
// frames' data to sink. It returns how many CRYPTO frames it found.
func frames(payload []byte, sink cryptoSink) (int, error) {
	crypto := 0
	p := payload
	// Every frame takes at least one byte, so the loop ends.
	for len(p) > 0 {
		typ := p[0]
		p = p[1:]
		switch typ {
		case 0x00: // PADDING
			for len(p) > 0 && p[0] == 0 {
				p = p[1:]
			}
		case 0x01: // PING
		case 0x02, 0x03: // ACK, ACK with ECN counts
			// Largest Acknowledged, ACK Delay, ACK Range Count, First ACK Range.
			var vals [4]uint64
			for i := range vals {
				v, n, ok := varint(p)
				if !ok {
					return crypto, errorf(ErrMalformed, "ACK frame truncated")
				}
				vals[i], p = v, p[n:]
			}
			// Each range is two varints of at least one byte each.
			if vals[2] > uint64(len(p))/2 {
				return crypto, errorf(ErrMalformed, "ACK frame with %d ranges in %d bytes", vals[2], len(p))
			}
			fields := 2 * int(vals[2])
			if typ == 0x03 {
				fields += 3 // ECT0, ECT1, ECN-CE counts
			}
			for range fields {
				_, n, ok := varint(p)
				if !ok {
					return crypto, errorf(ErrMalformed, "ACK frame truncated")
				}
				p = p[n:]
			}
		case 0x06: // CRYPTO
			off, n, ok := varint(p)
			if !ok {
				return crypto, errorf(ErrMalformed, "CRYPTO frame truncated")
			}
			p = p[n:]
			length, n, ok := varint(p)
			if !ok || length > uint64(len(p)-n) {
				return crypto, errorf(ErrMalformed, "CRYPTO frame of %d bytes truncated", length)
			}
			p = p[n:]
			if err := sink.add(off, p[:length]); err != nil {
				return crypto, err
			}
			p = p[length:]
			crypto++
		case 0x1c: // CONNECTION_CLOSE (transport)
			var vals [3]uint64 // Error Code, Frame Type, Reason Phrase Length
			for i := range vals {
				v, n, ok := varint(p)
				if !ok {
					return crypto, errorf(ErrMalformed, "CONNECTION_CLOSE frame truncated")
				}
				vals[i], p = v, p[n:]
			}
			if vals[2] > uint64(len(p)) {
				return crypto, errorf(ErrMalformed, "CONNECTION_CLOSE reason truncated")
			}
			p = p[vals[2]:]
		default:
			return crypto, errorf(ErrMalformed, "frame type %#x in an Initial packet", typ)
		}
	}
	return crypto, nil
}
