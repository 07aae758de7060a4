package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A process can name itself anything: escape sequences, newlines, invalid
// UTF-8. The table must escape it; every JSON line must stay valid JSON.
func TestHostileProcessName(t *testing.T) {
	requireRoot(t)
	const name = "\x1b[31mev\nil\xff" // 12 bytes, within comm's 15
	srv, port := server(t, "-n", "2")
	tr := startTracer(t)
	c := client(t, "-name", name, "-addr", fmt.Sprintf("127.0.0.1:%d", port))
	c.expect("LOCAL")
	srv.expect("ACCEPTED")
	ev := tr.waitFor("connect", byPID("connect", c.pid()))
	if want := strings.ToValidUTF8(name, "\uFFFD"); ev.Comm != want {
		t.Errorf("JSON comm %q, want %q", ev.Comm, want)
	}
	for _, line := range tr.rawLines() {
		if !json.Valid([]byte(line)) {
			t.Errorf("invalid JSON line %q", line)
		}
	}

	out := runTable(t, func() {
		client(t, "-name", name, "-addr", fmt.Sprintf("127.0.0.1:%d", port)).expect("LOCAL")
	}, func(out string) bool { return strings.Contains(out, "connect") }, "--type", "connect", "--port", fmt.Sprint(port))
	want := `\x1b[31mev\x0ail\xff`
	if !strings.Contains(out, want) {
		t.Errorf("table does not show the escaped name %s:\n%s", want, out)
	}
	for _, b := range []byte(out) {
		if (b < 0x20 && b != '\n') || b == 0x7f {
			t.Errorf("table output holds control byte %#x:\n%q", b, out)
			break
		}
	}
}
