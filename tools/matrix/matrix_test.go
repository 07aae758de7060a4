package main

import (
	"bytes"
	"debug/elf"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEvaluate(t *testing.T) {
	out := strings.Split(`=== RUN   TestA
--- PASS: TestA (0.10s)
=== RUN   TestB
=== RUN   TestB/sub
    b_test.go:12: boom
    --- FAIL: TestB/sub (0.00s)
--- FAIL: TestB (0.01s)
=== RUN   TestC
    c_test.go:3: needs curl
--- SKIP: TestC (0.00s)
[   12.345] some kernel message --- PASS: TestD (1.00s)
FAIL`, "\n")
	c := evaluate(out, 1)
	if c.State != stateFail || c.Text != "FAIL (TestB)" || c.Passed != 2 || c.Skipped != 1 {
		t.Errorf("got %+v", c)
	}
	if !reflect.DeepEqual(c.Skips, []string{"TestC: needs curl"}) {
		t.Errorf("skips %q", c.Skips)
	}

	if got := failureExcerpt(out, c.FailedTests, 10); len(got) != 5 || got[0] != "=== RUN   TestB" || !strings.Contains(got[4], "--- FAIL: TestB ") {
		t.Errorf("excerpt %q", got)
	}
	c = evaluate(out[:2], 0)
	if c.State != statePass || c.Text != "pass (1/1)" {
		t.Errorf("got %+v", c)
	}
	c = evaluate(append(out[:2:2], out[7:10]...), 0)
	if c.Text != "pass (1/1, 1 skipped)" {
		t.Errorf("got %q", c.Text)
	}
	c = evaluate(out[7:10], 0)
	if c.State != stateUnsupported || c.Text != "unsupported: needs curl" {
		t.Errorf("all skipped: %+v", c)
	}
	c = evaluate([]string{"=== RUN   TestA", "panic: test timed out after 2m0s"}, 2)
	if c.Text != "FAIL (exit 2: panic: test timed out after 2m0s)" {
		t.Errorf("got %q", c.Text)
	}
	c = evaluate([]string{"testing: warning: no tests to run", "PASS"}, 0)
	if c.State != stateFail {
		t.Errorf("no tests: %+v", c)
	}
}

func TestDoctorUnsupported(t *testing.T) {
	doc := []byte(`{"kernel":"6.18","backends":[
	 {"backend":"fentry","points":[{"point":"connect","ok":false,"reason":"EPERM"},{"point":"accept","ok":false,"reason":"EPERM"}]},
	 {"backend":"kprobe","points":[{"point":"connect","ok":false,"reason":"no kprobes"},{"point":"accept","ok":true,"hooks":["x"]}]},
	 {"backend":"tracepoint","points":[{"point":"connect","ok":true,"hooks":["x"]},{"point":"accept","ok":true,"hooks":["y"]}]}],
	 "auto":[{"point":"connect","backend":"tracepoint"}]}`)
	for be, want := range map[string]string{
		"fentry":     "EPERM",
		"kprobe":     "connect: no kprobes",
		"tracepoint": "",
		"auto":       "",
	} {
		if got := doctorUnsupported(doc, be); got != want {
			t.Errorf("%s: %q, want %q", be, got, want)
		}
	}
	if got, want := doctorSummary(doc), "fentry no (EPERM), kprobe no (connect: no kprobes), tracepoint ok, auto: connect=tracepoint"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if got := doctorUnsupported([]byte("not json"), "fentry"); got != "" {
		t.Errorf("bad JSON: %q", got)
	}
}

func TestSplitDepends(t *testing.T) {
	got := splitDepends("linux-base-cloud-amd64 (= 7.2.13-1), dracut | initramfs-tools (>= 0.120), linux-image-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), kmod:any")
	want := []dep{{"linux-base-cloud-amd64", "7.2.13-1"}, {"dracut", ""}, {"linux-image-7.2.13+deb14-cloud-amd64", "7.2.13-1"}, {"kmod", ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q", got)
	}
	for name, follow := range map[string]bool{
		"linux-image-6.1.0-56-cloud-amd64": true, "linux-binary-7.2.13+deb14-cloud-amd64": true,
		"linux-modules-7.2.13+deb14-cloud-amd64": true, "linux-base-7.2.13+deb14-cloud-amd64": true,
		"linux-base": false, "kmod": false, "initramfs-tools": false,
	} {
		if depPackage.MatchString(name) != follow {
			t.Errorf("%s: follow=%v", name, !follow)
		}
	}
}

func TestCpio(t *testing.T) {
	var b bytes.Buffer
	c := newCpio(&b)
	c.file("usr/sbin/ip", 0o755, []byte("abc"))
	c.symlink("bin/sh", "busybox")
	c.chardev("dev/console", 0o600, 5, 1)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if b.Len()%4 != 0 || !strings.HasPrefix(s, "070701") || !strings.Contains(s, "TRAILER!!!") {
		t.Fatalf("not a newc archive: %q", s)
	}
	// Parents come first: usr, usr/sbin, then the file.
	for _, name := range []string{"usr\x00", "usr/sbin\x00", "usr/sbin/ip\x00", "bin\x00", "bin/sh\x00", "dev/console\x00"} {
		if !strings.Contains(s, name) {
			t.Errorf("no %q", name)
		}
	}
	if strings.Index(s, "usr/sbin\x00") > strings.Index(s, "usr/sbin/ip\x00") {
		t.Error("directory after its file")
	}
}

func TestGuestPlan(t *testing.T) {
	cfg := &config{backends: []string{"tracepoint", "fentry"}, run: "^(TestA|TestB)$"}
	plan := guestPlan(cfg, cfg.backends, 2*time.Minute)
	for _, want := range []string{
		`probe doctor '"$TUXSCOPE" doctor --format json'`,
		`runtest tracepoint 'env TUXSCOPE_BIN=/tuxscope TUXSCOPE_TEST_BACKEND=tracepoint /it.test -test.v -test.count=1 -test.timeout=2m0s '\''-test.run=^(TestA|TestB)$'\'''`,
		`runtest fentry '`,
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %s:\n%s", want, plan)
		}
	}
	if strings.Contains(plan, "-test.skip") {
		t.Errorf("a plan of other tests than the core ones skips some:\n%s", plan)
	}
	// The core set: the oncePerKernel tests (the doctor's, which tries
	// every backend itself, and those of what every backend shares) run
	// with the first backend only.
	cfg.run = coreTests
	plan = guestPlan(cfg, cfg.backends, 2*time.Minute)
	lines := strings.Split(strings.TrimSpace(plan), "\n")
	last := lines[len(lines)-2:]
	if strings.Contains(last[0], "-test.skip") || !strings.Contains(last[1], "-test.skip=^("+strings.Join(oncePerKernel, "|")+")$") ||
		!strings.Contains(last[1], "TestUDPFlows") {
		t.Errorf("core plan: want the oncePerKernel tests with tracepoint only:\n%s", plan)
	}
}

func TestKernelsHaveArchs(t *testing.T) {
	names := map[string]bool{"host": true}
	for _, k := range kernels {
		if findArch(k.Arch) == nil {
			t.Errorf("%s: unknown architecture %q", k.Name, k.Arch)
		}
		if names[k.Name] {
			t.Errorf("two kernels named %s", k.Name)
		}
		names[k.Name] = true
		for _, c := range k.Candidates {
			for _, p := range c.Packages {
				if !strings.HasSuffix(p, "-"+k.Arch) {
					t.Errorf("%s (%s): package %s is not for %s", k.Name, k.Arch, p, k.Arch)
				}
			}
		}
	}
	if findArch(hostArch) == nil {
		t.Errorf("no architecture for the host's %s", hostArch)
	}
}

func TestAptConfig(t *testing.T) {
	cfg := &config{cache: "/c", mirror: "http://deb.example/debian", secMirror: "http://deb.example/debian-security"}
	a := newApt(cfg, "arm64", []suite{bookworm, bookwormSecurity})
	if a.dir != "/c/apt/arm64/bookworm+bookworm-security" {
		t.Errorf("dir %s", a.dir)
	}
	opts := strings.Join(a.opts(), " ")
	for _, want := range []string{
		"-o APT::Architecture=arm64", "-o APT::Architectures=arm64",
		"-o Dir::Etc::sourcelist=/c/apt/arm64/bookworm+bookworm-security/sources.list",
		"-o Dir::State::Lists=/c/apt/arm64/bookworm+bookworm-security/lists",
		"-o Dir::Cache=/c/apt/arm64/bookworm+bookworm-security/cache",
		"-o Dir::State::status=/dev/null",
	} {
		if !strings.Contains(opts, want) {
			t.Errorf("options lack %s: %s", want, opts)
		}
	}
	want := "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian bookworm main\n" +
		"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian-security bookworm-security main\n"
	if got := a.sourcesList(); got != want {
		t.Errorf("sources.list:\n%s\nwant\n%s", got, want)
	}
	// The host architecture's lists are apart from arm64's.
	if b := newApt(cfg, "amd64", []suite{bookworm, bookwormSecurity}); b.dir == a.dir {
		t.Errorf("amd64 and arm64 share %s", a.dir)
	}
}

func TestDebFile(t *testing.T) {
	for _, tc := range []struct {
		f    map[string]string
		want string
	}{
		{map[string]string{"Package": "busybox-static", "Version": "1:1.35.0-4+deb12u1+b1", "Architecture": "arm64",
			"Filename": "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_arm64.deb"}, "busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb"},
		{map[string]string{"Package": "libtirpc-common", "Version": "1.3.3+ds-1", "Architecture": "all"}, "libtirpc-common_1.3.3+ds-1_all.deb"},
		{map[string]string{"Filename": "pool/main/l/linux/linux-image-x_6.1-1_amd64.deb"}, "linux-image-x_6.1-1_amd64.deb"},
	} {
		if got := debFile(tc.f); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.f, got, tc.want)
		}
	}
}

// The packages fetched for a foreign guest: the userPackages and the
// libraries they depend on, not debconf's or dpkg's world; a kernel
// metapackage's closure is its kernel packages.
func TestClosure(t *testing.T) {
	archive := map[string]string{
		"iproute2":                         "debconf (>= 0.5) | debconf-2.0, libbpf1 (>= 1:0.6.0), libc6 (>= 2.34), libcap2-bin",
		"libbpf1":                          "libc6 (>= 2.34), libelf1 (>= 0.144), zlib1g (>= 1:1.2.3.3)",
		"libc6":                            "libgcc-s1",
		"libgcc-s1":                        "gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)",
		"libelf1":                          "libc6 (>= 2.34), zlib1g (>= 1:1.1.4)",
		"zlib1g":                           "libc6 (>= 2.14)",
		"libcap2-bin":                      "libc6 (>= 2.34), libcap2 (>= 1:2.63)",
		"libcap2":                          "libc6 (>= 2.34)",
		"debconf":                          "perl-base (>= 5.20.1-3~)",
		"linux-image-cloud-arm64":          "linux-image-6.1.0-57-cloud-arm64 (= 6.1.192-3)",
		"linux-image-6.1.0-57-cloud-arm64": "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
	}
	var asked []string
	lookup := func(pkg, ver string) (map[string]string, error) {
		asked = append(asked, pkg+"="+ver)
		deps, ok := archive[pkg]
		if !ok {
			t.Fatalf("looked up %s", pkg)
		}
		if ver == "" {
			ver = "1.0"
		}
		return map[string]string{"Package": pkg, "Version": ver, "Architecture": "arm64", "Depends": deps}, nil
	}
	names := func(refs []debRef) []string {
		var out []string
		for _, r := range refs {
			out = append(out, r.Package)
		}
		return out
	}
	refs, err := closure("iproute2", "6.1.0-3", lookup, libraryPackage.MatchString)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(refs), []string{"iproute2", "libbpf1", "libc6", "libgcc-s1", "libelf1", "zlib1g", "libcap2-bin", "libcap2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("iproute2: %q, want %q", got, want)
	}
	if refs[0].File != "iproute2_6.1.0-3_arm64.deb" {
		t.Errorf("file %s", refs[0].File)
	}
	asked = nil
	refs, err = closure("linux-image-cloud-arm64", "6.1.192-3", lookup, depPackage.MatchString)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(refs), []string{"linux-image-cloud-arm64", "linux-image-6.1.0-57-cloud-arm64"}; !reflect.DeepEqual(got, want) {
		t.Errorf("kernel: %q, want %q", got, want)
	}
	if want := []string{"linux-image-cloud-arm64=6.1.192-3", "linux-image-6.1.0-57-cloud-arm64=6.1.192-3"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("looked up %q, want the pinned versions %q", asked, want)
	}
}

func TestQemuCommand(t *testing.T) {
	cfg := &config{accel: "tcg,thread=single", memory: 1024, cpus: 2, cmdline: "panic=-1 quiet"}
	for _, tc := range []struct {
		arch, qemu, args string
	}{
		{"amd64", "qemu-system-x86_64", "-accel tcg,thread=single -cpu max -m 1024 -smp 2 -nographic -no-reboot -kernel /k/vmlinuz -initrd /w/x.gz -append 'console=ttyS0 panic=-1 quiet'"},
		{"arm64", "qemu-system-aarch64", "-accel tcg,thread=single -M virt -cpu max,pauth-impdef=on -m 1024 -smp 2 -nographic -no-reboot -kernel /k/vmlinuz -initrd /w/x.gz -append 'console=ttyAMA0 panic=-1 quiet'"},
	} {
		qemu, args := qemuCommand(cfg, findArch(tc.arch), "/k/vmlinuz", "/w/x.gz")
		if qemu != tc.qemu || shellJoin(args) != tc.args {
			t.Errorf("%s: %s %s\nwant %s %s", tc.arch, qemu, shellJoin(args), tc.qemu, tc.args)
		}
	}
}

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", "usr/lib/aarch64-linux-gnu/libmnl.so.0.2.0", "bin/ip"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"lib/ld-linux-aarch64.so.1":             "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", // absolute: inside root
		"usr/lib/aarch64-linux-gnu/libmnl.so.0": "libmnl.so.0.2.0",
		"sbin":                                  "bin",
		"lib/up":                                "../../../usr/lib/aarch64-linux-gnu/libmnl.so.0",
		"lib/loop":                              "loop",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for rel, want := range map[string]string{
		"lib/ld-linux-aarch64.so.1":              "lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
		"/usr/lib/aarch64-linux-gnu/libmnl.so.0": "usr/lib/aarch64-linux-gnu/libmnl.so.0.2.0",
		"sbin/ip":                                "bin/ip",
		"lib/up":                                 "usr/lib/aarch64-linux-gnu/libmnl.so.0.2.0",
		"lib/loop":                               "",
		"lib/none":                               "",
	} {
		got, err := resolveIn(root, rel)
		if want == "" && err == nil || want != "" && got != want {
			t.Errorf("%s: %q, %v; want %q", rel, got, err, want)
		}
	}
}

// neededFiles on the host's own ip: what ldd finds, as paths in the root.
func TestNeededFiles(t *testing.T) {
	a := findArch(hostArch)
	ip := ""
	for _, p := range []string{"usr/bin/ip", "bin/ip", "usr/sbin/ip", "sbin/ip"} {
		if _, err := os.Stat("/" + p); err == nil {
			ip = p
			break
		}
	}
	if a == nil || ip == "" || isStatic("/"+ip) {
		t.Skip("no dynamically linked ip here")
	}
	got, err := neededFiles("/", ip, a.libDirs(), a.Machine)
	if err != nil {
		t.Fatal(err)
	}
	libc, interp := false, false
	for _, f := range got {
		if strings.HasPrefix(f, "/") {
			t.Errorf("%s: not relative to the root", f)
		}
		libc = libc || path.Base(f) == "libc.so.6"
		interp = interp || strings.HasPrefix(path.Base(f), "ld-linux")
	}
	if !libc || !interp {
		t.Errorf("%s needs %q: no libc or no loader", ip, got)
	}
	other := elf.EM_AARCH64
	if a.Machine == other {
		other = elf.EM_X86_64
	}
	if _, err := neededFiles("/", ip, a.libDirs(), other); err == nil {
		t.Error("the wrong machine went unnoticed")
	}
}

// A kernel without fentry must have auto pick kprobe, and its fentry
// cell turns unsupported; on the others fentry must work.
func TestExpectations(t *testing.T) {
	doc := func(fentry bool, auto string) []byte {
		reason := `"ok":true`
		if !fentry {
			reason = `"ok":false,"reason":"fexit: not supported by this kernel: create raw tracepoint: not supported"`
		}
		return []byte(`{"backends":[{"backend":"fentry","points":[{"point":"connect",` + reason + `}]},
		 {"backend":"kprobe","points":[{"point":"connect","ok":true}]}],
		 "auto":[{"point":"connect","backend":"` + auto + `"}]}`)
	}
	old := &kernelSpec{Name: "6.1-arm64", Arch: "arm64", NoFentry: "no direct calls"}
	newer := &kernelSpec{Name: "6.12-arm64", Arch: "arm64"}
	failing := func() map[string]*cell {
		return map[string]*cell{"fentry": {State: stateFail, Text: "FAIL (TestA)"}, "kprobe": {State: statePass, Text: "pass (1/1)"}}
	}
	for _, tc := range []struct {
		spec   *kernelSpec
		doc    []byte
		failed bool
		fentry string
	}{
		{old, doc(false, "kprobe"), false, stateUnsupported},
		{old, doc(true, "fentry"), true, stateFail}, // fentry works after all: the data is out of date
		{newer, doc(false, "kprobe"), true, stateFail},
		{newer, doc(true, "fentry"), true, stateFail}, // a failed test stays a failure
	} {
		r := &row{Kernel: tc.spec.Name, spec: tc.spec, doctor: tc.doc, Cells: failing()}
		r.applyDoctor()
		if r.failed() != tc.failed || r.Cells["fentry"].State != tc.fentry {
			t.Errorf("%s, doctor %s: failed %v, fentry %s; want %v, %s (notes %q)", tc.spec.Name, tc.doc, r.failed(), r.Cells["fentry"].State, tc.failed, tc.fentry, r.Notes)
		}
	}
	if auto, supported := expectations(nil); auto != "tracepoint" || slices.Contains(supported, "fentry") {
		t.Errorf("host: %s %q", auto, supported)
	}
}

// The tests run in tools/matrix, below tools/go.mod (a module of its own):
// findRepo must pass it by and find the product's go.mod.
func TestFindRepo(t *testing.T) {
	repo, err := findRepo()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"cmd/tuxscope", "tools/go.mod"} {
		if _, err := os.Stat(filepath.Join(repo, p)); err != nil {
			t.Errorf("findRepo = %s: %v", repo, err)
		}
	}
}

// A warning raised in the kernel's BPF code fails the kernel's cells;
// other kernel noise does not.
func TestBPFSplats(t *testing.T) {
	dmesg := []string{
		"<4>[   10.497478] trace type BPF program uses run-time allocation",
		"<4>[   10.498159] WARNING: CPU: 0 PID: 112 at kernel/bpf/verifier.c:10519 bpf_check+0x2f8e/0x3470",
		"<4>[    1.2] WARNING: CPU: 1 PID: 1 at drivers/virtio/virtio.c:12 probe+0x1/0x2",
	}
	got := bpfSplats(dmesg)
	if len(got) != 1 || got[0] != dmesg[1] {
		t.Errorf("bpfSplats = %q, want the verifier's warning only", got)
	}
}

// A run without -backends tests each kernel's default set; -backends
// names what every kernel runs.
func TestBackendsFor(t *testing.T) {
	cfg := &config{backends: defaultBackends}
	if got := cfg.backendsFor(findKernel("6.1")); !slices.Equal(got, []string{"fentry", "tracepoint"}) {
		t.Errorf("6.1 by default: %v", got)
	}
	if got := cfg.backendsFor(findKernel("5.10")); !slices.Equal(got, defaultBackends) {
		t.Errorf("5.10 by default: %v", got)
	}
	for _, k := range kernels {
		if len(cfg.backendsFor(&k)) == 0 {
			t.Errorf("%s: no default backend to test", k.Name)
		}
	}
	cfg.backendsSet = true
	if got := cfg.backendsFor(findKernel("6.1")); !slices.Equal(got, defaultBackends) {
		t.Errorf("6.1 with -backends %v: %v", defaultBackends, got)
	}
}

// The guests with the most backends boot first, among those the other
// architectures' first, the rest in row order.
func TestBootOrder(t *testing.T) {
	cfg := &config{backends: defaultBackends}
	var rows []*row
	for _, name := range []string{"5.10", "6.1", "6.12", "sid", "6.12-arm64"} {
		k := findKernel(name)
		rows = append(rows, &row{Kernel: name, spec: k, backends: cfg.backendsFor(k)})
	}
	var got []string
	for _, r := range bootOrder(rows) {
		got = append(got, r.Kernel)
	}
	if want := []string{"6.12-arm64", "5.10", "sid", "6.1", "6.12"}; !slices.Equal(got, want) {
		t.Errorf("boot order %v, want %v", got, want)
	}
}
