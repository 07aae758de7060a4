package top

import (
	"net/netip"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/summary"
)

const (
	idA = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
)

// feed gives f n connects of pid (named comm) in container id (none: "")
// to remote.
func feed(f *Feed, n int, pid uint32, comm, id, remote string) {
	e := &event.Event{Type: event.Connect, Family: 4, PID: pid, TID: pid, ContainerID: id,
		Local: netip.MustParseAddrPort("198.51.100.200:40000"), Remote: netip.MustParseAddrPort(remote)}
	if id != "" {
		e.Runtime = "docker"
	}
	e.SetComm(comm)
	for range n {
		f.Event(e)
	}
}

// rows are the view's table rows: the lines after the header, by their
// first field(s) up to the direction.
func rows(view string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(view, "\n")
	for _, l := range lines[3:] {
		f := strings.Fields(l)
		for i, w := range f {
			if w == "out" || w == "in" {
				out[strings.Join(f[:i], " ")] = strings.Join(f[i:], " ")
				break
			}
		}
	}
	return out
}

func keys(m tea.Model, ks ...string) tea.Model {
	for _, k := range ks {
		switch k {
		case "enter":
			m, _ = m.Update(tea.KeyMsg{Type: tea.KeyEnter})
		default:
			m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)})
		}
	}
	return m
}

// top --by container: the first column is the container, two processes
// of one container one row, the host's one row; the filter works on the
// container.
func TestViewByContainer(t *testing.T) {
	f := NewFeed(summary.GroupContainer)
	feed(f, 3, 100, "curl", idA, "198.51.100.1:443")
	feed(f, 2, 101, "wget", idA, "198.51.100.1:443")
	feed(f, 4, 200, "curl", idB, "198.51.100.1:443")
	feed(f, 1, 300, "ssh", "", "198.51.100.2:22")
	m := tea.Model(NewModel(f, 0, summary.ByConnections))
	view := m.View()
	lines := strings.Split(view, "\n")
	if !strings.HasPrefix(lines[0], "tuxscope top - 3 containers, 3 peers, sorted by connections") {
		t.Errorf("title %q", lines[0])
	}
	if !strings.HasPrefix(lines[2], "CONTAINER                 DIR  PEER") {
		t.Errorf("header %q", lines[2])
	}
	want := map[string]string{
		"aaaaaaaaaaaa": "out 198.51.100.1:443 0B/s 0B/s 0 5 0 0",
		"bbbbbbbbbbbb": "out 198.51.100.1:443 0B/s 0B/s 0 4 0 0",
		"host":         "out 198.51.100.2:22 0B/s 0B/s 0 1 0 0",
	}
	if got := rows(view); len(got) != len(want) || got["aaaaaaaaaaaa"] != want["aaaaaaaaaaaa"] || got["bbbbbbbbbbbb"] != want["bbbbbbbbbbbb"] || got["host"] != want["host"] {
		t.Errorf("rows %q, want %q\n%s", got, want, view)
	}
	// The filter matches a container's id, not the processes' names.
	m = keys(m, "/", "bbbb", "enter")
	if got := rows(m.View()); len(got) != 1 || got["bbbbbbbbbbbb"] == "" {
		t.Errorf("filtered by bbbb: %q\n%s", got, m.View())
	}
	m = keys(m, "/")
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyEsc})
	m = keys(m, "/", "wget", "enter")
	if got := rows(m.View()); len(got) != 0 {
		t.Errorf("filtered by a process name: %q", got)
	}
	// Clearing keeps the grouping.
	m = keys(m, "c")
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyEsc})
	feed(f, 1, 100, "curl", idA, "198.51.100.1:443")
	m = keys(m, "/")
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyEsc})
	if got := rows(m.View()); len(got) != 1 || got["aaaaaaaaaaaa"] != "out 198.51.100.1:443 0B/s 0B/s 0 1 0 0" {
		t.Errorf("after clearing: %q\n%s", got, m.View())
	}
}

// top --by comm: processes of one name are one row.
func TestViewByComm(t *testing.T) {
	f := NewFeed(summary.GroupComm)
	feed(f, 3, 100, "curl", idA, "198.51.100.1:443")
	feed(f, 4, 200, "curl", "", "198.51.100.1:443")
	feed(f, 1, 300, "ssh", "", "198.51.100.2:22")
	view := NewModel(f, 0, summary.ByConnections).View()
	if got := rows(view); len(got) != 2 || got["curl"] != "out 198.51.100.1:443 0B/s 0B/s 0 7 0 0" || got["ssh"] == "" {
		t.Errorf("rows %q\n%s", got, view)
	}
	if !strings.Contains(view, "tuxscope top - 2 commands, 2 peers") || !strings.Contains(view, "\nCOMM                      DIR") {
		t.Errorf("view:\n%s", view)
	}
}

// update gives f an update of pid's connection cookie to remote: its
// rates over a second, retransmits in the period and srtt.
func update(f *Feed, atSec uint64, pid uint32, comm string, cookie uint64, remote string, sent, received uint64, retrans uint32) {
	e := &event.Event{Type: event.Update, Family: 4, PID: pid, TID: pid, Cookie: cookie, State: 1,
		Local: netip.MustParseAddrPort("198.51.100.200:40000"), Remote: netip.MustParseAddrPort(remote),
		TimestampNs: atSec * 1e9, PeriodNs: 1e9, PeriodBytesSent: sent, PeriodBytesReceived: received,
		PeriodRetrans: retrans, RetransSegs: retrans, SRTTUs: 2000}
	e.SetComm(comm)
	f.Event(e)
}

// Live rates: each row sums its open connections' latest updates; a
// close takes its connection's rate away; r sorts by rate, retrans by
// retransmits; s cycles through both.
func TestViewLiveRates(t *testing.T) {
	f := NewFeed(summary.GroupProcess)
	update(f, 10, 100, "curl", 1, "198.51.100.1:443", 1_000_000, 2_000, 0)
	update(f, 10, 100, "curl", 2, "198.51.100.1:443", 500_000, 0, 0)
	update(f, 10, 200, "wget", 3, "198.51.100.2:80", 20_000, 3_400_000, 7)
	m := tea.Model(NewModel(f, 0, summary.ByConnections))
	m, _ = m.Update(tea.WindowSizeMsg{Width: 200, Height: 30})
	view := m.View()
	if !strings.Contains(view, "SEND/s     RECV/s     RETR  CONNS") {
		t.Errorf("no live columns:\n%s", view)
	}
	got := rows(view)
	if got["100 curl"] != "out 198.51.100.1:443 1.50MB/s 2.00kB/s 0 0 0 0 0 -/- -/- 2.00ms/2.00ms/2.00ms" ||
		got["200 wget"] != "out 198.51.100.2:80 20.0kB/s 3.40MB/s 7 0 0 0 0 -/- -/- 2.00ms/2.00ms/2.00ms" {
		t.Errorf("rows %q\n%s", got, view)
	}
	order := func(view string) string {
		var pids []string
		for _, l := range strings.Split(view, "\n")[3:] {
			if f := strings.Fields(l); len(f) > 0 {
				pids = append(pids, f[0])
			}
		}
		return strings.Join(pids, " ")
	}
	m = keys(m, "s", "s", "s") // connections -> bytes -> failures -> rate
	if v := m.View(); !strings.Contains(v, "sorted by rate") || order(v) != "200 100" {
		t.Errorf("by rate: %q\n%s", order(v), v)
	}
	update(f, 11, 100, "curl", 1, "198.51.100.1:443", 9_000_000, 0, 9)
	m = keys(m, "s") // retrans
	if v := m.View(); !strings.Contains(v, "sorted by retrans") || order(v) != "100 200" {
		t.Errorf("by retrans: %q\n%s", order(v), v)
	}
	// curl's first connection closes: its rate goes, its retransmits stay.
	c := &event.Event{Type: event.Close, Family: 4, PID: 100, TID: 100, Cookie: 1, RetransSegs: 10,
		Local: netip.MustParseAddrPort("198.51.100.200:40000"), Remote: netip.MustParseAddrPort("198.51.100.1:443")}
	c.SetComm("curl")
	f.Event(c)
	if got := rows(m.View())["100 curl"]; !strings.HasPrefix(got, "out 198.51.100.1:443 500kB/s 0B/s 10 ") {
		t.Errorf("after the close: %q\n%s", got, m.View())
	}
	// A connection no update names for two periods is gone.
	update(f, 14, 200, "wget", 3, "198.51.100.2:80", 1_000, 1_000, 0)
	if got := rows(m.View())["100 curl"]; !strings.HasPrefix(got, "out 198.51.100.1:443 0B/s 0B/s 10 ") {
		t.Errorf("stale connection still counted: %q\n%s", got, m.View())
	}
}
