package sni

import (
	"errors"
	"net/netip"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/quic"
)

// quicKey is a UDP flow: its socket's cookie and its peer (an IPv4 peer
// unmapped, as the packet and a dual-stack socket may show it either way).
type quicKey struct {
	cookie uint64
	remote netip.AddrPort
}

func keyOfFlow(cookie uint64, remote netip.AddrPort) quicKey {
	return quicKey{cookie, netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())}
}

type quicFlow struct {
	hello Hello
	why   event.LossReason // without done: why it has no name (yet)
	done  bool             // named: later datagrams are not read
}

// quicFlows names UDP flows to port 443 from the QUIC Initial
// ClientHello of their first datagrams (the kernel copies two). One
// Assembler puts ClientHellos spread over several Initials together, by
// connection id; the flows' state is bounded like the TCP connections'.
type quicFlows struct {
	flows map[quicKey]*quicFlow
	order ring[quicKey]
	asm   *quic.Assembler
	// Datagrams counts the datagrams read, Named the flows named,
	// Evicted the flows forgotten while open (their close has no name).
	Datagrams, Named, Evicted uint64
}

func newQUICFlows(capacity int) quicFlows {
	return quicFlows{
		flows: make(map[quicKey]*quicFlow),
		order: newRing[quicKey](capacity),
		asm:   quic.NewAssembler(min(capacity, quic.DefaultConns)),
	}
}

var quicReasons = map[string]event.LossReason{
	"not_quic":    event.QUICNotQUIC,
	"not_initial": event.QUICNotInitial,
	"version":     event.QUICVersion,
	"malformed":   event.QUICMalformed,
	"decrypt":     event.QUICDecrypt,
	"incomplete":  event.QUICIncomplete,
	"too_large":   event.QUICTooLarge,
}

// quicReason is err's loss reason (malformed for an unknown category).
func quicReason(err error) event.LossReason {
	if why, ok := quicReasons[quic.Reason(err)]; ok {
		return why
	}
	return event.QUICMalformed
}

func (q *quicFlows) observe(h *event.TLSHello) {
	k := keyOfFlow(h.Cookie, h.Remote)
	f := q.flows[k]
	if f != nil && f.done {
		return
	}
	if f == nil {
		f = &quicFlow{}
		if old, full := q.order.push(k); full {
			if _, open := q.flows[old]; open {
				delete(q.flows, old)
				q.Evicted++
			}
		}
		q.flows[k] = f
	}
	q.Datagrams++
	var err error
	if int(h.SegmentLen) > len(h.Payload) {
		// Cut by the capture: its AEAD tag cannot be checked.
		err = errors.Join(quic.ErrDecrypt, errors.New("datagram longer than the capture"))
	} else {
		var hello []byte
		hello, err = q.asm.Add(h.Payload)
		if err == nil {
			var hl Hello
			hl, err = ParseHandshake(hello)
			if err != nil {
				err = errors.Join(quic.ErrMalformed, err)
			} else {
				f.hello = hl
				f.done = true
				if hl.ServerName != "" {
					q.Named++
				}
				return
			}
		}
	}
	f.why = quicReason(err)
}

// name gives a UDP flow's close its server name and ALPN, or the reason
// it has none once (see Tracker.Name). A close forgets the flow.
func (q *quicFlows) name(e *event.Event) (event.LossReason, bool) {
	if e.Type != event.UDPClose || e.Inbound() {
		return 0, false
	}
	k := keyOfFlow(e.Cookie, e.Remote)
	f, ok := q.flows[k]
	if !ok {
		return 0, false
	}
	delete(q.flows, k)
	if !f.done {
		return f.why, true // once: the entry is gone
	}
	e.SNI, e.ALPN = f.hello.ServerName, f.hello.Protocols
	return 0, false
}
