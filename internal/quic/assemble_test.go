package quic

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// rfcHello is the RFC's 245-byte ClientHello (example.com, ALPN "alpn").
func rfcHello(t testing.TB) []byte { return unhex(t, rfcCryptoFrame)[4:] }

var testDCID = []byte{1, 2, 3, 4, 5, 6, 7, 8}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestFrames reads the frames an Initial may carry, CRYPTO data out of
// order and in pieces (as Chrome's "chaos protection" sends it), and
// refuses the ones it may not.
func TestFrames(t *testing.T) {
	h := rfcHello(t)
	ack := []byte{0x02, 0x05, 0x00, 0x01, 0x00, 0x01, 0x00} // largest 5, delay 0, 1 extra range
	ackECN := []byte{0x03, 0x05, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03}
	closeFrame := []byte{0x1c, 0x0a, 0x06, 0x03, 'b', 'y', 'e'}
	for _, tc := range []struct {
		name    string
		payload []byte
		err     error
	}{
		{"one frame", cryptoFrame(0, h), nil},
		{"pieces out of order with PING, ACK and PADDING", cat(
			cryptoFrame(100, h[100:]), []byte{0x01}, cryptoFrame(10, h[10:50]), ack,
			[]byte{0, 0, 0}, cryptoFrame(0, h[:10]), ackECN, cryptoFrame(40, h[40:120])), nil},
		{"overlapping retransmitted piece", cat(cryptoFrame(0, h[:200]), cryptoFrame(150, h[150:])), nil},
		{"CONNECTION_CLOSE", cat(cryptoFrame(0, h), closeFrame), nil},
		{"missing piece", cat(cryptoFrame(0, h[:100]), cryptoFrame(101, h[101:])), ErrIncomplete},
		{"no CRYPTO", cat([]byte{0x01}, ack), ErrIncomplete},
		{"STREAM frame", cat(cryptoFrame(0, h), []byte{0x08, 0x00}), ErrMalformed},
		{"ACK with too many ranges", cat(cryptoFrame(0, h), []byte{0x02, 0x05, 0x00, 0x7f, 0xff, 0x00}), ErrMalformed},
		{"CRYPTO past the packet", cat(cryptoFrame(0, h), []byte{0x06, 0x00, 0x7f, 0xff}), ErrMalformed},
		{"CRYPTO past MaxHello", cat(cryptoFrame(0, h[:10]), cryptoFrame(MaxHello-5, h[:10])), ErrTooLarge},
		{"CRYPTO at a huge offset", cat(cryptoFrame(0, h[:10]), cryptoFrame(1<<62-1, h[:1])), ErrTooLarge},
		{"not a ClientHello", cryptoFrame(0, append([]byte{2}, h[1:]...)), ErrMalformed},
		{"ClientHello longer than MaxHello", cryptoFrame(0, []byte{1, 0, 0x40, 0x00}), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := seal(t, Version1, testDCID, 0, tc.payload, 1200)
			got, err := ClientHello(pkt)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("%v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, h) {
				t.Fatalf("%x, %v", got, err)
			}
		})
	}
}

// TestPieces puts more than maxRanges separate pieces in: refused, not
// grown without bound.
func TestPieces(t *testing.T) {
	h := bytes.Repeat([]byte{1}, 1000)
	var payload []byte
	for i := 0; i <= maxRanges; i++ {
		payload = append(payload, cryptoFrame(uint64(10*i+5), h[:2])...)
	}
	if _, err := ClientHello(seal(t, Version1, testDCID, 0, payload, 1200)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d pieces: %v, want ErrMalformed", maxRanges+1, err)
	}
}

// TestHeaders covers what is not a client Initial, and datagrams of
// several packets.
func TestHeaders(t *testing.T) {
	h := rfcHello(t)
	good := seal(t, Version1, testDCID, 0, cryptoFrame(0, h), 0)
	// A Handshake packet (type 2): header, Length 20, 20 bytes.
	handshake := cat([]byte{0xe0, 0, 0, 0, 1, 8}, testDCID, []byte{0, 20}, make([]byte, 20))
	other := seal(t, Version1, []byte{9, 9, 9, 9}, 0, cryptoFrame(0, []byte{1, 0, 0, 200}), 0)
	for _, tc := range []struct {
		name string
		d    []byte
		err  error
	}{
		{"empty", nil, ErrNotQUIC},
		{"TLS record", []byte{0x16, 0x03, 0x01, 0x00, 0x10}, ErrNotQUIC},
		{"short header", []byte{0x40, 1, 2, 3}, ErrNotInitial},
		{"version negotiation", []byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1}, ErrNotInitial},
		{"draft-29", cat([]byte{0xc0, 0xff, 0, 0, 29}, good[5:]), ErrVersion},
		{"truncated", good[:30], ErrMalformed},
		{"connection id of 21 bytes", cat(good[:5], []byte{21}, make([]byte, 40)), ErrMalformed},
		{"Handshake packet", handshake, ErrNotInitial},
		{"server's Initial", unhex(t, "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd074ee"), ErrDecrypt},
		{"Handshake then Initial", cat(handshake, good), nil},
		{"Initial then Handshake", cat(good, handshake), nil},
		// RFC 9000 section 12.2: another connection id is ignored.
		{"Initial of another connection first", cat(other, good), ErrIncomplete},
		{"zero bytes after the packet", cat(good, make([]byte, 300)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ClientHello(tc.d)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("%v, want %v", err, tc.err)
				}
				if Reason(err) == "other" || Reason(err) == "" {
					t.Fatalf("Reason(%v) = %q", err, Reason(err))
				}
				return
			}
			if err != nil || !bytes.Equal(got, h) {
				t.Fatalf("%x, %v", got, err)
			}
		})
	}
}

// TestAssembler gathers a ClientHello from two datagrams in either
// order, keeps connections apart, and evicts the oldest when full.
func TestAssembler(t *testing.T) {
	h := bytes.Repeat(rfcHello(t), 8)[:1800] // a long hello: fix its length field
	h[1], h[2], h[3] = 0, byte((len(h)-4)>>8), byte(len(h)-4)
	d1 := seal(t, Version1, testDCID, 0, cryptoFrame(0, h[:1000]), 1200)
	d2 := seal(t, Version1, testDCID, 1, cryptoFrame(1000, h[1000:]), 1200)
	for _, order := range [][][]byte{{d1, d2}, {d2, d1}} {
		a := NewAssembler(2)
		if _, err := a.Add(order[0]); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("first datagram: %v", err)
		}
		if a.Pending() != 1 {
			t.Fatalf("pending %d", a.Pending())
		}
		got, err := a.Add(order[1])
		if err != nil || !bytes.Equal(got, h) {
			t.Fatalf("second datagram: %d bytes, %v", len(got), err)
		}
		if a.Pending() != 0 {
			t.Fatalf("pending %d after the hello", a.Pending())
		}
	}

	// Three connections in an assembler for two: the first is evicted,
	// and its second half alone is incomplete again.
	a := NewAssembler(2)
	for i := range 3 {
		cid := []byte{byte(i), 1, 2, 3, 4, 5, 6, 7}
		if _, err := a.Add(seal(t, Version1, cid, 0, cryptoFrame(0, h[:1000]), 1200)); !errors.Is(err, ErrIncomplete) {
			t.Fatal(err)
		}
	}
	if a.Pending() != 2 || a.Evicted() != 1 {
		t.Fatalf("pending %d, evicted %d", a.Pending(), a.Evicted())
	}
	if _, err := a.Add(seal(t, Version1, []byte{0, 1, 2, 3, 4, 5, 6, 7}, 1, cryptoFrame(1000, h[1000:]), 1200)); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("evicted connection's second half: %v", err)
	}
	if a.Evicted() != 2 {
		t.Fatalf("evicted %d", a.Evicted())
	}
	got, err := a.Add(seal(t, Version1, []byte{2, 1, 2, 3, 4, 5, 6, 7}, 1, cryptoFrame(1000, h[1000:]), 1200))
	if err != nil || !bytes.Equal(got, h) {
		t.Fatalf("newest connection: %d bytes, %v", len(got), err)
	}

	// Datagrams that do not open take no room.
	a = NewAssembler(1)
	for i := range 10 {
		d := seal(t, Version1, testDCID, uint32(i), cryptoFrame(0, h[:1000]), 1200)
		d[100] ^= 1
		if _, err := a.Add(d); !errors.Is(err, ErrDecrypt) {
			t.Fatal(err)
		}
	}
	if a.Pending() != 0 || a.Evicted() != 0 {
		t.Fatalf("pending %d, evicted %d after undecryptable datagrams", a.Pending(), a.Evicted())
	}
	// A connection whose data is malformed is dropped, not kept.
	if _, err := a.Add(seal(t, Version1, testDCID, 0, cryptoFrame(0, []byte{2, 0, 0, 1}), 1200)); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	if a.Pending() != 0 {
		t.Fatalf("pending %d after a malformed hello", a.Pending())
	}
}

func TestReason(t *testing.T) {
	for _, c := range categories {
		if got := Reason(fmt.Errorf("x: %w", c.err)); got != c.reason {
			t.Errorf("Reason(%v) = %q", c.err, got)
		}
	}
	if Reason(nil) != "" || Reason(errors.New("x")) != "other" {
		t.Error("Reason of nil or a foreign error")
	}
}

// TestStreamRanges checks the range merging against a byte map, with
// pieces at random offsets, up to and at maxRanges pieces.
func TestStreamRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	full := 0
	for round := range 300 {
		var (
			s    stream
			have [3000]bool
		)
		for range 120 {
			// Dense rounds merge most pieces, sparse ones fill the table.
			span := []int{580, 2900}[round%2]
			off, n := rng.IntN(span), rng.IntN(12)
			err := s.add(uint64(off), make([]byte, n))
			if err != nil {
				if !errors.Is(err, ErrMalformed) || s.n != maxRanges {
					t.Fatalf("round %d: %v with %d pieces", round, err, s.n)
				}
				full++
				continue
			}
			for i := off; i < off+n; i++ {
				have[i] = true
			}
			// The ranges are exactly the runs of received bytes.
			var want [][2]int
			for i := 0; i < len(have); i++ {
				if have[i] && (i == 0 || !have[i-1]) {
					want = append(want, [2]int{i, i})
				}
				if have[i] {
					want[len(want)-1][1] = i + 1
				}
			}
			if fmt.Sprint(want) != fmt.Sprint(s.ranges[:s.n]) {
				t.Fatalf("round %d: ranges %v, want %v", round, s.ranges[:s.n], want)
			}
		}
	}
	if full == 0 {
		t.Error("never reached maxRanges pieces")
	}
}
