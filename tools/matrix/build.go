package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// hostTools are the commands the guests need on the host and the Debian
// packages that provide them (and each guest architecture's qemu, from
// archs). busybox must be the static build.
var hostTools = []struct{ cmd, pkg string }{
	{"busybox", "busybox-static"},
	{"xz", "xz-utils"},
	{"zstd", "zstd"},
	{"dpkg-deb", "dpkg"},
	{"apt-get", "apt"},
}

// ensureHostTools installs (apt-get) what is missing for guests of the
// architectures guestArchs.
func ensureHostTools(cfg *config, guestArchs []string) error {
	var missing []string
	tools := hostTools
	for _, name := range guestArchs {
		a := findArch(name)
		tools = append(tools, struct{ cmd, pkg string }{a.Qemu, a.QemuPackage})
	}
	for _, t := range tools {
		p, err := exec.LookPath(t.cmd)
		if err == nil && t.cmd == "busybox" && !isStatic(p) {
			err = fmt.Errorf("%s is not statically linked", p)
		}
		if err != nil {
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if cfg.noInstall {
		return fmt.Errorf("missing host packages %s (and -no-install is set)", strings.Join(missing, " "))
	}
	logf("installing %s", strings.Join(missing, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	up := exec.Command("apt-get", "-q", "update")
	up.Env = env
	if out, err := up.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v: %s", err, lastLines(string(out), 3))
	}
	inst := exec.Command("apt-get", append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)...)
	inst.Env = env
	if out, err := inst.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %v: %s", strings.Join(missing, " "), err, lastLines(string(out), 3))
	}
	return nil
}

// isStatic reports whether the ELF file at path has no program interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// binaries are the statically linked programs shipped into every guest of
// one architecture (the host's also run the host's tests).
type binaries struct {
	Tuxscope string // CGO_ENABLED=0 GOARCH=ARCH go build ./cmd/tuxscope
	IT       string // CGO_ENABLED=0 GOARCH=ARCH go test -c ./test/integration
	Build    time.Duration
}

// buildBinaries builds the binaries for each of goarchs into
// CACHE/work/bin/GOARCH.
func buildBinaries(ctx context.Context, cfg *config, goarchs []string) (map[string]*binaries, error) {
	all := map[string]*binaries{}
	for _, goarch := range goarchs {
		dir := filepath.Join(cfg.cache, "work", "bin", goarch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		b := &binaries{Tuxscope: filepath.Join(dir, "tuxscope"), IT: filepath.Join(dir, "it.test")}
		t0 := time.Now()
		for _, args := range [][]string{
			{"build", "-o", b.Tuxscope, "./cmd/tuxscope"},
			{"test", "-c", "-o", b.IT, "./test/integration"},
		} {
			c := exec.CommandContext(ctx, cfg.goBin, args...)
			c.Dir = cfg.repo
			c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch)
			if out, err := c.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("GOARCH=%s go %s: %v\n%s", goarch, strings.Join(args, " "), err, out)
			}
		}
		machine := findArch(goarch).Machine
		for _, p := range []string{b.Tuxscope, b.IT} {
			if !isStatic(p) {
				return nil, fmt.Errorf("%s is not statically linked", p)
			}
			if m := elfMachine(p); m != machine {
				return nil, fmt.Errorf("%s is for %s, not %s", p, m, machine)
			}
		}
		b.Build = time.Since(t0)
		all[goarch] = b
		logf("built tuxscope and it.test (CGO_ENABLED=0 GOARCH=%s) in %s", goarch, round(b.Build))
	}
	return all, nil
}

// elfMachine is the machine of the ELF file at path (EM_NONE if it is not
// one).
func elfMachine(path string) elf.Machine {
	f, err := elf.Open(path)
	if err != nil {
		return elf.EM_NONE
	}
	defer f.Close()
	return f.Machine
}
