package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	_ "embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// initScript is the guest's /init: it mounts the file systems, loads the
// modules, runs /plan.sh (generated from the data in main.go) and powers
// off.
//
//go:embed guest/init.sh
var initScript []byte

// cpioWriter writes a cpio archive in the "newc" format the kernel unpacks
// into its initial root file system.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	have map[string]bool
	err  error
}

func newCpio(w io.Writer) *cpioWriter { return &cpioWriter{w: w, have: map[string]bool{}} }

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
)

func (c *cpioWriter) entry(name string, mode uint32, rdevMajor, rdevMinor uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == sIFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	if _, err := c.w.Write(b.Bytes()); err != nil {
		c.err = err
		return
	}
	if _, err := c.w.Write(data); err != nil {
		c.err = err
		return
	}
	if pad := (4 - len(data)%4) % 4; pad > 0 {
		if _, err := c.w.Write(make([]byte, pad)); err != nil {
			c.err = err
		}
	}
}

// dir adds name and its parents (names are relative: "usr/bin").
func (c *cpioWriter) dir(name string) {
	name = strings.Trim(path.Clean(name), "/")
	if name == "." || name == "" || c.have[name] {
		return
	}
	c.dir(path.Dir(name))
	c.have[name] = true
	c.entry(name, sIFDIR|0o755, 0, 0, nil)
}

func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	name = strings.Trim(path.Clean(name), "/")
	c.dir(path.Dir(name))
	c.have[name] = true
	c.entry(name, sIFREG|perm, 0, 0, data)
}

func (c *cpioWriter) symlink(name, target string) {
	name = strings.Trim(path.Clean(name), "/")
	c.dir(path.Dir(name))
	c.have[name] = true
	c.entry(name, sIFLNK|0o777, 0, 0, []byte(target))
}

func (c *cpioWriter) chardev(name string, perm, major, minor uint32) {
	name = strings.Trim(path.Clean(name), "/")
	c.dir(path.Dir(name))
	c.have[name] = true
	c.entry(name, sIFCHR|perm, major, minor, nil)
}

func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	return c.err
}

// buildInitramfs writes the guest's initramfs (gzip'd cpio) to dst: static
// busybox, /init, /plan.sh, tuxscope and the test binary, the kernel's
// modules from guestModules, and (with -guest-ip) ip and tc. busybox, ip
// and tc are the host's, or with ul (a guest of another architecture) ul's. It
// returns notes for the report.
func buildInitramfs(cfg *config, a *arch, ul *userland, bins *binaries, img *kernelImage, plan string, dst string) ([]string, error) {
	var notes []string
	f, err := os.Create(dst)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	c := newCpio(zw)

	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run", "root", "etc", "modules", "var"} {
		c.dir(d)
	}
	c.symlink("var/run", "../run")
	c.chardev("dev/console", 0o600, 5, 1)
	c.chardev("dev/null", 0o666, 1, 3)
	c.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	c.file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	c.file("init", 0o755, initScript)
	c.file("plan.sh", 0o644, []byte(plan))

	// Programs we ship for real take precedence over busybox's applets
	// (busybox's ip has no netns: with it on PATH the netns test would fail
	// instead of skipping).
	shipped := map[string]bool{}
	if cfg.shipIP {
		// ip: the network-namespace tests; tc: the netem test (RTT).
		for _, p := range []struct{ name, hostDst, rootPath, without string }{
			{"ip", "usr/sbin/ip", "bin/ip", "the network-namespace tests skip"},
			{"tc", "usr/sbin/tc", "sbin/tc", "the netem test skips"},
		} {
			var err error
			if ul != nil {
				// In /bin, where /init's busybox --install -s leaves
				// it (it replaces no file) and PATH finds it first.
				err = addFromRoot(c, a, ul.Root, p.rootPath, "bin/"+p.name)
			} else {
				err = addDynamic(c, p.name, p.hostDst)
			}
			if err != nil {
				notes = append(notes, "no "+p.name+" in the guest ("+err.Error()+"): "+p.without)
			} else {
				shipped[p.name] = true
			}
		}
	}
	if ul != nil {
		// A busybox we cannot run here: /init links its applets.
		bb := filepath.Join(ul.Root, "bin/busybox")
		if !isStatic(bb) || elfMachine(bb) != a.Machine {
			return nil, fmt.Errorf("%s is not a static %s busybox", bb, a.Machine)
		}
		data, err := os.ReadFile(bb)
		if err != nil {
			return nil, err
		}
		c.file("bin/busybox", 0o755, data)
	} else {
		bb, err := exec.LookPath("busybox")
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(bb)
		if err != nil {
			return nil, err
		}
		c.file("bin/busybox", 0o755, data)
		list, err := exec.Command(bb, "--list").Output()
		if err != nil {
			return nil, fmt.Errorf("busybox --list: %v", err)
		}
		for _, applet := range strings.Fields(string(list)) {
			if applet == "busybox" || shipped[applet] || strings.Contains(applet, "/") {
				continue
			}
			c.symlink("bin/"+applet, "busybox")
		}
	}

	for _, p := range []struct{ src, dst string }{{bins.Tuxscope, "tuxscope"}, {bins.IT, "it.test"}} {
		data, err := os.ReadFile(p.src)
		if err != nil {
			return nil, err
		}
		c.file(p.dst, 0o755, data)
	}

	mods, modNotes, err := resolveModules(img, guestModules)
	if err != nil {
		return nil, err
	}
	notes = append(notes, modNotes...)
	var order []string
	for i, m := range mods {
		name := fmt.Sprintf("%02d-%s.ko", i, m.name)
		c.file("modules/"+name, 0o644, m.data)
		order = append(order, name)
	}
	c.file("modules/load.list", 0o644, []byte(strings.Join(order, "\n")+"\n"))

	if err := c.close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return notes, f.Close()
}

// addDynamic adds the host's program name at dst with the shared libraries
// ldd lists for it, at the paths the dynamic loader looks for them.
func addDynamic(c *cpioWriter, name, dst string) error {
	p, err := exec.LookPath(name)
	if err != nil {
		for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
			if _, e := os.Stat(filepath.Join(d, name)); e == nil {
				p, err = filepath.Join(d, name), nil
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s not found on the host", name)
	}
	files := []string{p}
	if !isStatic(p) {
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			return fmt.Errorf("ldd %s: %v", p, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			line = strings.TrimSpace(line)
			if strings.Contains(line, "not found") {
				return fmt.Errorf("ldd %s: %s", p, line)
			}
			lib := line
			if _, after, ok := strings.Cut(line, "=>"); ok {
				lib = strings.TrimSpace(after)
			}
			lib, _, _ = strings.Cut(lib, " (")
			if strings.HasPrefix(lib, "/") {
				files = append(files, lib)
			}
		}
	}
	for i, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if i == 0 {
			c.file(dst, 0o755, data)
		} else {
			c.file(src, 0o755, data)
		}
	}
	return nil
}

// addFromRoot adds the program at prog in root (an unpacked userland of
// architecture a) at dst, with its program interpreter and
// shared libraries (neededFiles).
func addFromRoot(c *cpioWriter, a *arch, root, prog, dst string) error {
	libs, err := neededFiles(root, prog, a.libDirs(), a.Machine)
	if err != nil {
		return err
	}
	for _, p := range append([]string{prog}, libs...) {
		real, err := resolveIn(root, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(filepath.Join(root, real))
		if err != nil {
			return err
		}
		if p == prog {
			p = dst
		}
		c.file(p, 0o755, data)
	}
	return nil
}

type module struct {
	name string
	data []byte // uncompressed
}

// resolveModules finds the named modules in the kernel's module tree,
// decompresses them, and returns them with their dependencies (read from
// each module's .modinfo: the packages ship no modules.dep) in load order.
// A module that is built in or absent is a note, not an error.
func resolveModules(img *kernelImage, names []string) ([]module, []string, error) {
	if img.Modules == "" {
		return nil, []string{"no module tree in the package"}, nil
	}
	norm := func(s string) string { return strings.ReplaceAll(s, "-", "_") }
	files := map[string]string{}
	filepath.WalkDir(filepath.Join(img.Modules, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		base := d.Name()
		for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
			if strings.HasSuffix(base, ext) {
				files[norm(strings.TrimSuffix(base, ext))] = p
			}
		}
		return nil
	})
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(img.Modules, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[norm(strings.TrimSuffix(path.Base(l), ".ko"))] = true
		}
	}
	var out []module
	var notes []string
	done := map[string]bool{}
	var visit func(name string, top bool) error
	visit = func(name string, top bool) error {
		name = norm(name)
		if done[name] {
			return nil
		}
		done[name] = true
		p, ok := files[name]
		if !ok {
			if builtin[name] {
				if top {
					notes = append(notes, name+" is built in")
				}
				return nil
			}
			notes = append(notes, "no "+name+" module")
			return nil
		}
		data, err := readModule(p)
		if err != nil {
			return err
		}
		for _, d := range moduleDepends(data) {
			if err := visit(d, false); err != nil {
				return err
			}
		}
		out = append(out, module{name, data})
		return nil
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		if err := visit(n, true); err != nil {
			return nil, nil, err
		}
	}
	return out, notes, nil
}

// readModule returns a module file's contents, decompressed: busybox's
// insmod may not read compressed modules.
func readModule(p string) ([]byte, error) {
	switch {
	case strings.HasSuffix(p, ".ko"):
		return os.ReadFile(p)
	case strings.HasSuffix(p, ".gz"):
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case strings.HasSuffix(p, ".xz"):
		return exec.Command("xz", "-dc", p).Output()
	case strings.HasSuffix(p, ".zst"):
		return exec.Command("zstd", "-qdc", p).Output()
	}
	return nil, fmt.Errorf("unknown module compression: %s", p)
}

// moduleDepends reads depends= from a module's .modinfo section.
func moduleDepends(ko []byte) []string {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil
	}
	data, err := s.Data()
	if err != nil {
		return nil
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok && len(v) > 0 {
			return strings.Split(string(v), ",")
		}
	}
	return nil
}
