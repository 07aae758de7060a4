// Package top is `tuxscope top`: a full-screen, refreshing view of the
// summary aggregation, built on Bubble Tea.
package top

import (
	"fmt"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/summary"
)

// Feed is the pipeline.Sink the pipeline writes into, from its own
// goroutine, while the view reads it. It writes nothing itself: the view
// draws on its own schedule.
type Feed struct {
	mu  sync.Mutex
	by  summary.GroupBy
	agg *summary.Aggregator
}

// NewFeed starts an empty aggregation, grouped by by.
func NewFeed(by summary.GroupBy) *Feed { return &Feed{by: by, agg: summary.New(time.Now(), by)} }

func (f *Feed) Start() error { return nil }

func (f *Feed) Event(e *event.Event) error {
	f.mu.Lock()
	f.agg.Add(e)
	f.mu.Unlock()
	return nil
}

func (f *Feed) Lost(n uint64, why event.LossReason, _ time.Time) error {
	if why.DNS() || why.TLS() {
		return nil // DNS messages or server names, not events
	}
	f.mu.Lock()
	f.agg.AddLost(n)
	f.mu.Unlock()
	return nil
}

func (f *Feed) Tick(time.Time) error { return nil }
func (f *Feed) Flush() error         { return nil }
func (f *Feed) Finish() error        { return nil }

// StillOpen is not shown: the live view has closed by then.
func (f *Feed) StillOpen(event.OpenCount, time.Time) error { return nil }

func (f *Feed) clear() {
	f.mu.Lock()
	f.agg = f.agg.Next(time.Now())
	f.mu.Unlock()
}

type tickMsg time.Time

// Model is the Bubble Tea model of the view.
type Model struct {
	feed     *Feed
	interval time.Duration
	sort     summary.SortBy
	filter   string
	editing  bool
	input    string
	width    int
	height   int
	now      time.Time
}

// NewModel shows feed, refreshed every interval, sorted by sort.
func NewModel(feed *Feed, interval time.Duration, sort summary.SortBy) Model {
	return Model{feed: feed, interval: interval, sort: sort, width: 120, height: 30, now: time.Now()}
}

func (m Model) tick() tea.Cmd {
	return tea.Tick(m.interval, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Init starts the refresh ticks.
func (m Model) Init() tea.Cmd { return m.tick() }

// Update handles keys, resizes and refresh ticks.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tickMsg:
		m.now = time.Time(msg)
		return m, m.tick()
	case tea.KeyMsg:
		if m.editing {
			switch msg.Type {
			case tea.KeyEnter:
				m.filter, m.editing = m.input, false
			case tea.KeyEsc:
				m.filter, m.input, m.editing = "", "", false
			case tea.KeyBackspace:
				if r := []rune(m.input); len(r) > 0 {
					m.input = string(r[:len(r)-1])
				}
			case tea.KeyCtrlC:
				return m, tea.Quit
			case tea.KeyRunes, tea.KeySpace:
				m.input += string(msg.Runes)
			}
			return m, nil
		}
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case "s":
			m.sort = m.sort.Next()
		case "c":
			m.feed.clear()
		case "/":
			m.editing, m.input = true, m.filter
		}
		m.now = time.Now()
	}
	return m, nil
}

// View draws the header, the key help and as many rows as fit.
func (m Model) View() string {
	m.feed.mu.Lock()
	procs := m.feed.agg.Groups(m.sort, 0)
	since, lost := m.feed.agg.Since(), m.feed.agg.Lost()
	var rows []string
	nproc := 0
	for _, p := range procs {
		shown := false
		for _, r := range p.Rows {
			if r.Matches(m.filter) {
				rows = append(rows, summary.FormatLiveRow(r))
				shown = true
			}
		}
		if shown {
			nproc++
		}
	}
	m.feed.mu.Unlock()

	var b strings.Builder
	fmt.Fprintf(&b, "tuxscope top - %d %s, %d peers, sorted by %s, since %s (%s), %d events lost\n",
		nproc, m.feed.by.Plural(), len(rows), m.sort, since.Format("15:04:05"), m.now.Sub(since).Round(time.Second), lost)
	switch {
	case m.editing:
		fmt.Fprintf(&b, "filter: %s_   (Enter apply, Esc clear)\n", m.input)
	case m.filter != "":
		fmt.Fprintf(&b, "filter %q   keys: s sort  / filter  c clear  q quit\n", m.filter)
	default:
		b.WriteString("keys: s sort  / filter  c clear  q quit\n")
	}
	b.WriteString(clip(strings.TrimSuffix(summary.LiveHeader(m.feed.by), "\n"), m.width))
	b.WriteByte('\n')
	room := m.height - 4
	for i, r := range rows {
		if i >= room {
			fmt.Fprintf(&b, "... %d more", len(rows)-i)
			break
		}
		b.WriteString(clip(r, m.width))
		b.WriteByte('\n')
	}
	return b.String()
}

func clip(s string, width int) string {
	if r := []rune(s); width > 0 && len(r) > width {
		return string(r[:width])
	}
	return s
}
