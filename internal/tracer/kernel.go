package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// checkPrivileges names the capabilities that are missing, before any BPF
// call fails with a bare EPERM.
func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // cannot tell; let the kernel decide
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	if has(unix.CAP_SYS_ADMIN) {
		return nil
	}
	var missing []string
	if !has(unix.CAP_BPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(unix.CAP_PERFMON) {
		missing = append(missing, "CAP_PERFMON")
	}
	if len(missing) > 0 {
		return fmt.Errorf("permission denied: tuxscope needs root, or CAP_BPF and CAP_PERFMON (missing: %s)", strings.Join(missing, ", "))
	}
	return nil
}

// tracefsDirs are where the kernel's tracing file system can be; cilium/ebpf
// reads tracepoint ids from the first that is mounted.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// ensureTracefs mounts tracefs when no one has: a fresh machine may have
// none, and tracepoints cannot be attached without it.
func ensureTracefs() error {
	for _, d := range tracefsDirs {
		if _, err := os.Stat(d + "/events"); err == nil {
			return nil
		}
	}
	if err := unix.Mount("tracefs", tracefsDirs[0], "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it on %s failed (%v): mount it with 'mount -t tracefs tracefs %s'", tracefsDirs[0], err, tracefsDirs[0])
	}
	return nil
}

// loadError turns a failed load into one line that says what to do.
func loadError(im Impl, err error) error {
	var ve *ebpf.VerifierError
	switch {
	case im == implFentry && errors.Is(err, unix.EPERM):
		return errors.New("fentry: refused by the kernel (EPERM): BPF trampolines are not allowed here")
	case im == implFentry && (errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EOPNOTSUPP)):
		return fmt.Errorf("fentry: not supported by this kernel (%v)", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("the kernel refused to load tuxscope's BPF programs (EPERM): run as root or with CAP_BPF and CAP_PERFMON; under lockdown=confidentiality BPF tracing is not allowed: %w", err)
	case errors.As(err, &ve):
		return fmt.Errorf("the kernel's verifier rejected a tuxscope BPF program (please report this with your kernel version): %v", ve)
	}
	return fmt.Errorf("loading tuxscope's BPF programs: %w", err)
}
