// Package metrics is `tuxscope serve`'s aggregation: a pipeline sink that
// counts connections, failures, bytes, latencies and DNS responses per
// label set in memory, without formatting events, and a Prometheus
// collector that turns those counts into const metrics at scrape time.
// Cardinality is bounded: the labels are selectable, a process's peers
// beyond the busiest --peers fold into peer="other", label sets beyond
// --max-series fold into one all-"other" set, and label sets not updated
// for --series-ttl are dropped. Plain Go, tested without root.
package metrics

import (
	"fmt"
	"strings"
)

// Label is one of the labels --labels can select.
type Label uint8

const (
	LabelComm Label = iota
	LabelContainer
	LabelPod
	LabelNamespace
	LabelPeer
	numLabels
)

var labelNames = [numLabels]string{"comm", "container", "pod", "namespace", "peer"}

func (l Label) String() string { return labelNames[l] }

// Labels is a set of Label.
type Labels uint8

// AllLabels is every selectable label: --labels' default.
const AllLabels Labels = 1<<numLabels - 1

// Has reports whether l is in the set.
func (s Labels) Has(l Label) bool { return s&(1<<l) != 0 }

// String is the set as --labels takes it, e.g. "comm,peer".
func (s Labels) String() string {
	var names []string
	for l := Label(0); l < numLabels; l++ {
		if s.Has(l) {
			names = append(names, l.String())
		}
	}
	return strings.Join(names, ",")
}

// ParseLabels reads a comma list of label names ("comm,container,peer");
// "" or "none" selects none (only direction, reason, rcode remain).
func ParseLabels(v string) (Labels, error) {
	var s Labels
	if v == "" || v == "none" {
		return 0, nil
	}
next:
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		for l := Label(0); l < numLabels; l++ {
			if name == labelNames[l] {
				s |= 1 << l
				continue next
			}
		}
		return 0, fmt.Errorf("unknown label %q (want some of %s, or none)", name, strings.Join(labelNames[:], ","))
	}
	return s, nil
}
