// Package deploy holds no code: its test parses the deployment files
// beside it (Kubernetes, systemd, Prometheus, Grafana) and holds them to
// the README's Deploy section, so the two cannot drift. It needs no root;
// its dependencies (a YAML parser) are test-only and never linked into
// tuxscope (make check-deps).
package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// readme is the README's Deploy section.
func readme(t *testing.T) string { return readmeSection(t, "## Deploy") }

// readmeSection is the README's section under heading (e.g. "## Deploy"),
// up to the next heading of its level or above.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	s = s[i+1+len(heading):]
	level := heading[:strings.IndexByte(heading, ' ')]
	for j := 0; j < len(s); {
		k := strings.Index(s[j:], "\n#")
		if k < 0 {
			break
		}
		j += k + 1
		hashes := len(s[j:]) - len(strings.TrimLeft(s[j:], "#"))
		if hashes <= len(level) && strings.HasPrefix(s[j+hashes:], " ") {
			return s[:j]
		}
	}
	return s
}

// tableColumn is the first column of the README table whose header's
// first cell is header, backticks removed, in order.
func tableColumn(t *testing.T, section, header string) []string {
	t.Helper()
	var out []string
	in := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "| "+header+" |"):
			in = true
		case in && strings.HasPrefix(line, "|---"):
		case in && strings.HasPrefix(line, "| "):
			cell := strings.TrimSpace(strings.Split(line, "|")[1])
			out = append(out, strings.Trim(cell, "`"))
		case in:
			return out
		}
	}
	if len(out) == 0 {
		t.Fatalf("README's Deploy section has no table headed %q", header)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// readmeImage is the image the README says the DaemonSet runs.
func readmeImage(t *testing.T) string {
	m := regexp.MustCompile("The DaemonSet runs the image `([^`]+)`").FindStringSubmatch(strings.ReplaceAll(readme(t), "\n", " "))
	if m == nil {
		t.Fatal("README's Deploy section does not say which image the DaemonSet runs")
	}
	return m[1]
}

// The parts of the manifests the test checks.
type (
	object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   meta   `yaml:"metadata"`
		Spec       struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata meta    `yaml:"metadata"`
				Spec     podSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	meta struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	podSpec struct {
		ServiceAccountName string `yaml:"serviceAccountName"`
		HostPID            bool   `yaml:"hostPID"`
		HostNetwork        bool   `yaml:"hostNetwork"`
		Tolerations        []struct {
			Key      string `yaml:"key"`
			Operator string `yaml:"operator"`
		} `yaml:"tolerations"`
		Containers []container `yaml:"containers"`
		Volumes    []struct {
			Name     string `yaml:"name"`
			HostPath *struct {
				Path string `yaml:"path"`
				Type string `yaml:"type"`
			} `yaml:"hostPath"`
		} `yaml:"volumes"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			ContainerPort int `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			RunAsUser                *int  `yaml:"runAsUser"`
			Privileged               *bool `yaml:"privileged"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Add  []string `yaml:"add"`
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port int    `yaml:"port"`
		} `yaml:"httpGet"`
	}
)

// manifests parses every YAML document of a file: each must be valid
// YAML, and is decoded both generically and into object.
func manifests(t *testing.T, path string) []object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	generic := yaml.NewDecoder(bytes.NewReader(b))
	typed := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var m map[string]any
		if err := generic.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var o object
		if err := typed.Decode(&o); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		objs = append(objs, o)
	}
	return objs
}

func TestDaemonSet(t *testing.T) {
	objs := manifests(t, "kubernetes/daemonset.yaml")
	var kinds []string
	var ds *object
	for i, o := range objs {
		kinds = append(kinds, o.APIVersion+" "+o.Kind)
		if o.Kind == "DaemonSet" {
			ds = &objs[i]
		}
	}
	if want := []string{"v1 Namespace", "v1 ServiceAccount", "apps/v1 DaemonSet"}; !slices.Equal(kinds, want) {
		t.Fatalf("objects %q, want %q", kinds, want)
	}
	ns := objs[0].Metadata.Name
	if objs[1].Metadata.Namespace != ns || ds.Metadata.Namespace != ns || ds.Spec.Template.Spec.ServiceAccountName != objs[1].Metadata.Name {
		t.Errorf("namespace %q, service account %s/%s, DaemonSet in %q using %q", ns, objs[1].Metadata.Namespace, objs[1].Metadata.Name, ds.Metadata.Namespace, ds.Spec.Template.Spec.ServiceAccountName)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the selector's %s=%s is not on the pod template", k, v)
		}
	}
	if len(ds.Spec.Selector.MatchLabels) == 0 {
		t.Error("the DaemonSet has no selector")
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostPID || !pod.HostNetwork {
		t.Errorf("hostPID %v, hostNetwork %v: want both", pod.HostPID, pod.HostNetwork)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tl struct {
		Key      string `yaml:"key"`
		Operator string `yaml:"operator"`
	}) bool {
		return tl.Key == "" && tl.Operator == "Exists"
	}) {
		t.Error("no toleration of every taint (operator Exists, no key): it would not run on every node")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if want := readmeImage(t); c.Image != want {
		t.Errorf("image %q, README says %q", c.Image, want)
	}

	sc := c.SecurityContext
	var caps []string
	for _, a := range sc.Capabilities.Add {
		caps = append(caps, "CAP_"+a)
	}
	if want := tableColumn(t, readme(t), "capability"); !slices.Equal(sorted(caps), sorted(want)) {
		t.Errorf("capabilities added %q, README lists %q", caps, want)
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("capabilities dropped %q, want [ALL]", sc.Capabilities.Drop)
	}
	if sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("securityContext %+v: want uid 0, not privileged, no escalation, read-only root", sc)
	}

	volumes := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a host path", v.Name)
			continue
		}
		volumes[v.Name] = v.HostPath.Path
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.MountPath)
		if !m.ReadOnly {
			t.Errorf("%s is mounted read-write", m.MountPath)
		}
		if volumes[m.Name] != m.MountPath {
			t.Errorf("%s mounts host path %q: want the same path", m.MountPath, volumes[m.Name])
		}
	}
	if len(volumes) != len(c.VolumeMounts) {
		t.Errorf("%d volumes, %d mounts", len(volumes), len(c.VolumeMounts))
	}
	if want := tableColumn(t, readme(t), "mount"); !slices.Equal(sorted(mounts), sorted(want)) {
		t.Errorf("mounts %q, README lists %q", mounts, want)
	}

	// serve, on port 9464 of the node's IP, asking the mounted CRI socket;
	// probes and scrape annotations on the same port.
	if len(c.Args) == 0 || c.Args[0] != "serve" || !slices.Contains(c.Args, "--listen=$(NODE_IP):9464") {
		t.Errorf("args %q: want serve --listen=$(NODE_IP):9464", c.Args)
	}
	for _, a := range c.Args {
		if sock, ok := strings.CutPrefix(a, "--cri-socket="); ok && !slices.Contains(mounts, sock) {
			t.Errorf("--cri-socket %s is not mounted", sock)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9464 {
		t.Errorf("ports %+v, want 9464", c.Ports)
	}
	for name, p := range map[string]*probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != 9464 {
			t.Errorf("%s probe %+v, want GET /healthz on 9464", name, p)
		}
	}
	ann := ds.Spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "9464" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v: want prometheus.io/scrape true, port 9464, path /metrics", ann)
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
			t.Errorf("no %s request or limit", r)
		}
	}
}

// unit parses a systemd unit: each key's values, in order.
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", path, line)
			}
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys
}

func TestSystemdUnit(t *testing.T) {
	const path = "systemd/tuxscope.service"
	u := unit(t, path)
	want := sorted(tableColumn(t, readme(t), "capability"))
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		v := u["Service."+k]
		if len(v) != 1 || !slices.Equal(sorted(strings.Fields(v[0])), want) {
			t.Errorf("%s=%q, README lists %q", k, v, want)
		}
	}
	for k, v := range map[string]string{
		"Service.ExecStart": "/usr/local/bin/tuxscope serve --listen 127.0.0.1:9464", "Service.NoNewPrivileges": "yes",
		"Service.ProtectSystem": "strict", "Service.ProtectHome": "yes", "Service.PrivateTmp": "yes",
		"Service.ProtectControlGroups": "yes", "Service.LimitMEMLOCK": "infinity", "Install.WantedBy": "multi-user.target",
	} {
		if got := u[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skipf("the unit's keys are checked, but not by systemd: no systemd-analyze here (%v)", err)
	}
	// systemd-analyze verify wants ExecStart's binary to exist: point it
	// at this test's own executable, in a copy of the unit.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	copyPath := filepath.Join(t.TempDir(), "tuxscope.service")
	os.WriteFile(copyPath, bytes.ReplaceAll(b, []byte("/usr/local/bin/tuxscope"), []byte(self)), 0o644)
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", copyPath)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// Warnings (an unknown key, a bad value) exit 0: any output fails.
	if err := cmd.Run(); err != nil || stderr.Len() != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
}

type scrapeConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		KubernetesSDConfigs []struct {
			Role       string `yaml:"role"`
			Namespaces struct {
				Names []string `yaml:"names"`
			} `yaml:"namespaces"`
		} `yaml:"kubernetes_sd_configs"`
		RelabelConfigs []struct {
			SourceLabels []string `yaml:"source_labels"`
			Action       string   `yaml:"action"`
			Regex        string   `yaml:"regex"`
			TargetLabel  string   `yaml:"target_label"`
			Replacement  string   `yaml:"replacement"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

func TestScrapeConfig(t *testing.T) {
	const path = "prometheus/scrape.yaml"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg scrapeConfig
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true) // every key the file has is one this test knows
	if err := d.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 2 {
		t.Fatalf("%d scrape configs, want the static one and the Kubernetes one", len(cfg.ScrapeConfigs))
	}
	static, kube := cfg.ScrapeConfigs[0], cfg.ScrapeConfigs[1]
	if static.MetricsPath != "/metrics" || len(static.StaticConfigs) == 0 {
		t.Errorf("static job %+v: want metrics_path /metrics and targets", static)
	}
	for _, sc := range static.StaticConfigs {
		for _, target := range sc.Targets {
			if !strings.HasSuffix(target, ":9464") {
				t.Errorf("static target %q is not on port 9464", target)
			}
		}
	}
	ds := manifests(t, "kubernetes/daemonset.yaml")[2]
	if len(kube.KubernetesSDConfigs) != 1 || kube.KubernetesSDConfigs[0].Role != "pod" || !slices.Equal(kube.KubernetesSDConfigs[0].Namespaces.Names, []string{ds.Metadata.Namespace}) {
		t.Errorf("Kubernetes discovery %+v: want role pod in namespace %s", kube.KubernetesSDConfigs, ds.Metadata.Namespace)
	}
	// The pods are kept by their scrape annotation, and the annotations
	// give port and path, which the DaemonSet sets to 9464 and /metrics.
	used := map[string]string{}
	for _, r := range kube.RelabelConfigs {
		for _, l := range r.SourceLabels {
			used[l] = r.Action + " " + r.Regex + " " + r.TargetLabel
		}
	}
	for label, want := range map[string]string{
		"__meta_kubernetes_pod_annotation_prometheus_io_scrape": `keep true `,
		"__meta_kubernetes_pod_annotation_prometheus_io_path":   `replace (.+) __metrics_path__`,
		"__meta_kubernetes_pod_annotation_prometheus_io_port":   `replace ([^:]+)(?::\d+)?;(\d+) __address__`,
	} {
		if used[label] != want {
			t.Errorf("relabelling of %s: %q, want %q", label, used[label], want)
		}
	}
	ann := ds.Spec.Template.Metadata.Annotations
	if ann["prometheus.io/port"] != "9464" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("the DaemonSet's annotations %v", ann)
	}

	// Prometheus' own check, on the static job (Debian's promtool is built
	// without Kubernetes discovery, so it cannot read the other).
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skipf("the scrape config's keys are checked, but not by Prometheus: no promtool here (%v)", err)
	}
	staticOnly := string(b[:bytes.Index(b, []byte("\n  # The pods of"))]) + "\n"
	if !strings.Contains(staticOnly, "job_name: tuxscope\n") || strings.Contains(staticOnly, "kubernetes_sd") {
		t.Fatalf("cannot cut the static job out of %s", path)
	}
	promtool(t, "config", "prometheus.yml", staticOnly)
}

// promtool runs `promtool check what` on a file of that content.
func promtool(t *testing.T, what, name, content string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", what, p).CombinedOutput(); err != nil {
		t.Errorf("promtool check %s: %v\n%s\n%s", what, err, out, content)
	}
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

var metricName = regexp.MustCompile(`\btuxscope_[a-z_]+`)

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/tuxscope-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("title %q uid %q, %d panels", d.Title, d.UID, len(d.Panels))
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("template variables %v: want datasource and instance", vars)
	}

	// The metrics the README documents; histograms are queried by their
	// _bucket series.
	// The table of the serve section: a row may name several metrics
	// ("`a`, `b`"), its type may say more ("gauge, 1").
	documented := map[string]string{}
	section := readmeSection(t, "### Agent: `tuxscope serve`")
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`tuxscope_") {
			continue
		}
		typ, _, _ := strings.Cut(strings.TrimSpace(cells[2]), ",")
		for _, n := range strings.Split(cells[1], ",") {
			documented[strings.Trim(strings.TrimSpace(n), "`")] = typ
		}
	}
	if len(documented) < 11 {
		t.Fatalf("the README's serve section documents %d metrics: %v", len(documented), documented)
	}
	ids := map[int]bool{}
	used := map[string]bool{}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %+v, %d queries", p.Title, p.Datasource, len(p.Targets))
		}
		for i, q := range p.Targets {
			if !strings.Contains(q.Expr, `{instance=~"$instance"}`) {
				t.Errorf("panel %q: %s ignores the node selector", p.Title, q.Expr)
			}
			found := metricName.FindAllString(q.Expr, -1)
			if len(found) == 0 {
				t.Errorf("panel %q: %s queries no tuxscope metric", p.Title, q.Expr)
			}
			for _, m := range found {
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && documented[b] == "histogram" {
						base = b
					}
				}
				if _, ok := documented[base]; !ok {
					t.Errorf("panel %q queries %s, which the README's metric table does not document", p.Title, m)
				}
				if base != m && !strings.Contains(q.Expr, "histogram_quantile(") {
					t.Errorf("panel %q: %s without histogram_quantile", p.Title, m)
				}
				used[base] = true
			}
			expr := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*").Replace(q.Expr)
			fmt.Fprintf(&rules, "      - record: panel%d_%d\n        expr: %q\n", p.ID, i, expr)
		}
	}
	for n := range documented {
		if !used[n] {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skipf("the queries' metrics are checked, but not their PromQL: no promtool here (%v)", err)
	}
	// promtool parses each query as a recording rule's expression.
	promtool(t, "rules", "rules.yml", rules.String())
}
