package tracer

import "testing"

// The port filter is a bitmap the BPF side reads as bit port%32 of word
// port/32 (common.bpf.h's port_selected): every selected port's bit set,
// no other.
func TestPortBitmap(t *testing.T) {
	ports := []uint16{0, 31, 32, 443, 8080, 65535}
	words := portBitmap(ports)
	if len(words) != 2048 {
		t.Fatalf("%d words, want 2048 (65536 ports)", len(words))
	}
	want := map[uint16]bool{}
	for _, p := range ports {
		want[p] = true
	}
	for p := 0; p < 65536; p++ {
		got := words[p>>5]&(1<<(p&31)) != 0
		if got != want[uint16(p)] {
			t.Errorf("port %d: selected %v, want %v", p, got, want[uint16(p)])
		}
	}
	if n := len(portBitmap(nil)); n != 2048 {
		t.Errorf("no ports: %d words", n)
	}
}
