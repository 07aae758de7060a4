package main

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// arch is a guest architecture: how qemu runs it, and where a guest's
// userland (busybox, ip) comes from when it is not the host's.
type arch struct {
	Name        string      // Debian architecture and GOARCH
	Machine     elf.Machine // of every binary shipped into the guest
	Qemu        string      // qemu-system-* binary
	QemuPackage string      // the Debian package providing it
	QemuArgs    []string    // machine and CPU
	Console     string      // serial console device (console=)
	Triplet     string      // multiarch library directory: lib/TRIPLET
	// Userland is where a foreign guest's userPackages come from: the
	// host's own Debian release, so its ip is the one x86 guests get.
	Userland []suite
}

// archs are the architectures the kernels (kernels.go) can be. Under TCG
// an arm64 -cpu max with the architected pointer-authentication algorithm
// (QARMA) spends most of its time computing PACs: pauth-impdef=on keeps
// pointer authentication on, with qemu's cheap algorithm (guests boot 3x
// faster).
var archs = []arch{
	{
		Name: "amd64", Machine: elf.EM_X86_64,
		Qemu: "qemu-system-x86_64", QemuPackage: "qemu-system-x86",
		QemuArgs: []string{"-cpu", "max"},
		Console:  "ttyS0", Triplet: "x86_64-linux-gnu",
		Userland: []suite{bookworm},
	},
	{
		Name: "arm64", Machine: elf.EM_AARCH64,
		Qemu: "qemu-system-aarch64", QemuPackage: "qemu-system-arm",
		QemuArgs: []string{"-M", "virt", "-cpu", "max,pauth-impdef=on"},
		Console:  "ttyAMA0", Triplet: "aarch64-linux-gnu",
		Userland: []suite{bookworm},
	},
}

// hostArch is the architecture the matrix runs on: its guests get the
// host's busybox and ip.
var hostArch = runtime.GOARCH

func findArch(name string) *arch {
	for i := range archs {
		if archs[i].Name == name {
			return &archs[i]
		}
	}
	return nil
}

// userPackages are what a guest of a foreign architecture gets instead of
// the host's busybox and ip: busybox-static, and iproute2 with the
// libraries its ip needs.
var userPackages = []string{"busybox-static", "iproute2"}

// libraryPackage matches the dependencies followed from userPackages:
// shared libraries (the programs and configuration files of debconf, dpkg
// and the like are not needed). Which library files are shipped is then
// decided by the programs' DT_NEEDED entries (neededFiles).
var libraryPackage = regexp.MustCompile(`^(lib|zlib)`)

// qemuCommand is the qemu binary and arguments booting vmlinuz with
// initrd on a.
func qemuCommand(cfg *config, a *arch, vmlinuz, initrd string) (string, []string) {
	args := []string{"-accel", cfg.accel}
	args = append(args, a.QemuArgs...)
	args = append(args,
		"-m", strconv.Itoa(cfg.memory), "-smp", strconv.Itoa(cfg.cpus),
		"-nographic", "-no-reboot",
		"-kernel", vmlinuz, "-initrd", initrd,
		"-append", strings.TrimSpace("console="+a.Console+" "+cfg.cmdline),
	)
	return a.Qemu, args
}

// userland is a foreign architecture's busybox and ip, unpacked from
// Debian's packages.
type userland struct {
	Root     string   // where the packages are unpacked
	Packages []string // "NAME VERSION", userPackages first
}

// fetchUserland downloads (cached) userPackages for a, with the libraries
// they depend on, and unpacks them into CACHE/userland/ARCH.
func fetchUserland(ctx context.Context, cfg *config, a *arch) (*userland, error) {
	ap := newApt(cfg, a.Name, a.Userland)
	if err := ap.update(ctx); err != nil {
		return nil, err
	}
	var refs, libs []debRef
	seen := map[string]bool{}
	for _, pkg := range userPackages {
		ver, err := ap.candidate(ctx, pkg)
		if err != nil {
			return nil, err
		}
		r, err := ap.closure(ctx, pkg, ver, libraryPackage.MatchString)
		if err != nil {
			return nil, err
		}
		refs = append(refs, r[0])
		seen[pkg] = true
		libs = append(libs, r[1:]...)
	}
	for _, ref := range libs {
		if !seen[ref.Package] {
			seen[ref.Package] = true
			refs = append(refs, ref)
		}
	}
	have, failures := ap.download(ctx, refs)
	if len(failures) > 0 {
		return nil, errors.New(strings.Join(failures, "; "))
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	root := filepath.Join(cfg.cache, "userland", a.Name)
	if err := unpack(ctx, filepath.Join(cfg.cache, "debs"), have, root); err != nil {
		return nil, err
	}
	u := &userland{Root: root}
	for _, r := range have {
		u.Packages = append(u.Packages, r.Package+" "+r.Version)
	}
	return u, nil
}

// libDirs are where a's dynamic loader looks for libraries without an
// ld.so.cache, relative to the root.
func (a *arch) libDirs() []string {
	return []string{"lib/" + a.Triplet, "usr/lib/" + a.Triplet, "lib", "usr/lib"}
}

// neededFiles lists what the program at prog (relative to root) needs to
// run: its program interpreter and its shared libraries (DT_NEEDED,
// recursively), found in dirs as the loader finds them. Paths are relative
// to root, where the guest looks for them; symbolic links are followed
// inside root. Every file must be an ELF file for machine.
func neededFiles(root, prog string, dirs []string, machine elf.Machine) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var visit func(rel string) error
	visit = func(rel string) error {
		if seen[rel] {
			return nil
		}
		seen[rel] = true
		real, err := resolveIn(root, rel)
		if err != nil {
			return err
		}
		f, err := elf.Open(filepath.Join(root, real))
		if err != nil {
			return fmt.Errorf("%s: %v", rel, err)
		}
		defer f.Close()
		if f.Machine != machine {
			return fmt.Errorf("%s is for %s, not %s", rel, f.Machine, machine)
		}
		if rel != prog {
			out = append(out, rel)
		}
		for _, p := range f.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return fmt.Errorf("%s: reading its interpreter: %v", rel, err)
			}
			if err := visit(strings.TrimLeft(strings.TrimRight(string(b), "\x00"), "/")); err != nil {
				return err
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %v", rel, err)
		}
	libs:
		for _, lib := range libs {
			for _, d := range dirs {
				p := path.Join(d, lib)
				if _, err := resolveIn(root, p); err == nil {
					if err := visit(p); err != nil {
						return err
					}
					continue libs
				}
			}
			return fmt.Errorf("%s needs %s: not in %s of %s", rel, lib, strings.Join(dirs, ", "), root)
		}
		return nil
	}
	if err := visit(prog); err != nil {
		return nil, err
	}
	return out, nil
}

// resolveIn resolves the symbolic links of rel (a path relative to root)
// as if root were /, and returns the real file's path relative to root.
func resolveIn(root, rel string) (string, error) {
	parts := strings.Split(strings.TrimLeft(path.Clean("/"+rel), "/"), "/")
	done := ""
	for hops := 0; len(parts) > 0; {
		next := path.Join(done, parts[0])
		parts = parts[1:]
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if st.Mode()&os.ModeSymlink == 0 {
			done = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many symbolic links", rel)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(target, "/") {
			target = path.Join(done, target)
		}
		var rest []string
		for _, p := range strings.Split(path.Clean(target), "/") {
			if p != "" && p != "." && p != ".." { // ".." only at the root: cleaned
				rest = append(rest, p)
			}
		}
		done, parts = "", append(rest, parts...)
	}
	if done == "" {
		return "", fmt.Errorf("%s resolves to the root", rel)
	}
	return done, nil
}
