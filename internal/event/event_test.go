package event

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTypeString(t *testing.T) {
	tests := []struct {
		t    Type
		want string
	}{
		{Connect, "connect"},
		{Accept, "accept"},
		{Established, "established"},
		{Failed, "failed"},
		{Close, "close"},
		{Existing, "existing"},
		{Lost, "lost"},
		{0, "type(0)"},
		{DNS, "dns"},
		{8, "retransmit"},
		{9, "reset"},
		{13, "udp_open"},
		{14, "udp_close"},
		{15, "type(15)"},
		{254, "type(254)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
		}
	}
	// The kernel's enum event_type values.
	if Connect != 1 || Accept != 2 || Established != 3 || Failed != 4 || Close != 5 || Lost != 255 {
		t.Errorf("enum event_type mismatch: %d %d %d %d %d %d", Connect, Accept, Established, Failed, Close, Lost)
	}
}

func TestParseType(t *testing.T) {
	for _, typ := range []Type{Connect, Accept, Established, Failed, Close} {
		got, err := ParseType(typ.String())
		if err != nil || got != typ {
			t.Errorf("ParseType(%q) = %v, %v; want %v", typ.String(), got, err, typ)
		}
	}
	for _, s := range []string{"", "lost", "existing", "Connect", "ACCEPT", "connect ", "type(1)", "1"} {
		got, err := ParseType(s)
		if err == nil {
			t.Errorf("ParseType(%q) = %v, want an error", s, got)
			continue
		}
		if got != 0 {
			t.Errorf("ParseType(%q) returned %v with its error, want 0", s, got)
		}
	}
	_, err := ParseType("foo")
	if want := `unknown event type "foo" (want connect, accept, established, failed, close, retransmit, reset, listen, unlisten, udp_open or udp_close)`; err == nil || err.Error() != want {
		t.Errorf("ParseType(foo) error = %v, want %q", err, want)
	}
}

func TestSrcDst(t *testing.T) {
	local := netip.MustParseAddrPort("192.0.2.1:8080")
	remote := netip.MustParseAddrPort("198.51.100.7:40000")
	tests := []struct {
		typ      Type
		flags    Flags
		src, dst netip.AddrPort
	}{
		{Connect, 0, local, remote},
		{Accept, 0, remote, local},
		{Accept, FlagInbound, remote, local},
		{Established, 0, local, remote},
		{Failed, 0, local, remote},
		// The close of a connected connection: as its connect.
		{Close, 0, local, remote},
		{Close, FlagClosedLocal, local, remote},
		{Close, FlagClosedRemote, local, remote},
		// The close of an accepted connection: as its accept.
		{Close, FlagInbound, remote, local},
		{Close, FlagInbound | FlagClosedRemote, remote, local},
		{Close, FlagInbound | FlagClosedLocal, remote, local},
		{Existing, FlagInbound, remote, local},
		{Existing, 0, local, remote},
		{Lost, 0, local, remote}, // anything not inbound is shown like a connect
	}
	for _, tt := range tests {
		e := Event{Type: tt.typ, Flags: tt.flags, Local: local, Remote: remote}
		if e.Src() != tt.src || e.Dst() != tt.dst {
			t.Errorf("%v flags %#x: Src/Dst = %v/%v, want %v/%v", tt.typ, tt.flags, e.Src(), e.Dst(), tt.src, tt.dst)
		}
	}
}

func TestFlagValues(t *testing.T) {
	// enum event_flag in internal/bpf/event.h.
	if FlagInbound != 1 || FlagClosedLocal != 2 || FlagClosedRemote != 4 {
		t.Errorf("enum event_flag mismatch: %d %d %d, want 1 2 4", FlagInbound, FlagClosedLocal, FlagClosedRemote)
	}
}

func TestInboundDirection(t *testing.T) {
	tests := []struct {
		typ       Type
		flags     Flags
		inbound   bool
		direction string
	}{
		{Connect, 0, false, "outbound"},
		{Accept, 0, true, "inbound"}, // an accept is inbound even without the flag
		{Accept, FlagInbound, true, "inbound"},
		{Established, 0, false, "outbound"},
		{Failed, 0, false, "outbound"},
		{Close, 0, false, "outbound"},
		{Close, FlagClosedLocal | FlagClosedRemote, false, "outbound"},
		{Close, FlagInbound, true, "inbound"},
		{Close, FlagInbound | FlagClosedRemote, true, "inbound"},
		{Connect, FlagInbound, true, "inbound"}, // the flag alone decides
		{Lost, 0, false, "outbound"},
		{0, 0, false, "outbound"},
	}
	for _, tt := range tests {
		e := Event{Type: tt.typ, Flags: tt.flags}
		if got := e.Inbound(); got != tt.inbound {
			t.Errorf("%v flags %#x: Inbound() = %v, want %v", tt.typ, tt.flags, got, tt.inbound)
		}
		if got := e.Direction(); got != tt.direction {
			t.Errorf("%v flags %#x: Direction() = %q, want %q", tt.typ, tt.flags, got, tt.direction)
		}
	}
}

func TestClosedBy(t *testing.T) {
	tests := []struct {
		flags Flags
		want  string
	}{
		{0, ""},
		{FlagInbound, ""},
		{FlagClosedLocal, "local"},
		{FlagClosedRemote, "remote"},
		{FlagInbound | FlagClosedLocal, "local"},
		{FlagInbound | FlagClosedRemote, "remote"},
		{FlagClosedLocal | FlagClosedRemote, "local"}, // never sent; local wins
		{0xf8, ""}, // unknown bits say nothing
	}
	for _, tt := range tests {
		e := Event{Type: Close, Flags: tt.flags}
		if got := e.ClosedBy(); got != tt.want {
			t.Errorf("flags %#x: ClosedBy() = %q, want %q", tt.flags, got, tt.want)
		}
	}
}

func TestSetComm(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"curl", "curl"},
		{"0123456789abcde", "0123456789abcde"},  // 15: kept
		{"0123456789abcdef", "0123456789abcde"}, // 16: kernel keeps 15
		{"0123456789abcdefXYZ", "0123456789abcde"},
		{"\x1b[31m\xff", "\x1b[31m\xff"}, // bytes kept raw, escaping is output's job
	}
	for _, tt := range tests {
		var e Event
		e.SetComm("previous-name")
		e.SetComm(tt.in)
		if got := string(e.Comm()); got != tt.want {
			t.Errorf("SetComm(%q): Comm = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClockWall(t *testing.T) {
	// Arithmetic: the offset is added to the monotonic timestamp.
	c := Clock{offset: 1_700_000_000_000_000_000}
	if got, want := c.Wall(5), time.Unix(0, 1_700_000_000_000_000_005); !got.Equal(want) {
		t.Errorf("Wall(5) = %v, want %v", got, want)
	}
	if d := c.Wall(3_000_000_000).Sub(c.Wall(1_000_000_000)); d != 2*time.Second {
		t.Errorf("Wall difference = %v, want 2s", d)
	}

	// Sanity against the real clocks: a timestamp taken now maps to now.
	clock := NewClock()
	var mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	got := clock.Wall(uint64(mono.Nano()))
	if d := before.Sub(got); d < -time.Second || d > time.Second {
		t.Errorf("Wall(now monotonic) = %v, time.Now() = %v: %v apart", got, before, d)
	}
	if got.Location() != time.Local {
		t.Errorf("Wall location = %v, want Local", got.Location())
	}
}
