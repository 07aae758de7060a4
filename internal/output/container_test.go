package output

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/event"
)

// --containers: a CONTAINER column after COMM with the short id, the unit
// name (escaped), or -; without it the table is as before.
func TestTableContainerColumn(t *testing.T) {
	id := strings.Repeat("3f4c0a1b", 8)
	docker, unit, none, hostile := v4Connect(), v4Connect(), v4Connect(), v4Connect()
	docker.ContainerID, docker.Runtime = id, "docker"
	unit.ContainerName, unit.Runtime = "nginx.service", "systemd"
	hostile.ContainerName = "a\x1b[2Jb.service"
	var out bytes.Buffer
	s := New(FormatTable, &out, nil).(*Table)
	s.Containers = true
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*event.Event{docker, unit, none, hostile} {
		if err := s.Event(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "PID      COMM             CONTAINER        TYPE        SRC                      DST                      DETAIL\n" +
		"6201     curl             3f4c0a1b3f4c     connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             nginx.service    connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             -                connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             a\\x1b[2Jb.service connect     10.0.0.5:53412           93.184.216.34:443\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}

	// Kubernetes: pod/container when the CRI runtime named them; a /
	// in a name is escaped (the one / separates), control bytes too, and
	// past 40 columns the text is cut and ends in "...".
	pod := func(p, c, id string) *event.Event {
		e := v4Connect()
		e.ContainerID, e.Runtime, e.PodUID, e.Pod, e.Namespace, e.ContainerName = id, "containerd", "5a1b2c3d-4e5f-6789-abcd-ef0123456789", p, "shop", c
		return e
	}
	out.Reset()
	for _, e := range []*event.Event{
		pod("web-7d4b9", "nginx", id),
		pod("web-7d4b9", "", id),   // a container the runtime did not name
		pod("web-7d4b9", "", ""),   // the pod's uid alone
		pod("a/b", "c\x1b[2J", id), // hostile names
		pod(strings.Repeat("p", 30), strings.Repeat("c", 20), id),
		pod(strings.Repeat("é", 50), "x", id),
	} {
		if err := s.Event(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want = "6201     curl             web-7d4b9/nginx  connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             web-7d4b9/3f4c0a1b3f4c connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             web-7d4b9/-      connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             a\\x2fb/c\\x1b[2J  connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             " + strings.Repeat("p", 30) + "/cccccc... connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             " + strings.Repeat("é", 37) + "... connect     10.0.0.5:53412           93.184.216.34:443\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	// Without --containers: no column until the first event from a
	// container or pod (a systemd unit is not one); then a new header.
	out.Reset()
	s = New(FormatTable, &out, nil).(*Table)
	_ = s.Start()
	inPod := v4Connect()
	inPod.PodUID = "5a1b2c3d-4e5f-6789-abcd-ef0123456789"
	for _, e := range []*event.Event{none, unit, docker, none, inPod} {
		if err := s.Event(e); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Flush()
	want = tableHeader +
		"6201     curl             connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"PID      COMM             CONTAINER        TYPE        SRC                      DST                      DETAIL\n" +
		"6201     curl             3f4c0a1b3f4c     connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             -                connect     10.0.0.5:53412           93.184.216.34:443\n" +
		"6201     curl             -                connect     10.0.0.5:53412           93.184.216.34:443\n"
	if out.String() != want {
		t.Errorf("without --containers, got\n%s\nwant\n%s", out.String(), want)
	}
}
