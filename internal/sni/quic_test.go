package sni

import (
	"crypto/tls"
	"net/netip"
	"slices"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/quic/quictest"
)

// quicDatagrams are a real quic-go client's first datagrams: at least
// the two Initials its default ClientHello (post-quantum key share) spans.
func quicDatagrams(t *testing.T, conf *tls.Config) [][]byte {
	t.Helper()
	dgs := quictest.Datagrams(t, conf)
	if len(dgs) < 2 {
		t.Fatalf("the listener received %d datagrams, want at least 2", len(dgs))
	}
	return dgs
}

func TestQUICFlowNamed(t *testing.T) {
	dgs := quicDatagrams(t, &tls.Config{ServerName: "quic-sni.test", NextProtos: []string{"h3"}})
	tr := NewTracker(16)
	remote := netip.MustParseAddrPort("127.0.0.1:443")
	for _, d := range dgs[:2] { // what the kernel side copies
		tr.Observe(&event.TLSHello{Cookie: 7, Remote: remote, Payload: d, SegmentLen: uint32(len(d)), QUIC: true})
	}
	// Another flow of the same socket: not named.
	other := &event.Event{Type: event.UDPClose, Cookie: 7, Remote: netip.MustParseAddrPort("127.0.0.1:444")}
	if why, missing := tr.Name(other); missing || other.SNI != "" {
		t.Fatalf("other flow: sni %q, missing %v (%v)", other.SNI, missing, why)
	}
	open := &event.Event{Type: event.UDPOpen, Cookie: 7, Remote: remote}
	if _, missing := tr.Name(open); missing || open.SNI != "" {
		t.Fatalf("udp_open named %q", open.SNI)
	}
	// A dual-stack socket's view of the same peer.
	e := &event.Event{Type: event.UDPClose, Cookie: 7, Remote: netip.MustParseAddrPort("[::ffff:127.0.0.1]:443")}
	if why, missing := tr.Name(e); missing || e.SNI != "quic-sni.test" || !slices.Equal(e.ALPN, []string{"h3"}) {
		t.Fatalf("close: sni %q alpn %q, missing %v (%v)", e.SNI, e.ALPN, missing, why)
	}
	if tr.quic.Named != 1 || len(tr.quic.flows) != 0 {
		t.Fatalf("named %d, flows left %d", tr.quic.Named, len(tr.quic.flows))
	}
}

func TestQUICFlowUnreadable(t *testing.T) {
	tr := NewTracker(2)
	remote := netip.MustParseAddrPort("198.51.100.7:443")
	garbage := append([]byte{0xc0}, make([]byte, 1199)...) // version 0: a version negotiation
	for range 2 {
		tr.Observe(&event.TLSHello{Cookie: 9, Remote: remote, Payload: garbage, SegmentLen: 1200, QUIC: true})
	}
	// The first half of a two-Initial ClientHello: incomplete.
	dgs := quicDatagrams(t, &tls.Config{ServerName: "quic-sni.test"})
	tr.Observe(&event.TLSHello{Cookie: 10, Remote: remote, Payload: dgs[0], SegmentLen: uint32(len(dgs[0])), QUIC: true})
	for _, tc := range []struct {
		cookie uint64
		want   event.LossReason
	}{{9, event.QUICNotInitial}, {10, event.QUICIncomplete}} {
		e := &event.Event{Type: event.UDPClose, Cookie: tc.cookie, Remote: remote}
		why, missing := tr.Name(e)
		if !missing || why != tc.want || e.SNI != "" {
			t.Errorf("cookie %d: reason %v (%s) missing %v sni %q, want %s", tc.cookie, why, why.Key(), missing, e.SNI, tc.want.Key())
		}
		// Once per flow.
		if _, missing := tr.Name(e); missing {
			t.Errorf("cookie %d: counted twice", tc.cookie)
		}
	}
	// Bounded: a third open flow evicts the oldest.
	for c := uint64(20); c < 23; c++ {
		tr.Observe(&event.TLSHello{Cookie: c, Remote: remote, Payload: garbage, SegmentLen: 1200, QUIC: true})
	}
	if tr.QUICEvicted() != 1 || len(tr.quic.flows) != 2 {
		t.Fatalf("evicted %d, flows %d", tr.QUICEvicted(), len(tr.quic.flows))
	}
	// A datagram cut by the capture cannot be decrypted.
	tr.Observe(&event.TLSHello{Cookie: 30, Remote: remote, Payload: garbage, SegmentLen: 3000, QUIC: true})
	e := &event.Event{Type: event.UDPClose, Cookie: 30, Remote: remote}
	if why, missing := tr.Name(e); !missing || why != event.QUICDecrypt {
		t.Fatalf("cut datagram: %s %v", why.Key(), missing)
	}
}
