package tracer

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/tuxscope/tuxscope/internal/bpf"
	"github.com/tuxscope/tuxscope/internal/event"
)

// recordBytes renders rec exactly as the kernel writes it into the ring
// buffer: the bytes of the bpf2go struct, in native byte order. The result
// is a copy, so tests may mutate it freely.
func recordBytes[R bpf.TuxscopeEvent | bpf.TuxscopeDnsEvent | bpf.TuxscopeTlsEvent](rec *R) []byte {
	raw := unsafe.Slice((*byte)(unsafe.Pointer(rec)), unsafe.Sizeof(*rec))
	return append([]byte(nil), raw...)
}

// setComm fills the C char array the way the kernel does (bpf_get_current_comm).
func setComm(h *bpf.TuxscopeEventHeader, name string) {
	h.Owner.Comm = [16]int8{}
	for i := 0; i < len(name) && i < len(h.Owner.Comm); i++ {
		h.Owner.Comm[i] = int8(name[i])
	}
}

// setHeader fills the header both records start with, as fill_header does.
func setHeader(h *bpf.TuxscopeEventHeader, typ uint8, ts uint64, pid, tid, uid uint32, comm string, family, lport, rport uint16) {
	h.Type, h.TsNs = typ, ts
	h.Owner.Pid, h.Owner.Tid, h.Owner.Uid = pid, tid, uid
	setComm(h, comm)
	h.Tuple.Family, h.Tuple.Lport, h.Tuple.Rport = family, lport, rport
}

func v4Connect() bpf.TuxscopeEvent {
	var rec bpf.TuxscopeEvent
	setHeader(&rec.Hdr, 1 /* EVENT_CONNECT */, 123456789012, 6201, 6202, 1000, "curl", 2 /* AF_INET */, 53412, 443)
	rec.Hdr.Owner.CgroupId = 0x3132333435363738
	copy(rec.Hdr.Tuple.Laddr[:], []byte{10, 0, 0, 5})
	copy(rec.Hdr.Tuple.Raddr[:], []byte{93, 184, 216, 34})
	// Bytes past the first four must be ignored for AF_INET.
	for i := 4; i < 16; i++ {
		rec.Hdr.Tuple.Laddr[i] = 0xee
		rec.Hdr.Tuple.Raddr[i] = 0xdd
	}
	return rec
}

func v6Accept() bpf.TuxscopeEvent {
	var rec bpf.TuxscopeEvent
	setHeader(&rec.Hdr, 2 /* EVENT_ACCEPT */, 987654321, 4242, 4243, 0, "python3", 10 /* AF_INET6 */, 8080, 40000)
	rec.Hdr.Tuple.Laddr = netip.MustParseAddr("2001:db8::1").As16()
	rec.Hdr.Tuple.Raddr = netip.MustParseAddr("2001:db8:0:1::2").As16()
	return rec
}

// v6InboundClose is the close of an accepted connection, reset by the peer,
// with every lifecycle field set to a value whose bytes all differ, so a
// field read at the wrong offset or width cannot go unnoticed.
func v6InboundClose() bpf.TuxscopeEvent {
	rec := v6Accept()
	rec.Hdr.Type = 5                       // EVENT_CLOSE
	rec.Flags = 1 | 4                      // FLAG_INBOUND | FLAG_CLOSED_REMOTE
	rec.Error = 104                        // ECONNRESET
	rec.LatencyNs = 0x0102030405060708     // not sent for a close, still decoded
	rec.DurationNs = 1_234_567_890_123     // 1234.567890123s
	rec.BytesSent = 0x1112131415161718     // 1230066625199609624
	rec.BytesReceived = 0x2122232425262728 // 2387509390608836392
	rec.Cookie = 0xf1f2f3f4f5f6f7f8        // 17434265340928784376
	return rec
}

// v4Failed is a refused connect.
func v4Failed() bpf.TuxscopeEvent {
	rec := v4Connect()
	rec.Hdr.Type = 4 // EVENT_FAILED
	rec.Error = 111  // ECONNREFUSED
	rec.LatencyNs = 85_000
	return rec
}

// v4Established is a connect's completed handshake.
func v4Established() bpf.TuxscopeEvent {
	rec := v4Connect()
	rec.Hdr.Type = 3 // EVENT_ESTABLISHED
	rec.LatencyNs = 1_234_000
	return rec
}

// The offsets Decode uses come from the generated structs; this pins them
// to event.h so a regenerated header that moves a field is noticed here
// and not as garbage at run time. Both records start with struct
// event_header (decode.go also checks that at compile time).
func TestRecordLayout(t *testing.T) {
	var (
		h   bpf.TuxscopeEventHeader
		r   bpf.TuxscopeEvent
		dns bpf.TuxscopeDnsEvent
	)
	sizes := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct event_header)", unsafe.Sizeof(h), 128},
		{"sizeof(struct event)", unsafe.Sizeof(r), 232},
		{"sizeof(struct dns_event)", unsafe.Sizeof(dns), 2200},
		{"headerSize", uintptr(headerSize), 128},
		{"recordSize", uintptr(recordSize), 232},
		{"dnsHeaderSize", uintptr(dnsHeaderSize), 148},
		{"offsetof(struct event, hdr)", unsafe.Offsetof(r.Hdr), 0},
		{"offsetof(struct dns_event, hdr)", unsafe.Offsetof(dns.Hdr), 0},
	}
	for _, sz := range sizes {
		if sz.got != sz.want {
			t.Errorf("%s = %d, want %d", sz.name, sz.got, sz.want)
		}
	}
	offsets := []struct {
		name      string
		got, want uintptr
	}{
		{"ts_ns", offTs, 0},
		{"owner.pid", offPid, 8},
		{"owner.tid", offTid, 12},
		{"owner.uid", offUid, 16},
		{"owner.comm", offComm, 20},
		{"owner.thread", offThread, 36},
		{"owner.cgroup_id", offCgroup, 56},
		{"tuple.laddr", offLaddr, 64},
		{"tuple.raddr", offRaddr, 80},
		{"tuple.lport", offLport, 96},
		{"tuple.rport", offRport, 98},
		{"tuple.family", offFamily, 100},
		{"tuple.netns", offNetNS, 104},
		{"tuple.ifindex", offIfindex, 112},
		{"tuple.ifindex_netns", offIfNetNS, 116},
		{"type", offType, 120},
		{"event.flags", offFlags, 128},
		{"event.error", offError, 132},
		{"event.latency_ns", offLatency, 136},
		{"event.duration_ns", offDur, 144},
		{"event.bytes_sent", offSent, 152},
		{"event.bytes_received", offRecv, 160},
		{"event.cookie", offCookie, 168},
		{"event.opener_pid", offOpener, 176},
		{"event.opener_comm", offOpComm, 180},
		{"event.srtt_us", offSRTT, 196},
		{"event.rttvar_us", offRTTVar, 200},
		{"event.retrans_segs", offRetSegs, 204},
		{"event.retransmits", offRetrans, 208},
		{"event.state", offState, 212},
		{"event.syn_retrans", offSynRet, 213},
		{"event.bytes_retrans", offRetByts, 216},
		{"event.backlog", offBacklog, 224},
		{"dns_event.cookie", offDNSCookie, 128},
		{"dns_event.len", offDNSLen, 136},
		{"dns_event.total_len", offDNSTotal, 140},
		{"dns_event.direction", offDNSDir, 144},
		{"dns_event.protocol", offDNSProto, 145},
		{"dns_event.data", offDNSData, 148},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("offsetof(%s) = %d, want %d", o.name, o.got, o.want)
		}
	}
}

func TestDecodeIPv4Connect(t *testing.T) {
	rec := v4Connect()
	var e event.Event
	if err := decodeEvent(recordBytes(&rec), &e); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if e.Type != event.Connect {
		t.Errorf("Type = %v, want connect", e.Type)
	}
	if e.Family != 4 {
		t.Errorf("Family = %d, want 4", e.Family)
	}
	if e.TimestampNs != 123456789012 {
		t.Errorf("TimestampNs = %d, want 123456789012", e.TimestampNs)
	}
	if e.PID != 6201 || e.TID != 6202 || e.UID != 1000 {
		t.Errorf("PID/TID/UID = %d/%d/%d, want 6201/6202/1000", e.PID, e.TID, e.UID)
	}
	if want := netip.MustParseAddrPort("10.0.0.5:53412"); e.Local != want {
		t.Errorf("Local = %v, want %v", e.Local, want)
	}
	if want := netip.MustParseAddrPort("93.184.216.34:443"); e.Remote != want {
		t.Errorf("Remote = %v, want %v", e.Remote, want)
	}
	if !e.Local.Addr().Is4() || !e.Remote.Addr().Is4() {
		t.Errorf("addresses not plain IPv4: %v %v", e.Local, e.Remote)
	}
	if got := string(e.Comm()); got != "curl" {
		t.Errorf("Comm = %q, want %q", got, "curl")
	}
	// Connect: SRC is the local end, DST the remote one.
	if e.Src() != e.Local || e.Dst() != e.Remote {
		t.Errorf("Src/Dst = %v/%v, want Local/Remote %v/%v", e.Src(), e.Dst(), e.Local, e.Remote)
	}
	if got := e.Src().String(); got != "10.0.0.5:53412" {
		t.Errorf("Src = %s", got)
	}
	if got := e.Dst().String(); got != "93.184.216.34:443" {
		t.Errorf("Dst = %s", got)
	}
}

func TestDecodeIPv6Accept(t *testing.T) {
	rec := v6Accept()
	var e event.Event
	if err := decodeEvent(recordBytes(&rec), &e); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if e.Type != event.Accept || e.Family != 6 {
		t.Errorf("Type/Family = %v/%d, want accept/6", e.Type, e.Family)
	}
	if e.TimestampNs != 987654321 || e.PID != 4242 || e.TID != 4243 || e.UID != 0 {
		t.Errorf("ts/pid/tid/uid = %d/%d/%d/%d", e.TimestampNs, e.PID, e.TID, e.UID)
	}
	if want := netip.MustParseAddrPort("[2001:db8::1]:8080"); e.Local != want {
		t.Errorf("Local = %v, want %v", e.Local, want)
	}
	if want := netip.MustParseAddrPort("[2001:db8:0:1::2]:40000"); e.Remote != want {
		t.Errorf("Remote = %v, want %v", e.Remote, want)
	}
	if got := string(e.Comm()); got != "python3" {
		t.Errorf("Comm = %q", got)
	}
	// Accept: SRC is the remote client, DST the local listener.
	if got := e.Src().String(); got != "[2001:db8:0:1::2]:40000" {
		t.Errorf("Src = %s, want the remote client", got)
	}
	if got := e.Dst().String(); got != "[2001:db8::1]:8080" {
		t.Errorf("Dst = %s, want the local listener", got)
	}
}

func TestDecodeV4MappedIPv6(t *testing.T) {
	rec := v6Accept()
	rec.Hdr.Tuple.Laddr = netip.MustParseAddr("::ffff:10.0.0.1").As16()
	rec.Hdr.Tuple.Raddr = netip.MustParseAddr("::ffff:1.2.3.4").As16()
	rec.Hdr.Tuple.Lport, rec.Hdr.Tuple.Rport = 80, 51000
	var e event.Event
	if err := decodeEvent(recordBytes(&rec), &e); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if e.Family != 6 {
		t.Errorf("Family = %d, want 6 (dual-stack socket)", e.Family)
	}
	if !e.Remote.Addr().Is4In6() || e.Remote.Addr().Is4() {
		t.Errorf("Remote %v: want a v4-mapped IPv6 address, not unmapped", e.Remote)
	}
	if got := e.Remote.Addr().String(); got != "::ffff:1.2.3.4" {
		t.Errorf("Remote addr = %s, want ::ffff:1.2.3.4", got)
	}
	if got := e.Src().String(); got != "[::ffff:1.2.3.4]:51000" {
		t.Errorf("Src = %s", got)
	}
	if got := e.Dst().String(); got != "[::ffff:10.0.0.1]:80" {
		t.Errorf("Dst = %s", got)
	}
}

func TestDecodeClose(t *testing.T) {
	rec := v6InboundClose()
	var e event.Event
	if err := decodeEvent(recordBytes(&rec), &e); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if e.Type != event.Close || e.Family != 6 {
		t.Errorf("Type/Family = %v/%d, want close/6", e.Type, e.Family)
	}
	if e.TimestampNs != 987654321 || e.PID != 4242 || e.TID != 4243 || e.UID != 0 {
		t.Errorf("ts/pid/tid/uid = %d/%d/%d/%d", e.TimestampNs, e.PID, e.TID, e.UID)
	}
	if e.Flags != event.FlagInbound|event.FlagClosedRemote {
		t.Errorf("Flags = %#x, want %#x", e.Flags, event.FlagInbound|event.FlagClosedRemote)
	}
	if e.Error != 104 {
		t.Errorf("Error = %d, want 104", e.Error)
	}
	if e.LatencyNs != 0x0102030405060708 {
		t.Errorf("LatencyNs = %#x, want 0x0102030405060708", e.LatencyNs)
	}
	if e.DurationNs != 1_234_567_890_123 {
		t.Errorf("DurationNs = %d, want 1234567890123", e.DurationNs)
	}
	if e.BytesSent != 0x1112131415161718 {
		t.Errorf("BytesSent = %#x, want 0x1112131415161718", e.BytesSent)
	}
	if e.BytesReceived != 0x2122232425262728 {
		t.Errorf("BytesReceived = %#x, want 0x2122232425262728", e.BytesReceived)
	}
	if e.Cookie != 0xf1f2f3f4f5f6f7f8 {
		t.Errorf("Cookie = %#x, want 0xf1f2f3f4f5f6f7f8", e.Cookie)
	}
	if got := string(e.Comm()); got != "python3" {
		t.Errorf("Comm = %q", got)
	}
	// Inbound: SRC is the remote client, DST the local listener.
	if !e.Inbound() || e.Direction() != "inbound" || e.ClosedBy() != "remote" {
		t.Errorf("Inbound/Direction/ClosedBy = %v/%q/%q, want true/inbound/remote", e.Inbound(), e.Direction(), e.ClosedBy())
	}
	if got := e.Src().String(); got != "[2001:db8:0:1::2]:40000" {
		t.Errorf("Src = %s, want the remote client", got)
	}
	if got := e.Dst().String(); got != "[2001:db8::1]:8080" {
		t.Errorf("Dst = %s, want the local listener", got)
	}
}

// The same close, laid out by hand at the offsets of struct event (see
// TestRecordLayout), independently of the bpf2go struct.
func TestDecodeCloseRawOffsets(t *testing.T) {
	b := make([]byte, 232)
	ne := binary.NativeEndian
	// struct event_header
	ne.PutUint64(b[0:], 5_000_000_000)
	ne.PutUint32(b[8:], 6201)
	ne.PutUint32(b[12:], 6202)
	ne.PutUint32(b[16:], 1000)
	copy(b[20:], "curl")
	copy(b[36:], "curl-worker")
	ne.PutUint64(b[56:], 77)
	copy(b[64:], []byte{10, 0, 0, 5})
	copy(b[80:], []byte{93, 184, 216, 34})
	ne.PutUint16(b[96:], 53412)
	ne.PutUint16(b[98:], 443)
	ne.PutUint16(b[100:], 2) // AF_INET
	ne.PutUint64(b[104:], 4026531840)
	b[120] = 5 // EVENT_CLOSE
	// the rest of struct event
	b[128] = 2 | 8            // FLAG_CLOSED_LOCAL | FLAG_RESET
	ne.PutUint32(b[132:], 32) // EPIPE
	ne.PutUint64(b[136:], 0)
	ne.PutUint64(b[144:], 1_200_000_000)
	ne.PutUint64(b[152:], 1024)
	ne.PutUint64(b[160:], 2048)
	ne.PutUint64(b[168:], 4097)
	ne.PutUint32(b[176:], 6100)
	copy(b[180:], "sshd")
	ne.PutUint32(b[196:], 1520)
	ne.PutUint32(b[200:], 380)
	ne.PutUint32(b[204:], 7)
	ne.PutUint64(b[216:], 9001)
	ne.PutUint32(b[224:], 4096)

	var e event.Event
	if err := decodeEvent(b, &e); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	got := [...]uint64{uint64(e.Type), uint64(e.Flags), uint64(e.Error), e.LatencyNs, e.DurationNs, e.BytesSent, e.BytesReceived, e.Cookie, e.TimestampNs, e.CgroupID, e.NetNS}
	want := [...]uint64{5, 10, 32, 0, 1_200_000_000, 1024, 2048, 4097, 5_000_000_000, 77, 4026531840}
	if got != want {
		t.Errorf("type, flags, error, latency, duration, sent, received, cookie, ts, cgroup, netns =\n %v\nwant %v", got, want)
	}
	if e.Local.String() != "10.0.0.5:53412" || e.Remote.String() != "93.184.216.34:443" || string(e.Comm()) != "curl" ||
		e.PID != 6201 || e.TID != 6202 || e.UID != 1000 {
		t.Errorf("Local/Remote/Comm/PID/TID/UID = %v/%v/%q/%d/%d/%d", e.Local, e.Remote, e.Comm(), e.PID, e.TID, e.UID)
	}
	if string(e.Thread()) != "curl-worker" || e.OpenerPID != 6100 || string(e.OpenerComm()) != "sshd" || !e.Reset() {
		t.Errorf("Thread/OpenerPID/OpenerComm/Reset = %q/%d/%q/%v", e.Thread(), e.OpenerPID, e.OpenerComm(), e.Reset())
	}
	if e.SRTTUs != 1520 || e.RTTVarUs != 380 || e.RetransSegs != 7 || e.BytesRetrans != 9001 {
		t.Errorf("SRTTUs/RTTVarUs/RetransSegs/BytesRetrans = %d/%d/%d/%d, want 1520/380/7/9001", e.SRTTUs, e.RTTVarUs, e.RetransSegs, e.BytesRetrans)
	}
	if e.Inbound() || e.ClosedBy() != "local" || e.Backlog != 4096 {
		t.Errorf("Inbound/ClosedBy/Backlog = %v/%q/%d, want false/local/4096", e.Inbound(), e.ClosedBy(), e.Backlog)
	}
	// The same bytes through the generated struct.
	var rec bpf.TuxscopeEvent
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec)), b)
	if rec.Hdr.Type != 5 || rec.Flags != 10 || rec.Error != 32 || rec.OpenerPid != 6100 || rec.DurationNs != 1_200_000_000 ||
		rec.BytesSent != 1024 || rec.BytesReceived != 2048 || rec.Cookie != 4097 || rec.Hdr.Owner.CgroupId != 77 {
		t.Errorf("bpf.TuxscopeEvent over the same bytes: %+v", rec)
	}
}

func TestDecodeLifecycleTypes(t *testing.T) {
	tests := []struct {
		name    string
		rec     bpf.TuxscopeEvent
		typ     event.Type
		err     uint32
		latency uint64
	}{
		{"established", v4Established(), event.Established, 0, 1_234_000},
		{"failed", v4Failed(), event.Failed, 111, 85_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e event.Event
			if err := decodeEvent(recordBytes(&tt.rec), &e); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if e.Type != tt.typ || e.Error != tt.err || e.LatencyNs != tt.latency {
				t.Errorf("Type/Error/LatencyNs = %v/%d/%d, want %v/%d/%d", e.Type, e.Error, e.LatencyNs, tt.typ, tt.err, tt.latency)
			}
			if e.Flags != 0 || e.DurationNs != 0 || e.BytesSent != 0 || e.BytesReceived != 0 || e.Cookie != 0 {
				t.Errorf("close-only fields set: %+v", e)
			}
			if e.Inbound() || e.Src().String() != "10.0.0.5:53412" || e.Dst().String() != "93.184.216.34:443" {
				t.Errorf("Inbound/Src/Dst = %v/%v/%v, want outbound", e.Inbound(), e.Src(), e.Dst())
			}
		})
	}
}

// sk_err is positive; anything else the record holds means no error.
func TestDecodeError(t *testing.T) {
	tests := []struct {
		raw  int32
		want uint32
	}{
		{0, 0},
		{1, 1},
		{104, 104},
		{111, 111},
		{2147483647, 2147483647},
		{-1, 0},
		{-111, 0},
		{-2147483648, 0},
	}
	for _, tt := range tests {
		rec := v4Failed()
		rec.Error = tt.raw
		e := event.Event{Error: 12345} // stale from an earlier record
		if err := decodeEvent(recordBytes(&rec), &e); err != nil {
			t.Fatalf("error %d: Decode: %v", tt.raw, err)
		}
		if e.Error != tt.want {
			t.Errorf("error %d: Error = %d, want %d", tt.raw, e.Error, tt.want)
		}
	}
}

func TestDecodeComm(t *testing.T) {
	tests := []struct {
		name string
		raw  [16]byte
		want string
	}{
		{"full 16 bytes, no NUL", [16]byte{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'}, "0123456789abcdef"},
		{"15 bytes and NUL", [16]byte{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e'}, "0123456789abcde"},
		{"NUL early, garbage after", [16]byte{'s', 'h', 0, 'X', 'Y', 'Z', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, "sh"},
		{"empty", [16]byte{0, 'x'}, ""},
		{"low control bytes are not terminators", [16]byte{0x01, 'a', 0x02, 0x7f, 0x80}, "\x01a\x02\x7f\x80"},
		{"hostile bytes kept raw", [16]byte{0x1b, '[', '3', '1', 'm', 0xff, 0x9b, '\n'}, "\x1b[31m\xff\x9b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := v4Connect()
			for i, c := range tt.raw {
				rec.Hdr.Owner.Comm[i] = int8(c)
			}
			var e event.Event
			if err := decodeEvent(recordBytes(&rec), &e); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := string(e.Comm()); got != tt.want {
				t.Errorf("Comm = %q, want %q", got, tt.want)
			}
		})
	}
}

// Decoding into a reused event.Event must overwrite everything from the last one.
func TestDecodeReuse(t *testing.T) {
	var e event.Event
	r6 := v6Accept()
	setComm(&r6.Hdr, "a-long-name-xyz")
	if err := decodeEvent(recordBytes(&r6), &e); err != nil {
		t.Fatal(err)
	}
	r4 := v4Connect()
	if err := decodeEvent(recordBytes(&r4), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != event.Connect || e.Family != 4 || string(e.Comm()) != "curl" ||
		e.Local.String() != "10.0.0.5:53412" || e.Remote.String() != "93.184.216.34:443" ||
		e.PID != 6201 || e.UID != 1000 {
		t.Errorf("stale fields after reuse: %+v comm=%q", e, e.Comm())
	}

	// A close leaves nothing of itself in the connect decoded after it.
	rc := v6InboundClose()
	if err := decodeEvent(recordBytes(&rc), &e); err != nil {
		t.Fatal(err)
	}
	if err := decodeEvent(recordBytes(&r4), &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != event.Connect || e.Flags != 0 || e.Error != 0 || e.LatencyNs != 0 || e.DurationNs != 0 ||
		e.BytesSent != 0 || e.BytesReceived != 0 || e.Cookie != 0 || e.Inbound() {
		t.Errorf("stale lifecycle fields after reuse: %+v", e)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := v4Connect()
	goodBytes := recordBytes(&good)

	t.Run("short", func(t *testing.T) {
		for _, n := range []int{0, 1, 64, 87, 88, 127, 135} {
			var e event.Event
			err := decodeEvent(goodBytes[:n], &e)
			if !errors.Is(err, ErrShortRecord) {
				t.Errorf("len %d: err = %v, want ErrShortRecord", n, err)
			}
		}
		var e event.Event
		err := decodeEvent(goodBytes[:79], &e)
		if err == nil || err.Error() != "short record: 79 bytes, want 232" {
			t.Errorf("err = %v, want %q", err, "short record: 79 bytes, want 232")
		}
		if err := decodeEvent(nil, &e); !errors.Is(err, ErrShortRecord) {
			t.Errorf("nil: err = %v", err)
		}
	})

	t.Run("unknown type", func(t *testing.T) {
		for _, typ := range []uint8{0, 6, 7, 12, 255} {
			rec := v4Connect()
			rec.Hdr.Type = typ
			var e event.Event
			err := decodeEvent(recordBytes(&rec), &e)
			want := "unknown event type " + strconv.Itoa(int(typ))
			if err == nil || err.Error() != want {
				t.Errorf("type %d: err = %v, want %q", typ, err, want)
			}
			if errors.Is(err, ErrShortRecord) {
				t.Errorf("type %d: wrongly a short record", typ)
			}
		}
	})

	t.Run("unknown family", func(t *testing.T) {
		for _, fam := range []uint16{0, 1, 4, 6, 17, 0x0a00, 0x0200} {
			rec := v4Connect()
			rec.Hdr.Tuple.Family = fam
			var e event.Event
			err := decodeEvent(recordBytes(&rec), &e)
			want := "unknown address family " + strconv.Itoa(int(fam))
			if err == nil || err.Error() != want {
				t.Errorf("family %d: err = %v, want %q", fam, err, want)
			}
		}
	})
}

func TestDecodeAllocs(t *testing.T) {
	rec4, rec6, recClose := v4Connect(), v6Accept(), v6InboundClose()
	b4, b6, bClose := recordBytes(&rec4), recordBytes(&rec6), recordBytes(&recClose)
	var e event.Event
	allocs := testing.AllocsPerRun(1000, func() {
		if err := decodeEvent(b4, &e); err != nil {
			panic(err)
		}
		if err := decodeEvent(b6, &e); err != nil {
			panic(err)
		}
		if err := decodeEvent(bClose, &e); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decode: %v allocs per run, want 0", allocs)
	}
}

func BenchmarkDecodeClose(b *testing.B) {
	rec := v6InboundClose()
	buf := recordBytes(&rec)
	var e event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := decodeEvent(buf, &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	rec := v4Connect()
	buf := recordBytes(&rec)
	var e event.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := decodeEvent(buf, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// dnsResponse is a DNS response over UDP/IPv6 with a 12-byte payload.
func dnsResponse() bpf.TuxscopeDnsEvent {
	var rec bpf.TuxscopeDnsEvent
	setHeader(&rec.Hdr, 7 /* EVENT_DNS */, 555666777, 3131, 3132, 1000, "resolvectl", 10 /* AF_INET6 */, 41000, 53)
	rec.Hdr.Owner.CgroupId = 0x4142434445464748
	rec.Hdr.Tuple.Netns = 0x7172737475767778
	rec.Hdr.Tuple.Laddr = netip.MustParseAddr("2001:db8::7").As16()
	rec.Hdr.Tuple.Raddr = netip.MustParseAddr("2001:db8::53").As16()
	rec.Cookie = 0x5152535455565758
	rec.Direction = 1 // DNS_RESPONSE
	rec.Protocol = 17 // IPPROTO_UDP
	rec.TotalLen = 3000
	rec.Len = 12
	copy(rec.Data[:], "\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00")
	return rec
}

func TestDecodeDNS(t *testing.T) {
	rec := dnsResponse()
	b := recordBytes(&rec)
	var (
		e event.Event
		p event.DNSPacket
	)
	isDNS, err := decodeRecord(b, &e, &p)
	if err != nil || !isDNS {
		t.Fatalf("decodeRecord = %v, %v; want a DNS packet", isDNS, err)
	}
	if p.TimestampNs != 555666777 || p.PID != 3131 || p.TID != 3132 || p.UID != 1000 || string(p.Comm.Bytes()) != "resolvectl" ||
		p.CgroupID != 0x4142434445464748 || p.NetNS != 0x7172737475767778 {
		t.Errorf("owner: %+v", p)
	}
	if p.Family != 6 || p.Local.String() != "[2001:db8::7]:41000" || p.Remote.String() != "[2001:db8::53]:53" {
		t.Errorf("tuple: %d %v %v", p.Family, p.Local, p.Remote)
	}
	if !p.Response || p.Protocol != 17 || p.Cookie != 0x5152535455565758 || p.PayloadLen != 3000 ||
		string(p.Payload) != string(rec.Data[:12]) {
		t.Errorf("DNS fields: %+v", p)
	}
	// The record as the kernel hands it may stop after the payload.
	if _, err := decodeRecord(b[:dnsHeaderSize+12], &e, &p); err != nil || len(p.Payload) != 12 {
		t.Errorf("trimmed record: %v, payload %d bytes", err, len(p.Payload))
	}

	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", b[:dnsHeaderSize-1], "short record: 147 bytes, want at least 148 for a DNS record"},
		{"payload past the end", b[:dnsHeaderSize+11], "DNS record claims 12 payload bytes, has 11"},
	} {
		if _, err := decodeRecord(tt.b, &e, &p); err == nil || err.Error() != tt.want {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	rec.Hdr.Tuple.Family = 1
	if _, err := decodeRecord(recordBytes(&rec), &e, &p); err == nil || err.Error() != "unknown address family 1" {
		t.Errorf("family 1: err = %v", err)
	}

	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := decodeRecord(b, &e, &p); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decodeRecord (DNS): %v allocs per run, want 0", allocs)
	}
}

// tlsHello is an outbound IPv4 connection's first segment, 9 bytes of a
// 1,500-byte one captured.
func tlsHello() bpf.TuxscopeTlsEvent {
	var rec bpf.TuxscopeTlsEvent
	setHeader(&rec.Hdr, 16 /* EVENT_TLS */, 777888999, 0, 0, 0, "", 2 /* AF_INET */, 40001, 443)
	rec.Hdr.Owner.CgroupId = 0x1112131415161718
	copy(rec.Hdr.Tuple.Laddr[:], []byte{127, 0, 0, 1})
	copy(rec.Hdr.Tuple.Raddr[:], []byte{127, 0, 0, 2})
	rec.Cookie = 0x2122232425262728
	rec.TotalLen = 1500
	rec.Len = 9
	copy(rec.Data[:], "\x16\x03\x01\x05\xd7\x01\x00\x05\xd3")
	return rec
}

func TestDecodeTLS(t *testing.T) {
	rec := tlsHello()
	b := recordBytes(&rec)
	if !tlsRecord(b) {
		t.Fatal("not taken for a TLS record")
	}
	var h event.TLSHello
	if err := decodeTLS(b, &h); err != nil {
		t.Fatal(err)
	}
	if h.TimestampNs != 777888999 || h.CgroupID != 0x1112131415161718 || h.Cookie != 0x2122232425262728 ||
		h.Family != 4 || h.Local.String() != "127.0.0.1:40001" || h.Remote.String() != "127.0.0.2:443" ||
		h.SegmentLen != 1500 || string(h.Payload) != string(rec.Data[:9]) {
		t.Errorf("decoded %+v", h)
	}
	if err := decodeTLS(b[:tlsHeaderSize+9], &h); err != nil || len(h.Payload) != 9 {
		t.Errorf("trimmed record: %v, payload %d bytes", err, len(h.Payload))
	}
	if err := decodeTLS(b[:tlsHeaderSize+8], &h); err == nil || err.Error() != "TLS record claims 9 payload bytes, has 8" {
		t.Errorf("payload past the end: %v", err)
	}
	if err := decodeTLS(b[:tlsHeaderSize-1], &h); !errors.Is(err, ErrShortRecord) {
		t.Errorf("short: %v", err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := decodeTLS(b, &h); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decodeTLS: %v allocs per run, want 0", allocs)
	}
}

// FuzzDecode checks decodeRecord never panics and, when it accepts a
// record, agrees field by field with the bpf2go struct of its kind laid
// over the same bytes.
func FuzzDecode(f *testing.F) {
	r4, r6, rc, rf, re, rd := v4Connect(), v6Accept(), v6InboundClose(), v4Failed(), v4Established(), dnsResponse()
	f.Add(recordBytes(&r4))
	f.Add(recordBytes(&r6))
	f.Add(recordBytes(&rc))
	f.Add(recordBytes(&rf))
	f.Add(recordBytes(&re))
	f.Add(recordBytes(&r4)[:79])
	f.Add(recordBytes(&rc)[:135])
	f.Add(recordBytes(&rd)[:dnsHeaderSize+12])
	f.Add(recordBytes(&rd)[:dnsHeaderSize])
	rt := tlsHello()
	f.Add(recordBytes(&rt)[:tlsHeaderSize+9])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var (
			e  event.Event
			p  event.DNSPacket
			th event.TLSHello
		)
		if tlsRecord(b) {
			err := decodeTLS(b, &th)
			var rec bpf.TuxscopeTlsEvent
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec)), b)
			switch {
			case len(b) < tlsHeaderSize:
				if !errors.Is(err, ErrShortRecord) {
					t.Fatalf("len %d: err = %v", len(b), err)
				}
			case int(rec.Len) > len(b)-tlsHeaderSize:
				if err == nil {
					t.Fatalf("payload of %d bytes accepted in a %d-byte record", rec.Len, len(b))
				}
			case err == nil:
				if th.Cookie != rec.Cookie || th.SegmentLen != rec.TotalLen || len(th.Payload) != int(rec.Len) {
					t.Fatalf("TLS fields differ: %+v vs %+v", th, rec)
				}
			}
			return
		}
		isDNS, err := decodeRecord(b, &e, &p)
		if isDNS {
			checkFuzzedDNS(t, b, &p, err)
			return
		}
		var rec bpf.TuxscopeEvent
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec)), b)
		h := &rec.Hdr
		if len(b) < recordSize {
			if !errors.Is(err, ErrShortRecord) {
				t.Fatalf("len %d: err = %v, want ErrShortRecord", len(b), err)
			}
			return
		}
		if err != nil {
			if kernelType(event.Type(h.Type)) {
				if h.Tuple.Family == 2 || h.Tuple.Family == 10 {
					t.Fatalf("valid record rejected: %v", err)
				}
			}
			return
		}
		if uint8(e.Type) != h.Type || !kernelType(e.Type) {
			t.Fatalf("Type = %d, record says %d", e.Type, h.Type)
		}
		checkFuzzedHeader(t, h, e.TimestampNs, e.PID, e.TID, e.UID, e.CgroupID, e.Comm(), e.Family, e.Local, e.Remote)
		if uint8(e.Flags) != rec.Flags {
			t.Fatalf("Flags = %#x, record says %#x", e.Flags, rec.Flags)
		}
		if wantErr := uint32(max(rec.Error, 0)); e.Error != wantErr {
			t.Fatalf("Error = %d, record says %d", e.Error, rec.Error)
		}
		if e.LatencyNs != rec.LatencyNs || e.DurationNs != rec.DurationNs || e.BytesSent != rec.BytesSent ||
			e.BytesReceived != rec.BytesReceived || e.Cookie != rec.Cookie {
			t.Fatalf("lifecycle fields differ: %+v vs %+v", e, rec)
		}
	})
}

// checkFuzzedDNS checks a record decodeRecord took for a DNS one against
// struct dns_event laid over the same bytes.
func checkFuzzedDNS(t *testing.T, b []byte, p *event.DNSPacket, err error) {
	t.Helper()
	var rec bpf.TuxscopeDnsEvent
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec)), b)
	if rec.Hdr.Type != uint8(event.DNS) {
		t.Fatalf("type %d decoded as DNS", rec.Hdr.Type)
	}
	switch {
	case len(b) < dnsHeaderSize:
		if !errors.Is(err, ErrShortRecord) {
			t.Fatalf("len %d: err = %v, want ErrShortRecord", len(b), err)
		}
		return
	case int(rec.Len) > len(b)-dnsHeaderSize:
		if err == nil {
			t.Fatalf("payload of %d bytes accepted in a %d-byte record", rec.Len, len(b))
		}
		return
	case err != nil:
		if fam := rec.Hdr.Tuple.Family; fam == 2 || fam == 10 {
			t.Fatalf("valid DNS record rejected: %v", err)
		}
		return
	}
	checkFuzzedHeader(t, &rec.Hdr, p.TimestampNs, p.PID, p.TID, p.UID, p.CgroupID, p.Comm.Bytes(), p.Family, p.Local, p.Remote)
	if p.Response != (rec.Direction == 1) || p.Protocol != rec.Protocol || p.Cookie != rec.Cookie || p.PayloadLen != rec.TotalLen {
		t.Fatalf("DNS fields differ: %+v vs %+v", p, rec)
	}
	if len(p.Payload) != int(rec.Len) || string(p.Payload) != string(b[dnsHeaderSize:dnsHeaderSize+int(rec.Len)]) {
		t.Fatalf("payload %q, record has %d bytes at %d", p.Payload, rec.Len, dnsHeaderSize)
	}
}

// checkFuzzedHeader checks what was decoded from a record's header
// against struct event_header laid over the same bytes.
func checkFuzzedHeader(t *testing.T, h *bpf.TuxscopeEventHeader, ts uint64, pid, tid, uid uint32, cgroup uint64, comm []byte,
	family uint8, local, remote netip.AddrPort) {
	t.Helper()
	if ts != h.TsNs || pid != h.Owner.Pid || tid != h.Owner.Tid || uid != h.Owner.Uid || cgroup != h.Owner.CgroupId {
		t.Fatalf("ids differ: %d/%d/%d/%d/%d vs %+v", ts, pid, tid, uid, cgroup, h)
	}
	if local.Port() != h.Tuple.Lport || remote.Port() != h.Tuple.Rport {
		t.Fatalf("ports %d/%d, record %d/%d", local.Port(), remote.Port(), h.Tuple.Lport, h.Tuple.Rport)
	}
	switch h.Tuple.Family {
	case 2:
		if family != 4 || !local.Addr().Is4() || local.Addr().As4() != [4]byte(h.Tuple.Laddr[:4]) ||
			remote.Addr().As4() != [4]byte(h.Tuple.Raddr[:4]) {
			t.Fatalf("IPv4 mismatch: %v %v", local, remote)
		}
	case 10:
		if family != 6 || !local.Addr().Is6() || local.Addr().As16() != h.Tuple.Laddr ||
			remote.Addr().As16() != h.Tuple.Raddr {
			t.Fatalf("IPv6 mismatch: %v %v", local, remote)
		}
	default:
		t.Fatalf("accepted family %d", h.Tuple.Family)
	}
	if len(comm) > 16 || strings.IndexByte(string(comm), 0) >= 0 {
		t.Fatalf("Comm %q: too long or holds NUL", comm)
	}
	for i, c := range comm {
		if byte(h.Owner.Comm[i]) != c {
			t.Fatalf("Comm %q differs from record at %d", comm, i)
		}
	}
	if len(comm) < 16 && h.Owner.Comm[len(comm)] != 0 {
		t.Fatalf("Comm %q stopped before the NUL", comm)
	}
}

// An IPv6 socket's bound interface and its network namespace's inode come
// through for zone resolution; an IPv4 record's (never filled) are ignored.
func TestDecodeIfindex(t *testing.T) {
	rec := v6Accept()
	rec.Hdr.Tuple.Ifindex, rec.Hdr.Tuple.IfindexNetns = 7, 4026531840
	var e event.Event
	if err := decodeEvent(recordBytes(&rec), &e); err != nil {
		t.Fatal(err)
	}
	if e.IfIndex != 7 || e.IfIndexNetNS != 4026531840 {
		t.Errorf("IfIndex, IfIndexNetNS = %d, %d; want 7, 4026531840", e.IfIndex, e.IfIndexNetNS)
	}
	rec.Hdr.Tuple.Family = 2
	if err := decodeEvent(recordBytes(&rec), &e); err != nil {
		t.Fatal(err)
	}
	if e.IfIndex != 0 || e.IfIndexNetNS != 0 {
		t.Errorf("IPv4: IfIndex, IfIndexNetNS = %d, %d; want 0", e.IfIndex, e.IfIndexNetNS)
	}
}

// An established or failed record with FLAG_WITH_CONNECT also stands for
// the connect before it: the same time, owner and tuple, nothing else;
// the outcome itself does not show the wire flag. Other records, and
// records without the flag, stand for nothing more.
func TestDecodeWithConnect(t *testing.T) {
	for _, rec := range []bpf.TuxscopeEvent{v4Established(), v4Failed()} {
		rec.Flags = uint8(flagWithConnect)
		b := recordBytes(&rec)
		var out, conn event.Event
		if err := decodeEvent(b, &out); err != nil {
			t.Fatal(err)
		}
		ok, err := decodeConnect(b, &conn)
		if err != nil || !ok {
			t.Fatalf("%s: decodeConnect = %v, %v", out.Type, ok, err)
		}
		if out.Flags != 0 {
			t.Errorf("%s: flags %#x, want the wire flag cleared", out.Type, out.Flags)
		}
		want := event.Event{Type: event.Connect}
		if err := decodeEventHeader(b, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(conn, want) || conn.TimestampNs != out.TimestampNs || conn.PID != out.PID || conn.Local != out.Local ||
			conn.Remote != out.Remote || conn.LatencyNs != 0 || conn.Error != 0 {
			t.Errorf("%s: connect %+v, want the header only of %+v", out.Type, conn, out)
		}
	}
	for _, rec := range []bpf.TuxscopeEvent{v4Established(), v4Connect(), v6InboundClose()} {
		if rec.Hdr.Type != 3 {
			rec.Flags |= uint8(flagWithConnect)
		}
		var conn event.Event
		if ok, _ := decodeConnect(recordBytes(&rec), &conn); ok {
			t.Errorf("type %d flags %#x: stands for a connect", rec.Hdr.Type, rec.Flags)
		}
	}
}
