package tcpinfo

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// message builds a sock_diag reply: struct inet_diag_msg, then an
// unrelated attribute, then INET_DIAG_INFO holding a tcp_info of infoLen
// bytes.
func message(family, state uint8, infoLen int) []byte {
	m := make([]byte, sizeofDiagMsg)
	m[0], m[1] = family, state
	binary.BigEndian.PutUint16(m[4:], 43210)
	binary.BigEndian.PutUint16(m[6:], 443)
	if family == unix.AF_INET {
		copy(m[8:], []byte{198, 51, 100, 1})
		copy(m[24:], []byte{198, 51, 100, 2})
	} else {
		a, b := netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("2001:db8::2").As16()
		copy(m[8:], a[:])
		copy(m[24:], b[:])
	}
	binary.NativeEndian.PutUint32(m[44:], 0x89abcdef)
	binary.NativeEndian.PutUint32(m[48:], 0x1)
	binary.NativeEndian.PutUint32(m[64:], 1000)
	binary.NativeEndian.PutUint32(m[68:], 777)
	// INET_DIAG_MEMINFO (1), 16 bytes: skipped.
	attr := func(typ uint16, v []byte) {
		h := make([]byte, 4)
		binary.NativeEndian.PutUint16(h, uint16(4+len(v)))
		binary.NativeEndian.PutUint16(h[2:], typ)
		m = append(m, h...)
		m = append(m, v...)
		for len(m)%4 != 0 {
			m = append(m, 0)
		}
	}
	attr(1, make([]byte, 16))
	ti := make([]byte, infoLen)
	ti[0] = state
	put32 := func(off int, v uint32) {
		if off+4 <= len(ti) {
			binary.NativeEndian.PutUint32(ti[off:], v)
		}
	}
	put64 := func(off int, v uint64) {
		if off+8 <= len(ti) {
			binary.NativeEndian.PutUint64(ti[off:], v)
		}
	}
	put32(tiRTT, 1500)
	put32(tiRTTVar, 250)
	put32(tiTotalRetrans, 3)
	put64(tiBytesAcked, 9001)
	put64(tiBytesReceived, 5001)
	put64(tiBytesSent, 10500)
	put64(tiBytesRetrans, 1500)
	attr(inetDiagInfo, ti)
	return m
}

func TestParse(t *testing.T) {
	var s Sample
	if !Parse(message(unix.AF_INET, stateEstablished, 232), &s) {
		t.Fatal("Parse refused a well-formed message")
	}
	want := Sample{
		Family: 4, State: stateEstablished,
		Local:  netip.MustParseAddrPort("198.51.100.1:43210"),
		Remote: netip.MustParseAddrPort("198.51.100.2:443"),
		Inode:  777, Cookie: 0x1_89abcdef, UID: 1000,
		BytesSent: 9000, BytesReceived: 5001, SRTTUs: 1500, RTTVarUs: 250, RetransSegs: 3, BytesRetrans: 1500,
	}
	if s != want {
		t.Errorf("Parse = %+v\nwant    %+v", s, want)
	}

	// The peer's FIN counts as a received byte; close events leave it out.
	if !Parse(message(unix.AF_INET6, stateCloseWait, 232), &s) {
		t.Fatal("Parse refused an IPv6 message")
	}
	if s.Family != 6 || s.Local != netip.MustParseAddrPort("[2001:db8::1]:43210") || s.BytesReceived != 5000 {
		t.Errorf("IPv6 CLOSE_WAIT: %+v", s)
	}

	// A kernel before 4.19: no bytes_sent, bytes_acked instead.
	if !Parse(message(unix.AF_INET, stateEstablished, tiBytesSent), &s) {
		t.Fatal("Parse refused an older kernel's tcp_info")
	}
	if s.BytesSent != 9001 || s.BytesRetrans != 0 {
		t.Errorf("pre-4.19 tcp_info: sent %d retrans bytes %d, want 9001 and 0", s.BytesSent, s.BytesRetrans)
	}
}

func TestParseRejects(t *testing.T) {
	var s Sample
	good := message(unix.AF_INET, stateEstablished, 232)
	for name, msg := range map[string][]byte{
		"short header":   good[:sizeofDiagMsg-1],
		"no tcp_info":    good[:sizeofDiagMsg+20],
		"short tcp_info": message(unix.AF_INET, stateEstablished, tiMinLen-1),
		"unknown family": append([]byte{unix.AF_UNIX}, good[1:]...),
		"attribute overrun": func() []byte {
			b := append([]byte(nil), good...)
			binary.NativeEndian.PutUint16(b[sizeofDiagMsg:], 0xffff)
			return b
		}(),
		"attribute too short": func() []byte {
			b := append([]byte(nil), good...)
			binary.NativeEndian.PutUint16(b[sizeofDiagMsg:], 2)
			return b
		}(),
	} {
		if Parse(msg, &s) {
			t.Errorf("%s: Parse accepted it: %+v", name, s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(message(unix.AF_INET, stateEstablished, 232))
	f.Add(message(unix.AF_INET6, stateLastAck, 160))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Sample
		Parse(b, &s)
	})
}
