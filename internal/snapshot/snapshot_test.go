package snapshot

import (
	"net/netip"
	"testing"
)

func TestAccepted(t *testing.T) {
	ap := netip.MustParseAddrPort
	listeners := map[netip.AddrPort]bool{ap("0.0.0.0:22"): true, ap("127.0.0.1:5432"): true, ap("[::]:80"): true}
	eph := [2]uint16{32768, 60999}
	tests := []struct {
		local, remote string
		want          bool
	}{
		{"10.0.0.1:22", "10.0.0.9:50000", true},      // a wildcard listener's port
		{"127.0.0.1:5432", "127.0.0.1:40000", true},  // a listener's exact address
		{"[::1]:80", "[::1]:41000", true},            // IPv6 wildcard
		{"127.0.0.1:40000", "127.0.0.1:5432", false}, // the client end, over loopback
		{"10.0.0.1:50000", "10.0.0.9:443", false},    // an outbound connection
		// The listener has closed: the ports tell.
		{"10.0.0.1:8080", "10.0.0.9:51000", true},
		{"10.0.0.1:51000", "10.0.0.9:8080", false},
		{"10.0.0.1:40001", "10.0.0.9:40002", false}, // both ephemeral: not accepted
	}
	for _, tt := range tests {
		if got := accepted(listeners, eph, ap(tt.local), ap(tt.remote)); got != tt.want {
			t.Errorf("accepted(%s, %s) = %v, want %v", tt.local, tt.remote, got, tt.want)
		}
	}
}
