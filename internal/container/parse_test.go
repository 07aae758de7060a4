package container

import (
	"strings"
	"testing"
)

const (
	id  = "3f4c0a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab"
	uid = "5a1b2c3d-4e5f-6789-abcd-ef0123456789"
)

func TestParse(t *testing.T) {
	uidU := strings.ReplaceAll(uid, "-", "_")
	for _, tc := range []struct {
		path string
		want Info
	}{
		// Docker, systemd cgroup driver (v2, or name=systemd on v1).
		{"/system.slice/docker-" + id + ".scope", Info{ContainerID: id, Runtime: Docker}},
		// Docker, cgroupfs driver (v1 controllers, or v2 without systemd).
		{"/docker/" + id, Info{ContainerID: id, Runtime: Docker}},
		// Nested below the container's scope (systemd in the container).
		{"/system.slice/docker-" + id + ".scope/init.scope", Info{ContainerID: id, Runtime: Docker}},
		// containerd outside Kubernetes (nerdctl, systemd driver).
		{"/system.slice/cri-containerd-" + id + ".scope", Info{ContainerID: id, Runtime: Containerd}},
		// Kubernetes, systemd driver, each QoS class.
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id + ".scope", Info{ContainerID: id, Runtime: Containerd, PodUID: uid}},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id + ".scope", Info{ContainerID: id, Runtime: Containerd, PodUID: uid}},
		{"/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + id + ".scope", Info{ContainerID: id, Runtime: Containerd, PodUID: uid}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + id + ".scope", Info{ContainerID: id, Runtime: CRIO, PodUID: uid}},
		// The pod's sandbox cgroup alone: a pod, no container.
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice", Info{PodUID: uid}},
		// Kubernetes, cgroupfs driver.
		{"/kubepods/burstable/pod" + uid + "/" + id, Info{ContainerID: id, Runtime: Containerd, PodUID: uid}},
		{"/kubepods/besteffort/pod" + uid + "/" + id, Info{ContainerID: id, Runtime: Containerd, PodUID: uid}},
		{"/kubepods/pod" + uid + "/" + id, Info{ContainerID: id, Runtime: Containerd, PodUID: uid}},
		{"/kubepods/burstable/pod" + uid + "/crio-" + id, Info{ContainerID: id, Runtime: CRIO, PodUID: uid}},
		// A static pod's uid is a hash without dashes.
		{"/kubepods/pod0123456789abcdef0123456789abcdef/" + id, Info{ContainerID: id, Runtime: Containerd, PodUID: "0123456789abcdef0123456789abcdef"}},
		// Podman: systemd driver (root and rootless), cgroupfs driver.
		{"/machine.slice/libpod-" + id + ".scope", Info{ContainerID: id, Runtime: Podman}},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope/container", Info{ContainerID: id, Runtime: Podman}},
		{"/libpod_parent/libpod-" + id, Info{ContainerID: id, Runtime: Podman}},
		// conmon's scopes are not the container.
		{"/machine.slice/libpod-conmon-" + id + ".scope", Info{}},
		{"/system.slice/crio-conmon-" + id + ".scope", Info{}},
		// Plain service units.
		{"/system.slice/nginx.service", Info{Runtime: Systemd, Name: "nginx.service"}},
		{"/system.slice/docker.service", Info{Runtime: Systemd, Name: "docker.service"}},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", Info{Runtime: Systemd, Name: "foo.service"}},
		// Nothing to tell.
		{"/", Info{}},
		{"/user.slice/user-1000.slice/session-2.scope", Info{}},
		{"/process_api/541dd1304580de1bcc6815a975e3a5cf", Info{}},
		{"/docker/" + id[:63], Info{}},                     // too short
		{"/docker/" + strings.ToUpper(id), Info{}},         // not as runtimes write it
		{"/system.slice/docker-" + id + "0.scope", Info{}}, // too long
		{"/pod" + uid + "/" + id, Info{}},                  // no kubepods above
		{"/kubepods/burstable/podnot-a-uid/" + id, Info{}}, // no uid
		{"/kubepods.slice/kubepods-podxyz.slice", Info{}},  // no uid
		{"/system.slice/.service", Info{}},                 // no unit name
	} {
		got := Parse(tc.path)
		want := tc.want
		if tc.path != "" {
			want.Cgroup = tc.path
		}
		if got != want {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.path, got, want)
		}
	}
	for _, bad := range []string{"", "system.slice/docker-" + id + ".scope", "/" + strings.Repeat("a/", MaxPath)} {
		if got := Parse(bad); got != (Info{}) {
			t.Errorf("Parse(%.40q) = %+v, want nothing", bad, got)
		}
	}
}

func TestProcCgroup(t *testing.T) {
	for _, tc := range []struct{ in, v2, v1 string }{
		// Hybrid host (this one): the v2 path is the root; memory tells.
		{"9:name=systemd:/\n8:pids:/\n4:memory:/process_api/541d\n1:cpu:/\n0::/\n", "/", "/process_api/541d"},
		// Hybrid, Docker with the systemd driver: name=systemd first.
		{"12:pids:/system.slice/docker-" + id + ".scope\n4:memory:/system.slice/docker-" + id + ".scope\n1:name=systemd:/system.slice/docker-" + id + ".scope\n0::/system.slice/docker-" + id + ".scope\n", "/system.slice/docker-" + id + ".scope", "/system.slice/docker-" + id + ".scope"},
		// Pure v1 with cgroupfs Docker: no 0:: line.
		{"11:cpu,cpuacct:/docker/" + id + "\n5:memory:/docker/" + id + "\n", "", "/docker/" + id},
		// Pure v2.
		{"0::/system.slice/nginx.service\n", "/system.slice/nginx.service", ""},
		// A path with a colon; malformed lines are skipped.
		{"0::/a:b\ngarbage\n3:x\n2:memory:relative\n", "/a:b", ""},
		{"", "", ""},
	} {
		v2, v1 := ProcCgroup([]byte(tc.in))
		if v2 != tc.v2 || v1 != tc.v1 {
			t.Errorf("ProcCgroup(%q) = %q, %q; want %q, %q", tc.in, v2, v1, tc.v2, tc.v1)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id + ".scope")
	f.Add("/kubepods/burstable/pod" + uid + "/" + id)
	f.Add("/docker/" + id)
	f.Add("/system.slice/nginx.service")
	f.Add("0::/a\n1:name=systemd:/b\n")
	f.Fuzz(func(t *testing.T, s string) {
		in := Parse(s)
		if in.ContainerID != "" && (!isID(in.ContainerID) || in.Runtime == "" || !strings.Contains(s, in.ContainerID)) {
			t.Fatalf("Parse(%q) = %+v", s, in)
		}
		if in.PodUID != "" && !isUID(in.PodUID) {
			t.Fatalf("Parse(%q) = %+v", s, in)
		}
		if in.Cgroup != "" && in.Cgroup != s {
			t.Fatalf("Parse(%q) = %+v", s, in)
		}
		v2, v1 := ProcCgroup([]byte(s))
		if len(v2) > MaxPath || len(v1) > MaxPath || v2 != "" && v2[0] != '/' || v1 != "" && v1[0] != '/' {
			t.Fatalf("ProcCgroup(%q) = %q, %q", s, v2, v1)
		}
	})
}
