package tracer

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// loadError turns a failed load into one line that says what to do:
// first the capability that is missing, when one is (have), then a memory
// limit tuxscope could not raise (memlock, on kernels before 5.11).
func loadError(im Impl, err error, have Caps, memlock error) error {
	var ve *ebpf.VerifierError
	if errors.Is(err, unix.EPERM) {
		if why := refusedFor(im, have); why != "" {
			return errors.New(why)
		}
		if memlock != nil {
			return fmt.Errorf("the kernel refused tuxscope's BPF objects (EPERM): this kernel charges them to RLIMIT_MEMLOCK (before Linux 5.11) and raising it failed (%v): that needs CAP_SYS_RESOURCE (missing), or start tuxscope with a higher limit (ulimit -l unlimited, prlimit --memlock=unlimited)", memlock)
		}
	}
	switch {
	case im == implFentry && errors.Is(err, unix.EPERM):
		return errors.New("fentry: refused by the kernel (EPERM): BPF trampolines are not allowed here")
	case im == implFentry && (errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EOPNOTSUPP)):
		return fmt.Errorf("fentry: not supported by this kernel (%v)", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("the kernel refused to load tuxscope's BPF programs (EPERM) although this process has the capabilities they need; under lockdown=confidentiality BPF tracing is not allowed: %w", err)
	case errors.As(err, &ve):
		return fmt.Errorf("the kernel's verifier rejected a tuxscope BPF program (please report this with your kernel version): %v", ve)
	}
	return fmt.Errorf("loading tuxscope's BPF programs: %w", err)
}
