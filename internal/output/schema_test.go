package output

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
	"github.com/tuxscope/tuxscope/internal/schema"
)

// strictDecode decodes one JSON line into the schema, refusing keys the
// schema does not declare.
func strictDecode(t *testing.T, line string) schema.Event {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	d.DisallowUnknownFields()
	var e schema.Event
	if err := d.Decode(&e); err != nil {
		t.Fatalf("%s: not in the schema: %v", line, err)
	}
	return e
}

// Every shape of line the JSON sink writes is declared by the schema, and
// reads back with the event's own values.
func TestJSONLinesFollowTheSchema(t *testing.T) {
	dnsEvent := v4Connect()
	dnsEvent.Type = event.DNS
	dnsEvent.LatencyNs = 5000
	dnsEvent.DNSInfo = &event.DNSInfo{Name: "svc.example", QType: "A", RCode: "NOERROR", Answers: []string{"198.51.100.7"}, CNAMEs: []string{"edge.example"}, TTL: 60}
	named := v4Connect()
	named.Hostname, named.HostnameSource, named.HostnameAlso = "svc.example", "host", []string{"other.example"}
	existing := v6Accept()
	existing.Type, existing.State = event.Existing, 1
	contained, unit := v4Connect(), v6Accept()
	contained.Cgroup, contained.ContainerID, contained.Runtime, contained.PodUID = "/kubepods/pod5a1b2c3d-4e5f-6789-abcd-ef0123456789/"+strings.Repeat("ab", 32), strings.Repeat("ab", 32), "containerd", "5a1b2c3d-4e5f-6789-abcd-ef0123456789"
	unit.Cgroup, unit.Runtime, unit.ContainerName = "/system.slice/nginx.service", "systemd", "nginx.service"
	contained.Pod, contained.Namespace, contained.ContainerName = "web-7d4b9", "shop", "nginx"
	events := []*event.Event{v4Connect(), v6Accept(), v4MappedAccept(), dnsEvent, named, existing, contained, unit}
	for _, c := range lifecycleCases() {
		events = append(events, c.e)
	}
	for _, e := range events {
		line := jsonLine(t, e)
		got := strictDecode(t, line)
		if got.EventType != e.Type.String() || got.TimestampNs != e.TimestampNs || got.PID != int(e.PID) ||
			got.TID != int(e.TID) || got.UID != int(e.UID) || got.Comm != string(e.Comm()) || got.Family != int(e.Family) ||
			got.Direction != e.Direction() {
			t.Errorf("%s: read back as %v", line, got)
		}
		src, dst := e.Src(), e.Dst()
		if got.Saddr != src.Addr().String() || got.Sport != int(src.Port()) || got.Daddr != dst.Addr().String() || got.Dport != int(dst.Port()) {
			t.Errorf("%s: endpoints read back as %s:%d -> %s:%d", line, got.Saddr, got.Sport, got.Daddr, got.Dport)
		}
		if got.Hostname != e.Hostname || got.HostnameSource != e.HostnameSource || !reflect.DeepEqual(got.HostnameAlso, e.HostnameAlso) {
			t.Errorf("%s: hostname read back as %q %q %q", line, got.Hostname, got.HostnameSource, got.HostnameAlso)
		}
		if got.Cgroup != e.Cgroup || got.ContainerID != e.ContainerID || got.Runtime != e.Runtime || got.PodUID != e.PodUID || got.Container != e.ContainerName || got.Pod != e.Pod || got.Namespace != e.Namespace {
			t.Errorf("%s: container read back as %q %q %q %q %q %q %q", line, got.Cgroup, got.ContainerID, got.Runtime, got.PodUID, got.Container, got.Pod, got.Namespace)
		}
		if e.Type == event.Close && (got.BytesSent == nil || *got.BytesSent != e.BytesSent || got.BytesReceived == nil || *got.BytesReceived != e.BytesReceived) {
			t.Errorf("%s: bytes read back as %v %v", line, got.BytesSent, got.BytesReceived)
		}
		if e.Type == event.Update && (got.State == "" || got.BytesSent == nil || *got.BytesSent != e.BytesSent ||
			got.PeriodNs == nil || *got.PeriodNs != e.PeriodNs || got.PeriodBytesSent == nil || *got.PeriodBytesSent != e.PeriodBytesSent ||
			got.PeriodBytesReceived == nil || *got.PeriodBytesReceived != e.PeriodBytesReceived ||
			got.SendBytesPerS == nil || *got.SendBytesPerS != e.SendRate() || got.ReceiveBytesPerS == nil || *got.ReceiveBytesPerS != e.ReceiveRate() ||
			got.SRTTUs == nil || *got.SRTTUs != e.SRTTUs || got.RTTVarUs == nil || *got.RTTVarUs != e.RTTVarUs ||
			got.RetransSegs == nil || *got.RetransSegs != e.RetransSegs || got.PeriodRetrans == nil || *got.PeriodRetrans != e.PeriodRetrans) {
			t.Errorf("%s: update read back as %+v", line, got)
		}
		if d := e.DNSInfo; d != nil && (got.Query != d.Name || got.QType != d.QType || got.RCode != d.RCode ||
			!reflect.DeepEqual(got.Answers, d.Answers) || !reflect.DeepEqual(got.CNAMEs, d.CNAMEs) || got.TTL == nil || *got.TTL != d.TTL) {
			t.Errorf("%s: DNS answer read back as %v", line, got)
		}
	}
	// Lost records too.
	var out bytes.Buffer
	s := New(FormatJSON, &out, nil)
	if err := s.Lost(7, event.HookSkipped, fixedTime); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := strictDecode(t, out.String()); got.EventType != "lost" || got.Count != 7 || got.Reason != "hook_skipped" {
		t.Errorf("lost record read back as %v", got)
	}
	// And what the DNS tracker dropped, a record type of its own.
	for why, key := range map[event.LossReason]string{event.DNSMalformed: "malformed", event.DNSUnsolicited: "unsolicited", event.DNSEvicted: "evicted", event.HostsSkipped: "hosts_skipped", event.HostsEvicted: "hosts_evicted"} {
		out.Reset()
		s := New(FormatJSON, &out, nil)
		if err := s.Lost(3, why, fixedTime); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := strictDecode(t, out.String()); got.EventType != "dns_dropped" || got.Count != 3 || got.Reason != key {
			t.Errorf("DNS drop record read back as %v", got)
		}
	}
}
