package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/tracer"
)

const doctorUsage = `Usage: tuxscope doctor [--format table|json] [--btf FILE]

Check what this kernel lets tuxscope do: kernel version, BTF, lockdown,
ring buffer, and for each backend (fentry, kprobe, tracepoint) and each hook
point (connect, accept) whether it loads and attaches here, or why not; and
what --backend auto would choose. Exit code 1 when tuxscope cannot run here.
`

func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	format := fs.String("format", "table", "")
	btfPath := fs.String("btf", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return writeText(stdout, stderr, "tuxscope doctor", doctorUsage)
		}
		fmt.Fprintf(stderr, "tuxscope doctor: %v\nRun 'tuxscope doctor --help' for usage.\n", err)
		return exitUsage
	}
	f, err := output.ParseFormat(*format)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "tuxscope doctor: %v\nRun 'tuxscope doctor --help' for usage.\n", err)
		return exitUsage
	}

	r := tracer.Doctor(*btfPath)
	var text []byte
	if f == output.FormatJSON {
		b, err := json.Marshal(r)
		if err != nil {
			fmt.Fprintf(stderr, "tuxscope doctor: %v\n", err)
			return exitError
		}
		text = append(b, '\n')
	} else {
		var b strings.Builder
		writeDoctorTable(&b, r)
		text = []byte(b.String())
	}
	if code := writeText(stdout, stderr, "tuxscope doctor", string(text)); code != exitOK {
		return code
	}
	if !r.Usable() {
		return exitError
	}
	return exitOK
}

func yesNo(c tracer.Check) string {
	if c.OK {
		return "yes: " + c.Detail
	}
	return "no: " + c.Detail
}

// acceptLine shows the kernel's inet_csk_accept signature, e.g.
// "inet_csk_accept(sk, arg): Linux 6.10 and later", or, when the doctor
// could not tell it, why.
func acceptLine(sig string) string {
	if params := strings.TrimPrefix(sig, "inet_csk_accept"); strings.HasPrefix(params, "(") {
		return "inet_csk_accept" + params
	}
	return "inet_csk_accept signature unknown: " + sig
}

func writeDoctorTable(w io.Writer, r *tracer.Report) {
	fmt.Fprintf(w, "%-12s %s\n", "kernel", r.Kernel)
	fmt.Fprintf(w, "%-12s %s\n", "BTF", yesNo(r.BTF))
	fmt.Fprintf(w, "%-12s %s\n", "lockdown", r.Lockdown)
	fmt.Fprintf(w, "%-12s %s\n", "privileges", yesNo(r.Privileges))
	if r.Capabilities != nil || r.Requirements != nil {
		caps := strings.Join(r.Capabilities, ", ")
		if caps == "" {
			caps = "none"
		}
		fmt.Fprintf(w, "%-12s %s\n", "capabilities", caps)
	}
	for _, q := range r.Requirements {
		if len(q.Missing) > 0 {
			fmt.Fprintf(w, "%-12s %s for %s: %s\n", "missing", strings.Join(q.Missing, ", "), q.Feature, q.Note)
		}
	}
	fmt.Fprintf(w, "%-12s %s\n", "ring buffer", yesNo(r.RingBuffer))
	fmt.Fprintf(w, "%-12s %s\n", "kprobes", yesNo(r.Kprobes))
	if r.AcceptSignature != "" {
		fmt.Fprintf(w, "%-12s %s\n", "accept()", acceptLine(r.AcceptSignature))
	}
	if r.IOUring.Detail != "" { // "": no kernel BTF to tell
		fmt.Fprintf(w, "%-12s %s\n", "io_uring", yesNo(r.IOUring))
	}
	fmt.Fprintf(w, "%-12s %s\n", "state", yesNo(r.State))
	fmt.Fprintf(w, "%-12s %s\n", "dns", yesNo(r.DNS))
	if r.UDP.Detail != "" { // "": not checked (an older report)
		fmt.Fprintf(w, "%-12s %s\n", "udp", yesNo(r.UDP))
	}
	if r.Retransmits.Detail != "" { // "": not checked (an older report)
		fmt.Fprintf(w, "%-12s %s\n", "retransmits", yesNo(r.Retransmits))
	}
	if r.Resets.Detail != "" {
		fmt.Fprintf(w, "%-12s %s\n", "resets", yesNo(r.Resets))
	}
	fmt.Fprintln(w)
	for _, b := range r.Backends {
		for i, p := range b.Points {
			name := ""
			if i == 0 {
				name = string(b.Backend)
			}
			status := "no: " + p.Reason
			if p.OK {
				status = "yes: " + strings.Join(p.Hooks, ", ")
				if len(p.Skipped) > 0 {
					status += "; without " + strings.Join(p.Skipped, ", ")
				}
			}
			fmt.Fprintf(w, "%-12s %-8s %s\n", name, string(p.Point)+":", status)
		}
	}
	fmt.Fprintln(w)
	parts := make([]string, len(r.Auto))
	for i, a := range r.Auto {
		b := string(a.Backend)
		if b == "" {
			b = "nothing works"
		}
		parts[i] = fmt.Sprintf("%s: %s", a.Point, b)
	}
	fmt.Fprintf(w, "%-12s %s\n", "auto", strings.Join(parts, ", "))
}

// writeText writes a command's whole output; a failed write (a full disk,
// /dev/full, a closed pipe) is one line on stderr and exit 1, not a
// silent exit 0.
func writeText(stdout, stderr io.Writer, prog, text string) int {
	if _, err := io.WriteString(stdout, text); err != nil {
		fmt.Fprintf(stderr, "%s: writing the output: %v\n", prog, err)
		return exitError
	}
	return exitOK
}
