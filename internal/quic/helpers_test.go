package quic

import (
	"crypto/aes"
	"encoding/binary"
	"sync"
	"testing"
)

// appendVarint appends v as a QUIC varint of the shortest length.
func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return binary.BigEndian.AppendUint16(b, uint16(v)|0x4000)
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, uint32(v)|0x80000000)
	}
	return binary.BigEndian.AppendUint64(b, v|0xc0<<56)
}

// cryptoFrame is a CRYPTO frame with data at off.
func cryptoFrame(off uint64, data []byte) []byte {
	b := appendVarint([]byte{0x06}, off)
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

var sealCache sync.Map // of connKey to *keys

// sealKeys derives a connection's keys once per test process.
func sealKeys(t testing.TB, v uint32, dcid []byte) *keys {
	key := connKey{version: v, n: uint8(len(dcid))}
	copy(key.id[:], dcid)
	if k, ok := sealCache.Load(key); ok {
		return k.(*keys)
	}
	k, err := deriveKeys(paramsFor(v), dcid)
	if err != nil {
		t.Fatal(err)
	}
	sealCache.Store(key, k)
	return k
}

// seal builds a client Initial of version v for connection id dcid, with
// packet number pn and these frames, padded with PADDING so the packet
// has size bytes (if it is shorter): what a client sends, built with the
// same keys the parser derives (checked against the RFC's packets in
// TestOpenRFC).
func seal(t testing.TB, v uint32, dcid []byte, pn uint32, payload []byte, size int) []byte {
	t.Helper()
	p := paramsFor(v)
	k := sealKeys(t, v, dcid)
	const pnLen = 4
	hdr := []byte{0xc0 | p.initialType<<4 | (pnLen - 1)}
	hdr = binary.BigEndian.AppendUint32(hdr, v)
	hdr = append(hdr, byte(len(dcid)))
	hdr = append(hdr, dcid...)
	hdr = append(hdr, 0, 0) // no source connection id, no token
	fixed := len(hdr) + 2 + pnLen + tagLen
	if len(payload)+fixed < size {
		payload = append(payload, make([]byte, size-fixed-len(payload))...)
	}
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(pnLen+len(payload)+tagLen)|0x4000)
	pnOffset := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, pn)
	nonce := k.iv
	for i := range 4 {
		nonce[len(nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	pkt := k.aead.Seal(hdr, nonce[:], payload, hdr)
	var mask [aes.BlockSize]byte
	k.hp.Encrypt(mask[:], pkt[pnOffset+4:pnOffset+4+sampleLen])
	pkt[0] ^= mask[0] & 0x0f
	for i := range pnLen {
		pkt[pnOffset+i] ^= mask[1+i]
	}
	return pkt
}
