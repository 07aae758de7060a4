package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// kernelSpec is one guest kernel of the matrix. The exact packages are
// resolved from the archive's package lists at run time, so the matrix keeps
// working when Debian bumps a kernel's ABI.
type kernelSpec struct {
	Name       string      // row name and -kernels value
	Arch       string      // Debian architecture (archs in arch.go)
	Series     string      // the resolved package's version must start with this ("" = any)
	Candidates []candidate // tried in order; the first that resolves is used
	// Optional kernels run only when -kernels names them.
	Optional bool
	// NoFentry says why the kernel cannot attach fentry/fexit programs
	// to kernel functions: the matrix then expects the fentry backend to
	// be unsupported and auto to pick kprobe (expectations).
	NoFentry string
	// Backends are the backends a run without -backends tests on it (nil:
	// all of defaultBackends). An explicit -backends tests what it names
	// on every kernel.
	Backends []string
}

// functionAndTracepoint leaves out kprobe on the kernels between the
// oldest and the newest: the kprobe programs are the same on each, their
// event tests run on 5.10, sid and arm64, and here the doctor test still
// loads and attaches them (it starts every backend doctor calls usable).
// A kernel's tests take about 3.5 minutes a backend under TCG: this keeps
// the default matrix within CI's time.
var functionAndTracepoint = []string{"fentry", "tracepoint"}

// candidate is a set of suites and the (meta)packages to look for in them,
// in order of preference.
type candidate struct {
	Suites   []suite
	Packages []string
}

// suite is one sources.list line: archive ("debian" or "debian-security")
// and suite name; component main.
type suite struct{ Archive, Name string }

var (
	bullseyeSecurity = suite{"debian-security", "bullseye-security"}
	bookworm         = suite{"debian", "bookworm"}
	bookwormSecurity = suite{"debian-security", "bookworm-security"}
	trixie           = suite{"debian", "trixie"}
	trixieSecurity   = suite{"debian-security", "trixie-security"}
	sid              = suite{"debian", "sid"}
)

// kernels is the matrix's list of guest kernels, in row order. The cloud
// flavours boot fastest (fewer drivers) and have what the guests need:
// on arm64 the PL011 serial console and PSCI power-off of qemu's virt
// machine built in, veth and tcp_diag as modules.
var kernels = []kernelSpec{
	{Name: "5.10", Arch: "amd64", Series: "5.10.", Candidates: []candidate{
		{[]suite{bullseyeSecurity}, []string{"linux-image-cloud-amd64", "linux-image-amd64"}},
	}},
	{Name: "6.1", Arch: "amd64", Series: "6.1.", Backends: functionAndTracepoint, Candidates: []candidate{
		{[]suite{bookworm, bookwormSecurity}, []string{"linux-image-cloud-amd64", "linux-image-amd64"}},
	}},
	{Name: "6.12", Arch: "amd64", Series: "6.12.", Backends: functionAndTracepoint, Candidates: []candidate{
		{[]suite{bookworm, bookwormSecurity}, []string{"linux-image-6.12-cloud-amd64", "linux-image-6.12-amd64"}},
		{[]suite{trixie, trixieSecurity}, []string{"linux-image-cloud-amd64", "linux-image-amd64"}},
	}},
	{Name: "sid", Arch: "amd64", Candidates: []candidate{
		{[]suite{sid}, []string{"linux-image-cloud-amd64", "linux-image-amd64"}},
	}},
	{Name: "6.12-arm64", Arch: "arm64", Series: "6.12.", Candidates: []candidate{
		{[]suite{bookworm, bookwormSecurity}, []string{"linux-image-6.12-cloud-arm64", "linux-image-6.12-arm64"}},
		{[]suite{trixie, trixieSecurity}, []string{"linux-image-cloud-arm64", "linux-image-arm64"}},
	}},
	// arm64 has ftrace direct calls, which BPF trampolines on kernel
	// functions need, since 6.4: on 6.1 attaching fexit fails with
	// ENOTSUPP ("create raw tracepoint: not supported").
	{Name: "6.1-arm64", Arch: "arm64", Series: "6.1.", Optional: true,
		NoFentry: "no ftrace direct calls on arm64 before 6.4 (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)",
		Candidates: []candidate{
			{[]suite{bookworm, bookwormSecurity}, []string{"linux-image-cloud-arm64", "linux-image-arm64"}},
		}},
}

func findKernel(name string) *kernelSpec {
	for i := range kernels {
		if kernels[i].Name == name {
			return &kernels[i]
		}
	}
	return nil
}

// kernelImage is an unpacked kernel: its vmlinuz and module tree.
type kernelImage struct {
	Package, Version string // the package the candidate resolved to
	Release          string // uname -r, from the module directory's name
	Root             string // where the packages are unpacked
	Vmlinuz          string
	Modules          string // ROOT/[usr/]lib/modules/RELEASE, "" if none
	Notes            []string
}

// depPackage matches the dependencies followed from a metapackage to the
// packages holding the kernel: linux-image-*, and since Debian split them,
// linux-binary-*, linux-modules-* and linux-base-* (not plain linux-base).
var depPackage = regexp.MustCompile(`^linux-(image|binary|modules|base)-`)

// aptFailed matches apt-get update's complaints about a suite it could not
// fetch, after which it still exits 0.
var aptFailed = regexp.MustCompile(`(?m)^(W: Failed to fetch|E: )`)

// fetchKernel resolves, downloads (cached) and unpacks (cached) a kernel.
func fetchKernel(ctx context.Context, cfg *config, k *kernelSpec) (*kernelImage, error) {
	var errs []string
	for _, c := range k.Candidates {
		a := newApt(cfg, k.Arch, c.Suites)
		if err := a.update(ctx); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, pkg := range c.Packages {
			ver, err := a.candidate(ctx, pkg)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			if !strings.HasPrefix(ver, k.Series) {
				errs = append(errs, fmt.Sprintf("%s in %s is %s, not %s*", pkg, a.suiteNames(), ver, k.Series))
				continue
			}
			img, err := a.fetch(ctx, pkg, ver)
			if err != nil && !a.updated && ctx.Err() == nil {
				// Lists from an earlier run can name packages the archive
				// has dropped since (an ABI bump): refresh and retry once.
				logf("%s: %v; refreshing the package lists and retrying", k.Name, err)
				if uerr := a.forceUpdate(ctx); uerr != nil {
					return nil, fmt.Errorf("%v (and %v)", err, uerr)
				}
				if ver, err = a.candidate(ctx, pkg); err == nil {
					img, err = a.fetch(ctx, pkg, ver)
				}
			}
			return img, err
		}
	}
	return nil, errors.New(strings.Join(errs, "; "))
}

// apt runs apt-get and apt-cache for one architecture on a throwaway
// sources list with its own package lists and cache, under
// CACHE/apt/ARCH/SUITES; the host's dpkg is neither read nor changed (no
// foreign architecture is added to it). Downloaded packages go to
// CACHE/debs, unpacked kernels to CACHE/kernels.
type apt struct {
	cfg     *config
	arch    string
	suites  []suite
	dir     string
	updated bool // the lists were refreshed in this run
}

func newApt(cfg *config, arch string, suites []suite) *apt {
	var names []string
	for _, s := range suites {
		names = append(names, s.Name)
	}
	return &apt{cfg: cfg, arch: arch, suites: suites, dir: filepath.Join(cfg.cache, "apt", arch, strings.Join(names, "+"))}
}

func (a *apt) suiteNames() string {
	var names []string
	for _, s := range a.suites {
		names = append(names, s.Name)
	}
	return strings.Join(names, "+")
}

func (a *apt) opts() []string {
	o := []string{
		"Dir::Etc::sourcelist=" + filepath.Join(a.dir, "sources.list"),
		"Dir::Etc::sourceparts=-",
		"Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"Dir::Cache=" + filepath.Join(a.dir, "cache"),
		"Dir::State::status=/dev/null",
		// This architecture's lists and packages only, whatever the
		// host's dpkg has.
		"APT::Architecture=" + a.arch,
		"APT::Architectures=" + a.arch,
		// Keep apt's parsed cache (the host's docker-clean config turns it
		// off): each apt-cache call then takes milliseconds, not a second.
		"Dir::Cache::pkgcache=pkgcache.bin",
		"Dir::Cache::srcpkgcache=srcpkgcache.bin",
		"APT::Sandbox::User=root",
		"Acquire::Languages=none",
		"Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::DEP-11-icons-large::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::DEP-11-icons-large-hidpi::DefaultEnabled=false",
		"Acquire::IndexTargets::deb::CNF::DefaultEnabled=false",
	}
	var args []string
	for _, s := range o {
		args = append(args, "-o", s)
	}
	return args
}

func (a *apt) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, append(a.opts(), args...)...)
	c.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	return c
}

// update writes the sources list and refreshes the package lists when they
// are missing, older than -refresh, or the sources changed. If refreshing
// fails but older lists exist, those are used.
func (a *apt) update(ctx context.Context) error {
	sl := a.sourcesList()
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return err
		}
	}
	listFile := filepath.Join(a.dir, "sources.list")
	stamp := filepath.Join(a.dir, "updated")
	old, _ := os.ReadFile(listFile)
	st, err := os.Stat(stamp)
	fresh := err == nil && time.Since(st.ModTime()) < a.cfg.refresh && string(old) == sl
	if fresh {
		return nil
	}
	return a.refresh(ctx, sl, string(old) == sl)
}

// sourcesList is the sources.list of a's suites (component main). The
// architecture is apt's option (opts), not the sources'.
func (a *apt) sourcesList() string {
	var sl strings.Builder
	for _, s := range a.suites {
		uri := a.cfg.mirror
		if s.Archive == "debian-security" {
			uri = a.cfg.secMirror
		}
		fmt.Fprintf(&sl, "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n", uri, s.Name)
	}
	return sl.String()
}

// forceUpdate refreshes the lists even if they are fresh.
func (a *apt) forceUpdate(ctx context.Context) error {
	sl, _ := os.ReadFile(filepath.Join(a.dir, "sources.list"))
	return a.refresh(ctx, string(sl), true)
}

func (a *apt) refresh(ctx context.Context, sources string, sameSources bool) error {
	listFile := filepath.Join(a.dir, "sources.list")
	stamp := filepath.Join(a.dir, "updated")
	a.updated = true
	if err := os.WriteFile(listFile, []byte(sources), 0o644); err != nil {
		return err
	}
	os.Remove(stamp)
	t0 := time.Now()
	out, err := a.cmd(ctx, "apt-get", "-q", "update").CombinedOutput()
	// apt-get update exits 0 even when a suite failed ("W: Failed to fetch").
	if err == nil && aptFailed.Match(out) {
		err = errors.New("errors")
	}
	if err != nil {
		msg := fmt.Sprintf("apt-get update for %s: %v: %s", a.suiteNames(), err, aptError(string(out)))
		if haveLists(filepath.Join(a.dir, "lists")) && sameSources {
			logf("warning: %s (using the lists from before)", msg)
			return nil
		}
		return errors.New(msg)
	}
	logf("package lists for %s updated in %s", a.suiteNames(), round(time.Since(t0)))
	return os.WriteFile(stamp, nil, 0o644)
}

func haveLists(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*Packages*"))
	return len(m) > 0
}

// candidate is the version apt would pick for pkg.
func (a *apt) candidate(ctx context.Context, pkg string) (string, error) {
	out, err := a.cmd(ctx, "apt-cache", "policy", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache policy %s: %v", pkg, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Candidate: "); ok && v != "(none)" {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in %s for %s", pkg, a.suiteNames(), a.arch)
}

// show returns the fields of pkg=ver's record.
func (a *apt) show(ctx context.Context, pkg, ver string) (map[string]string, error) {
	out, err := a.cmd(ctx, "apt-cache", "show", pkg+"="+ver).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache show %s=%s: %v", pkg, ver, err)
	}
	fields := map[string]string{}
	key := ""
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			break // first record only
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key != "" {
				fields[key] += "\n" + line
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if ok {
			key = k
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields, nil
}

type debRef struct {
	Package, Version, File, SHA256 string
}

// closure lists pkg=ver and the packages it depends on, as far as follow
// says (depPackage for kernels).
func (a *apt) closure(ctx context.Context, pkg, ver string, follow func(string) bool) ([]debRef, error) {
	lookup := func(pkg, ver string) (map[string]string, error) {
		if ver == "" {
			v, err := a.candidate(ctx, pkg)
			if err != nil {
				return nil, err
			}
			ver = v
		}
		f, err := a.show(ctx, pkg, ver)
		if f != nil {
			f["Version"] = ver
		}
		return f, err
	}
	return closure(pkg, ver, lookup, follow)
}

// closure walks the dependencies of pkg=ver: lookup returns a package's
// record (ver "" = the candidate's; its Version field says which); a
// dependency is followed, with the version it pins if any, when follow
// says so. Alternatives: the first.
func closure(pkg, ver string, lookup func(pkg, ver string) (map[string]string, error), follow func(string) bool) ([]debRef, error) {
	var out []debRef
	seen := map[string]bool{}
	var visit func(pkg, ver string, depth int) error
	visit = func(pkg, ver string, depth int) error {
		if seen[pkg] || depth > 5 {
			return nil
		}
		seen[pkg] = true
		f, err := lookup(pkg, ver)
		if err != nil {
			return err
		}
		out = append(out, debRef{Package: pkg, Version: f["Version"], File: debFile(f), SHA256: f["SHA256"]})
		for _, dep := range splitDepends(f["Pre-Depends"] + "," + f["Depends"]) {
			if follow(dep.name) {
				if err := visit(dep.name, dep.exact, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := visit(pkg, ver, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// debFile is the name apt-get download gives the package of a record:
// NAME_VERSION_ARCH.deb with the version's epoch colon escaped (the pool's
// file name has no epoch).
func debFile(f map[string]string) string {
	if f["Package"] == "" || f["Version"] == "" || f["Architecture"] == "" {
		return filepath.Base(f["Filename"])
	}
	return f["Package"] + "_" + strings.ReplaceAll(f["Version"], ":", "%3a") + "_" + f["Architecture"] + ".deb"
}

type dep struct{ name, exact string }

// splitDepends parses a Depends field, taking the first of alternatives.
func splitDepends(s string) []dep {
	var out []dep
	for _, d := range strings.Split(s, ",") {
		d, _, _ = strings.Cut(d, "|")
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		name, rest, _ := strings.Cut(d, " ")
		name, _, _ = strings.Cut(name, ":")
		var exact string
		if v, ok := strings.CutPrefix(strings.TrimSpace(rest), "(= "); ok {
			exact = strings.TrimSuffix(v, ")")
		}
		out = append(out, dep{name, exact})
	}
	return out
}

// fetch downloads pkg=ver and its kernel dependencies into CACHE/debs
// (skipping files already there with the right checksum) and unpacks them
// into CACHE/kernels/PKG_VER.
func (a *apt) fetch(ctx context.Context, pkg, ver string) (*kernelImage, error) {
	refs, err := a.closure(ctx, pkg, ver, depPackage.MatchString)
	if err != nil {
		return nil, err
	}
	// One package at a time: a metapackage the mirror lacks (it has
	// happened: a 404 for linux-image-cloud-amd64 while the image it
	// depends on was there) does not matter as long as vmlinuz arrives.
	have, failures := a.download(ctx, refs)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	root := filepath.Join(a.cfg.cache, "kernels", sanitize(pkg+"_"+ver))
	if err := unpack(ctx, filepath.Join(a.cfg.cache, "debs"), have, root); err != nil {
		return nil, err
	}
	img := &kernelImage{Package: pkg, Version: ver, Root: root}
	if err := img.locate(); err != nil {
		if len(failures) > 0 {
			return nil, errors.New(strings.Join(failures, "; "))
		}
		return nil, fmt.Errorf("%s %s: %v", pkg, ver, err)
	}
	for _, f := range failures {
		img.Notes = append(img.Notes, f+" (not needed: the kernel is there without it)")
	}
	return img, nil
}

// download fetches refs into CACHE/debs, one at a time, skipping files
// already there with the right checksum. It returns the packages that are
// there and why the others are not.
func (a *apt) download(ctx context.Context, refs []debRef) (have []debRef, failures []string) {
	debs := filepath.Join(a.cfg.cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, []string{err.Error()}
	}
	for _, r := range refs {
		if r.File != "" && checksumOK(filepath.Join(debs, r.File), r.SHA256) {
			have = append(have, r)
			continue
		}
		t0 := time.Now()
		c := a.cmd(ctx, "apt-get", "-q", "download", r.Package+"="+r.Version)
		c.Dir = debs
		out, err := c.CombinedOutput()
		if err == nil && r.File != "" && !checksumOK(filepath.Join(debs, r.File), r.SHA256) {
			err = fmt.Errorf("%s is missing or has the wrong checksum after download", r.File)
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("apt-get download %s=%s: %v: %s", r.Package, r.Version, err, aptError(string(out))))
			continue
		}
		have = append(have, r)
		logf("downloaded %s %s (%s) in %s", r.Package, r.Version, a.arch, round(time.Since(t0)))
	}
	return have, failures
}

// unpack extracts the packages (files in debs) into root with dpkg-deb
// -x, unless root holds exactly them already.
func unpack(ctx context.Context, debs string, have []debRef, root string) error {
	stamp := root + ".unpacked"
	want := ""
	for _, r := range have {
		want += r.File + "\n"
	}
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return nil
	}
	os.RemoveAll(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, r := range have {
		f := filepath.Join(debs, r.File)
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", f, root).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %v: %s", f, err, out)
		}
	}
	return os.WriteFile(stamp, []byte(want), 0o644)
}

// locate finds vmlinuz and the module tree: /boot/vmlinuz-RELEASE and
// /lib/modules/RELEASE in the classic layout, /usr/lib/modules/RELEASE/vmlinuz
// in the newer one.
func (img *kernelImage) locate() error {
	var cands []string
	for _, g := range []string{"boot/vmlinuz-*", "usr/lib/modules/*/vmlinuz", "lib/modules/*/vmlinuz", "usr/lib/linux/*/vmlinuz"} {
		m, _ := filepath.Glob(filepath.Join(img.Root, g))
		cands = append(cands, m...)
	}
	if len(cands) == 0 {
		return errors.New("no vmlinuz in the package")
	}
	sort.Strings(cands)
	img.Vmlinuz = cands[0]
	if strings.HasPrefix(filepath.Base(img.Vmlinuz), "vmlinuz-") {
		img.Release = strings.TrimPrefix(filepath.Base(img.Vmlinuz), "vmlinuz-")
	} else {
		img.Release = filepath.Base(filepath.Dir(img.Vmlinuz))
	}
	for _, d := range []string{"lib/modules", "usr/lib/modules"} {
		p := filepath.Join(img.Root, d, img.Release)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			img.Modules = p
			break
		}
	}
	return nil
}

func checksumOK(path, want string) bool {
	if want == "" {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == want
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ':' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// aptError picks apt's error lines out of its output.
func aptError(out string) string {
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "E: ") {
			errs = append(errs, strings.TrimPrefix(l, "E: "))
		}
	}
	if len(errs) == 0 {
		return lastLines(out, 2)
	}
	return strings.Join(errs, "; ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}
