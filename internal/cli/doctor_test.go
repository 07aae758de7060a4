package cli

import "testing"

// The accept() line names the signature, or says it is unknown and why;
// an error text is never glued to the function's name.
func TestAcceptLine(t *testing.T) {
	for sig, want := range map[string]string{
		"(sk, arg): Linux 6.10 and later":                             "inet_csk_accept(sk, arg): Linux 6.10 and later",
		"(sk, flags, err, kern): before Linux 6.10":                   "inet_csk_accept(sk, flags, err, kern): before Linux 6.10",
		"inet_csk_accept(sk, arg)":                                    "inet_csk_accept(sk, arg)",
		"fentry: inet_csk_accept not found in kernel BTF: not found":  "inet_csk_accept signature unknown: fentry: inet_csk_accept not found in kernel BTF: not found",
		"fentry: unknown inet_csk_accept signature with 3 parameters": "inet_csk_accept signature unknown: fentry: unknown inet_csk_accept signature with 3 parameters",
	} {
		if got := acceptLine(sig); got != want {
			t.Errorf("acceptLine(%q) = %q, want %q", sig, got, want)
		}
	}
}
