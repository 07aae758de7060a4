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
// packages that provide them. busybox must be the static build.
var hostTools = []struct{ cmd, pkg string }{
	{"qemu-system-x86_64", "qemu-system-x86"},
	{"busybox", "busybox-static"},
	{"xz", "xz-utils"},
	{"zstd", "zstd"},
	{"dpkg-deb", "dpkg"},
	{"apt-get", "apt"},
}

// ensureHostTools installs (apt-get) what is missing.
func ensureHostTools(cfg *config) error {
	var missing []string
	for _, t := range hostTools {
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

// binaries are the statically linked programs shipped into every guest.
type binaries struct {
	Tuxscope string // CGO_ENABLED=0 go build ./cmd/tuxscope
	IT       string // CGO_ENABLED=0 go test -c ./test/integration
	Build    time.Duration
}

func buildBinaries(ctx context.Context, cfg *config) (*binaries, error) {
	dir := filepath.Join(cfg.cache, "work", "bin")
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
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, p := range []string{b.Tuxscope, b.IT} {
		if !isStatic(p) {
			return nil, fmt.Errorf("%s is not statically linked", p)
		}
	}
	b.Build = time.Since(t0)
	logf("built tuxscope and it.test (CGO_ENABLED=0) in %s", round(b.Build))
	return b, nil
}
