package container

import (
	"slices"
	"strings"
	"testing"
)

func TestV1Hierarchies(t *testing.T) {
	mountinfo := `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:31 /sub /mnt/memsub rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	got := V1Hierarchies(strings.NewReader(mountinfo))
	want := []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct"}
	if !slices.Equal(got, want) {
		t.Errorf("V1Hierarchies = %q, want %q", got, want)
	}
	if got := V1Hierarchies(strings.NewReader("40 30 0:37 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")); len(got) != 0 {
		t.Errorf("v2-only host: %q", got)
	}
}
