package integration

import (
	"encoding/json"
	"fmt"
	"github.com/tuxscope/tuxscope/internal/event"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// freeLoopbackPort is a 127.0.0.1 port nothing listens on (it was free a
// moment ago).
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServe starts `tuxscope serve --listen 127.0.0.1:0 args...` and
// returns it, its stderr and the address it serves on, once attached.
func startServe(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer, string) {
	t.Helper()
	if testBackend != "" {
		args = append([]string{"--backend", testBackend}, args...)
	}
	cmd := exec.Command(tuxscopeBin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	waitUntil(t, "tuxscope serve to attach", func() bool { return strings.Contains(stderr.String(), "tuxscope: attached") })
	m := regexp.MustCompile(`tuxscope: serving http://(\S+)/metrics`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("tuxscope serve did not say where it serves:\n%s", stderr.String())
	}
	return cmd, stderr, m[1]
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// promSample is one element of a Prometheus instant-query vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float(t *testing.T) float64 {
	t.Helper()
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		t.Fatalf("sample value %v: %v", s.Value, err)
	}
	return v
}

// promQuery runs an instant query against Prometheus' HTTP API.
func promQuery(t *testing.T, prom, q string) []promSample {
	t.Helper()
	code, body := httpGet(t, prom+"/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != 200 || r.Status != "success" || r.Data.ResultType != "vector" {
		t.Fatalf("query %s: HTTP %d, %v: %s", q, code, err, body)
	}
	return r.Data.Result
}

// promOne is the value of a query that must give exactly one series,
// whose labels (besides its name, job and instance) must be exactly want.
func promOne(t *testing.T, prom, q string, want map[string]string) float64 {
	t.Helper()
	res := promQuery(t, prom, q)
	if len(res) != 1 {
		t.Fatalf("query %s: %d series, want 1: %v", q, len(res), res)
	}
	got := map[string]string{}
	for k, v := range res[0].Metric {
		if k != "job" && k != "instance" && k != "__name__" {
			got[k] = v
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("query %s: labels %v, want %v", q, got, want)
	}
	return res[0].float(t)
}

// startPrometheus runs Debian's prometheus server (not the system
// service: its own config and data directory, on a free loopback port)
// scraping target every second, and returns its base URL once it is
// ready and has scraped target successfully.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("needs the prometheus server (Debian's prometheus package; make test-deps installs it)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tuxscope
    static_configs:
      - targets: ['%s']
`, target)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.console.templates="+dir, "--web.console.libraries="+dir)
	logs := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	prom := "http://" + addr
	waitUntil(t, "prometheus to be ready", func() bool {
		resp, err := http.Get(prom + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	waitUntil(t, "prometheus to scrape tuxscope serve", func() bool {
		res := promQuery(t, prom, `up{job="tuxscope"}`)
		return len(res) == 1 && res[0].float(t) == 1
	})
	return prom
}

// TestServePrometheus: the real Prometheus server scrapes tuxscope serve;
// after N connections to a listener and M refused connects, its HTTP API
// gives exactly those counts, bytes and labels.
func TestServePrometheus(t *testing.T) {
	requireRoot(t)
	const n, m = 5, 3
	srv, port := server(t, "-n", strconv.Itoa(n), "-recv", "100", "-send", "200", "-quiet")
	closed := freeLoopbackPort(t)
	tux, stderr, addr := startServe(t, "--port", fmt.Sprintf("%d,%d", port, closed))
	prom := startPrometheus(t, addr)

	// Before any traffic: every loss reason at zero, build info.
	if got := promQuery(t, prom, `tuxscope_events_lost_total`); len(got) != int(event.NumLossReasons) {
		t.Errorf("tuxscope_events_lost_total: %d series, want %d (one per reason): %v", len(got), event.NumLossReasons, got)
	}
	for r := range event.NumLossReasons {
		why := r.Key()
		if v := promOne(t, prom, `tuxscope_events_lost_total{reason="`+why+`"}`, map[string]string{"reason": why}); v != 0 {
			t.Errorf("events lost (%s): %v", why, v)
		}
	}
	info := promQuery(t, prom, `tuxscope_build_info`)
	var u unix.Utsname
	unix.Uname(&u)
	if len(info) != 1 || info[0].float(t) != 1 || info[0].Metric["kernel"] != unix.ByteSliceToString(u.Release[:]) ||
		info[0].Metric["version"] == "" || !strings.HasPrefix(info[0].Metric["backend"], "connect:") {
		t.Errorf("tuxscope_build_info: %v", info)
	}

	c := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-count", strconv.Itoa(n), "-send", "100", "-recv", "200")
	c.expect("CONNECTED")
	srv.expect("ACCEPTED")
	for range m {
		r := client(t, "-addr", fmt.Sprintf("127.0.0.1:%d", closed))
		if got := r.expect("FAILED"); got[0] != strconv.Itoa(int(unix.ECONNREFUSED)) {
			t.Fatalf("refused client: FAILED %v", got)
		}
	}
	// tuxscope has counted it all (its own endpoint), then Prometheus
	// scrapes once more.
	const cli = `comm="tsclient",container="",direction="outbound",namespace="",peer="127.0.0.1",pod=""`
	const srvLabels = `comm="tsserver",container="",direction="inbound",namespace="",peer="127.0.0.1",pod=""`
	waitUntil(t, "tuxscope serve to count the traffic", func() bool {
		_, body := httpGet(t, "http://"+addr+"/metrics")
		return strings.Contains(body, fmt.Sprintf("tuxscope_connections_total{%s} %d\n", cli, n+m)) &&
			strings.Contains(body, fmt.Sprintf("tuxscope_connection_duration_seconds_count{%s} %d\n", srvLabels, n)) &&
			strings.Contains(body, fmt.Sprintf("tuxscope_connection_duration_seconds_count{%s} %d\n", cli, n))
	})
	counted := time.Now()
	waitUntil(t, "a scrape after the traffic", func() bool {
		res := promQuery(t, prom, `timestamp(up{job="tuxscope"})`)
		return len(res) == 1 && res[0].float(t) > float64(counted.UnixMilli())/1000
	})

	out := map[string]string{"comm": "tsclient", "direction": "outbound", "peer": "127.0.0.1"}
	in := map[string]string{"comm": "tsserver", "direction": "inbound", "peer": "127.0.0.1"}
	refused := map[string]string{"comm": "tsclient", "direction": "outbound", "peer": "127.0.0.1", "reason": "refused"}
	for _, tt := range []struct {
		q      string
		labels map[string]string
		want   float64
	}{
		{`tuxscope_connections_total{direction="outbound"}`, out, n + m},
		{`tuxscope_connections_total{direction="inbound"}`, in, n},
		{`tuxscope_connection_failures_total`, refused, m},
		{`tuxscope_sent_bytes_total{direction="outbound"}`, out, 100 * n},
		{`tuxscope_received_bytes_total{direction="outbound"}`, out, 200 * n},
		{`tuxscope_sent_bytes_total{direction="inbound"}`, in, 200 * n},
		{`tuxscope_received_bytes_total{direction="inbound"}`, in, 100 * n},
		{`tuxscope_handshake_latency_seconds_count`, out, n},
		{`tuxscope_handshake_latency_seconds_bucket{le="+Inf"}`, map[string]string{"comm": "tsclient", "direction": "outbound", "peer": "127.0.0.1", "le": "+Inf"}, n},
		{`tuxscope_connection_duration_seconds_count{direction="outbound"}`, out, n},
		{`tuxscope_connection_duration_seconds_count{direction="inbound"}`, in, n},
		{`sum(tuxscope_events_lost_total)`, map[string]string{}, 0},
		{`tuxscope_series_folded_total`, map[string]string{}, 0},
	} {
		if got := promOne(t, prom, tt.q, tt.labels); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.q, got, tt.want)
		}
	}
	// Loopback handshakes take well under 10 ms.
	if got := promOne(t, prom, `tuxscope_handshake_latency_seconds_bucket{le="0.01"}`,
		map[string]string{"comm": "tsclient", "direction": "outbound", "peer": "127.0.0.1", "le": "0.01"}); got != n {
		t.Errorf("handshakes under 10ms: %v, want %d", got, n)
	}

	if code, body := httpGet(t, "http://"+addr+"/healthz"); code != 200 || !strings.HasPrefix(body, "ok: ") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	tux.Process.Signal(syscall.SIGTERM)
	if err := tux.Wait(); err != nil {
		t.Errorf("tuxscope serve exited with %v:\n%s", err, stderr.String())
	}
}
