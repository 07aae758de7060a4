package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type doctorReport struct {
	Kernel   string            `json:"kernel"`
	BTF      struct{ OK bool } `json:"btf"`
	State    doctorCheck       `json:"state_tracepoint"`
	DNS      doctorCheck       `json:"dns_cgroup_hooks"`
	Retrans  doctorCheck       `json:"retransmit_tracepoints"`
	Resets   doctorCheck       `json:"reset_tracepoints"`
	IOUring  doctorCheck       `json:"io_uring"`
	Backends []struct {
		Backend string `json:"backend"`
		Points  []struct {
			Point  string   `json:"point"`
			OK     bool     `json:"ok"`
			Reason string   `json:"reason"`
			Hooks  []string `json:"hooks"`
		} `json:"points"`
	} `json:"backends"`
	Auto []struct {
		Point   string `json:"point"`
		Backend string `json:"backend"`
	} `json:"auto"`
}

type doctorCheck struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func runDoctor(t *testing.T) doctorReport {
	t.Helper()
	out, err := exec.Command(tuxscopeBin, "doctor", "--format", "json").Output()
	if err != nil {
		t.Fatalf("tuxscope doctor: %v", err)
	}
	var r doctorReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("doctor JSON %q: %v", out, err)
	}
	return r
}

// doctor tells the truth: every backend it says works attaches with
// `tuxscope net --backend X`, every one it says does not fails with the
// same reason, and auto picks the first that works, in fentry, kprobe,
// tracepoint order.
func TestDoctorTellsTheTruth(t *testing.T) {
	requireRoot(t)
	r := runDoctor(t)
	if !r.BTF.OK || len(r.Backends) != 3 || len(r.Auto) != 2 {
		t.Fatalf("incomplete report: %+v", r)
	}
	// Every kernel tuxscope supports has the raw and the classic form of
	// the state tracepoint, and the DNS cgroup hooks must load (a verifier
	// that rejects them would otherwise only cost the names, quietly).
	if !r.State.OK || !strings.HasPrefix(r.State.Detail, "raw_tracepoint:inet_sock_set_state, raw_tracepoint:inet_sock_set_state (nested copy); tracepoint:sock:inet_sock_set_state") {
		t.Errorf("state: %+v, want both the raw and the classic tracepoint", r.State)
	}
	// The tcp: tracepoints exist since 4.16, raw and classic.
	if !r.Retrans.OK || !strings.HasPrefix(r.Retrans.Detail, "raw_tracepoint:tcp_retransmit_skb, raw_tracepoint:tcp_retransmit_synack; tracepoint:tcp:tcp_retransmit_skb") {
		t.Errorf("retransmits: %+v", r.Retrans)
	}
	if !r.Resets.OK || !strings.HasPrefix(r.Resets.Detail, "raw_tracepoint:tcp_send_reset, raw_tracepoint:tcp_receive_reset; tracepoint:tcp:tcp_send_reset") {
		t.Errorf("resets: %+v", r.Resets)
	}
	if !r.DNS.OK && !strings.Contains(r.DNS.Detail, "no cgroup v2 hierarchy") {
		t.Errorf("DNS hooks: %+v", r.DNS)
	}
	wantAuto := map[string]string{}
	for _, b := range r.Backends {
		works := true
		for _, p := range b.Points {
			if p.OK && wantAuto[p.Point] == "" {
				wantAuto[p.Point] = b.Backend
			}
			if p.OK && len(p.Hooks) == 0 || !p.OK && p.Reason == "" {
				t.Errorf("%s/%s: ok=%v with hooks %v and reason %q", b.Backend, p.Point, p.OK, p.Hooks, p.Reason)
			}
			works = works && p.OK
		}
		cmd := exec.Command(tuxscopeBin, "net", "--backend", b.Backend)
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if works {
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, b.Backend+" to attach", func() bool { return strings.Contains(stderr.String(), "attached") })
			cmd.Process.Kill()
			cmd.Wait()
			want := "connect: " + b.Backend + ", accept: " + b.Backend + ", state: raw_tracepoint"
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("doctor says %s works, but --backend %s printed %q", b.Backend, b.Backend, stderr.String())
			}
			continue
		}
		cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("--backend %s (doctor: unusable) exit code %d, want 1", b.Backend, code)
		}
		for _, p := range b.Points {
			if !p.OK && strings.Contains(stderr.String(), p.Point+"s on this kernel") && !strings.Contains(stderr.String(), p.Reason) {
				t.Errorf("--backend %s failed with %q, doctor said %q", b.Backend, stderr.String(), p.Reason)
			}
		}
		if strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("--backend %s: error is not one line: %q", b.Backend, stderr.String())
		}
	}
	for _, a := range r.Auto {
		if a.Backend != wantAuto[a.Point] {
			t.Errorf("doctor says auto picks %s for %s, first working backend is %q", a.Backend, a.Point, wantAuto[a.Point])
		}
	}
	t.Logf("kernel %s: auto picks %v", r.Kernel, r.Auto)
}
