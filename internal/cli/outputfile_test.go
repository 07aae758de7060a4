package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/output"
)

func TestParseOutput(t *testing.T) {
	tests := []struct {
		args  []string
		want  output.FileOptions
		quiet bool
	}{
		{nil, output.FileOptions{}, false},
		{[]string{"--output", "f.ndjson"}, output.FileOptions{Path: "f.ndjson", MaxSize: 100 << 20, Keep: 5}, true},
		{[]string{"--output", "f", "--rotate-size", "4K", "--rotate-keep", "2"}, output.FileOptions{Path: "f", MaxSize: 4096, Keep: 2}, true},
		{[]string{"--output", "f", "--rotate-size", "1g", "--rotate-keep", "0"}, output.FileOptions{Path: "f", MaxSize: 1 << 30, Keep: 0}, true},
		{[]string{"--output", "f", "--rotate-size", "0"}, output.FileOptions{Path: "f", MaxSize: 0, Keep: 5}, true},
		{[]string{"--output", "f", "--rotate-size", "5000"}, output.FileOptions{Path: "f", MaxSize: 5000, Keep: 5}, true},
		{[]string{"--output", "f", "--rotate-size", "2MiB"}, output.FileOptions{Path: "f", MaxSize: 2 << 20, Keep: 5}, true},
		// An explicit --format, or --summary, still writes to stdout.
		{[]string{"--output", "f", "--format", "table"}, output.FileOptions{Path: "f", MaxSize: 100 << 20, Keep: 5}, false},
		{[]string{"--output", "f", "--format", "json"}, output.FileOptions{Path: "f", MaxSize: 100 << 20, Keep: 5}, false},
		{[]string{"--output", "f", "--summary"}, output.FileOptions{Path: "f", MaxSize: 100 << 20, Keep: 5}, false},
	}
	for _, tt := range tests {
		opts := parse(t, tt.args...)
		if opts.Output != tt.want || opts.Quiet != tt.quiet {
			t.Errorf("%q: Output %+v quiet %v, want %+v quiet %v", tt.args, opts.Output, opts.Quiet, tt.want, tt.quiet)
		}
	}
}

func TestParseOutputErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--rotate-size", "4K"}, "--rotate-size needs --output"},
		{[]string{"--rotate-keep", "3"}, "--rotate-keep needs --output"},
		{[]string{"--output", ""}, "--output needs a file name"},
		{[]string{"--output", "f", "--rotate-size", "100"}, `--rotate-size: size "100" is below 4K (a bare number is bytes: did you mean 100M?)`},
		{[]string{"--output", "f", "--rotate-size", "1K"}, `--rotate-size: size "1K" is below 4K`},
		{[]string{"--output", "f", "--rotate-size", "-1M"}, `--rotate-size: invalid size "-1M" (want e.g. 100M, 1G, or 0 to never rotate)`},
		{[]string{"--output", "f", "--rotate-size", "2T"}, `--rotate-size: invalid size "2T"`},
		{[]string{"--output", "f", "--rotate-size", "ten"}, `--rotate-size: invalid size "ten"`},
		{[]string{"--output", "f", "--rotate-keep", "-1"}, "--rotate-keep: want 0 to 1000 files, not -1"},
		{[]string{"--output", "f", "--rotate-keep", "1001"}, "--rotate-keep: want 0 to 1000 files, not 1001"},
	}
	for _, tt := range tests {
		_, err := parseNetOptions(tt.args, &bytes.Buffer{})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q: err %v, want %q", tt.args, err, tt.want)
		}
	}
	// top has no --output.
	if _, err := parseOptions("top", []string{"--output", "f"}, &bytes.Buffer{}); err == nil {
		t.Error("top --output: no error")
	}
}

// TestRunNetOutputUnopenable: a file that cannot be opened is one line
// and exit 1, before anything is attached (no root needed to see it).
func TestRunNetOutputUnopenable(t *testing.T) {
	code, stdout, stderr := run("net", "--output", t.TempDir()+"/no/such/dir/f")
	if code != exitError || stdout != "" || !strings.HasPrefix(stderr, "tuxscope: --output: open ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("code %d stdout %q stderr %q", code, stdout, stderr)
	}
}
