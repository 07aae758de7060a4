package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
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
	plan := guestPlan(cfg, 2*time.Minute)
	for _, want := range []string{
		`probe doctor '"$TUXSCOPE" doctor --format json'`,
		`runtest tracepoint 'env TUXSCOPE_BIN=/tuxscope TUXSCOPE_TEST_BACKEND=tracepoint /it.test -test.v -test.count=1 -test.timeout=2m0s '\''-test.run=^(TestA|TestB)$'\'''`,
		`runtest fentry '`,
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %s:\n%s", want, plan)
		}
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
