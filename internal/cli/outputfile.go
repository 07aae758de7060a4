package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tuxscope/tuxscope/internal/output"
	"github.com/tuxscope/tuxscope/internal/pipeline"
)

// Defaults and bounds of --rotate-size and --rotate-keep.
const (
	DefaultRotateSize = 100 << 20
	DefaultRotateKeep = 5
	minRotateSize     = 4 << 10 // a bare "100" (bytes) is a typo for 100M, not a wish
	maxRotateSize     = 1 << 40
	maxRotateKeep     = 1000
)

// outputFlags are --output FILE, --rotate-size SIZE and --rotate-keep N,
// as `tuxscope net` (and any command that streams events) takes them.
type outputFlags struct {
	fs         *flag.FlagSet
	path, size string
	keep       int
}

// addOutputFlags registers the --output flags on fs.
func addOutputFlags(fs *flag.FlagSet) *outputFlags {
	o := &outputFlags{fs: fs}
	fs.StringVar(&o.path, "output", "", "")
	fs.StringVar(&o.size, "rotate-size", "100M", "")
	fs.IntVar(&o.keep, "rotate-keep", DefaultRotateKeep, "")
	return o
}

// options validates the flags once fs is parsed; Path is empty without
// --output.
func (o *outputFlags) options() (output.FileOptions, error) {
	var opts output.FileOptions
	set := map[string]bool{}
	o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.path == "" {
		if set["output"] {
			return opts, errors.New("--output needs a file name")
		}
		for _, name := range []string{"rotate-size", "rotate-keep"} {
			if set[name] {
				return opts, fmt.Errorf("--%s needs --output", name)
			}
		}
		return opts, nil
	}
	size, err := parseRotateSize(o.size)
	if err != nil {
		return opts, fmt.Errorf("--rotate-size: %w", err)
	}
	if o.keep < 0 || o.keep > maxRotateKeep {
		return opts, fmt.Errorf("--rotate-keep: want 0 to %d files, not %d", maxRotateKeep, o.keep)
	}
	return output.FileOptions{Path: o.path, MaxSize: size, Keep: o.keep}, nil
}

// parseRotateSize reads --rotate-size: bytes with an optional K, M, G or
// T suffix (powers of 1024), at least 4K, or 0 for a file never rotated.
func parseRotateSize(s string) (int64, error) {
	num := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I")
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > maxRotateSize/mult {
		return 0, fmt.Errorf("invalid size %q (want e.g. 100M, 1G, or 0 to never rotate)", s)
	}
	if n *= mult; n != 0 && n < minRotateSize {
		if mult == 1 {
			return 0, fmt.Errorf("size %q is below 4K (a bare number is bytes: did you mean %sM?)", s, s)
		}
		return 0, fmt.Errorf("size %q is below 4K", s)
	}
	return n, nil
}

// openOutput opens the --output file and starts its writer; nil without
// --output. The sink it returns is the extra pipeline.Sink a command tees
// its events to; call its Finish also when the run ends in an error (a
// second call does nothing), so what was queued is written.
func openOutput(o output.FileOptions, stderr io.Writer) (*output.File, error) {
	if o.Path == "" {
		return nil, nil
	}
	f, err := output.OpenFile(o, stderr)
	if err != nil {
		return nil, fmt.Errorf("--output: %w", err)
	}
	return f, nil
}

// withOutput is sink with the --output file added: the file alone when
// stdout is to get nothing (quiet), else both.
func withOutput(sink pipeline.Sink, file *output.File, quiet bool) pipeline.Sink {
	switch {
	case file == nil:
		return sink
	case quiet:
		return file
	}
	return pipeline.Tee{sink, file}
}
