package tracer

import (
	"net/netip"
	"testing"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/event"
)

// The kernel keys a flow by the packet's peer: an IPv4 peer of a
// dual-stack socket is 4 bytes of AF_INET, not the ::ffff: form the
// events show.
func TestFlowKey(t *testing.T) {
	for _, tc := range []struct {
		remote string
		family uint16
		peer   []byte
	}{
		{"127.0.0.1:53", afInet, []byte{127, 0, 0, 1}},
		{"[::ffff:127.0.0.1]:53", afInet, []byte{127, 0, 0, 1}},
		{"[::1]:53", afInet6, netip.MustParseAddr("::1").AsSlice()},
	} {
		ev := event.Event{Cookie: 42, Remote: netip.MustParseAddrPort(tc.remote)}
		k := flowKey(&ev)
		var want [16]byte
		copy(want[:], tc.peer)
		if k.Cookie != 42 || k.Family != tc.family || k.PeerPort != 53 || k.Peer != want || k.Pad != 0 {
			t.Errorf("%s: key %+v", tc.remote, k)
		}
	}
}

func TestUDPCloseEvent(t *testing.T) {
	var v bpf.TuxscopeUdpFlow
	v.Owner.Pid, v.Owner.Tid, v.Owner.Uid, v.Owner.CgroupId = 10, 11, 12, 13
	copy(v.Owner.Comm[:], int8s([]byte("dig")))
	v.Tuple.Family = afInet6
	v.Tuple.Laddr = netip.MustParseAddr("::ffff:127.0.0.1").As16()
	v.Tuple.Raddr = netip.MustParseAddr("::ffff:127.0.0.53").As16()
	v.Tuple.Lport, v.Tuple.Rport = 40000, 53
	v.FirstNs, v.LastNs = 100, 350
	v.PacketsSent, v.PacketsReceived, v.BytesSent, v.BytesReceived = 1, 2, 30, 200
	v.Flags = uint8(event.FlagInbound)
	k := udpKey{Cookie: 9}
	var e event.Event
	udpCloseEvent(&e, &k, &v, 1000, "idle")
	if e.Type != event.UDPClose || e.PID != 10 || e.TID != 11 || e.UID != 12 || e.CgroupID != 13 || string(e.Comm()) != "dig" ||
		e.Family != 6 || e.Local.String() != "[::ffff:127.0.0.1]:40000" || e.Remote.String() != "[::ffff:127.0.0.53]:53" ||
		e.PacketsSent != 1 || e.PacketsReceived != 2 || e.BytesSent != 30 || e.BytesReceived != 200 || e.DurationNs != 250 ||
		e.TimestampNs != 1000 || e.UDPEnd != "idle" || e.Cookie != 9 || !e.Inbound() || e.Proto() != "udp" {
		t.Errorf("udp_close %+v", e)
	}
}
