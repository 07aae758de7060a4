package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuxscope/tuxscope/internal/cri/critest"
)

// --cri-socket none asks nothing; a missing explicit socket is said in
// one line and gives no client; listings that failed during the run are
// said at the end, once.
func TestCRIOpenAndReport(t *testing.T) {
	if c, err := openCRI(context.Background(), "none"); c != nil || err != nil {
		t.Errorf("none: %v %v", c, err)
	}
	var stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "x.sock")
	if c := startCRI(context.Background(), missing, &stderr)(); c != nil {
		t.Error("a client for a missing socket")
	}
	want := "tuxscope: --cri-socket " + missing + ": stat " + missing + ": no such file or directory; going on without pod and container names\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}

	sock := filepath.Join(t.TempDir(), "cri.sock")
	s, err := critest.Start(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	stderr.Reset()
	c := startCRI(context.Background(), "unix://"+sock, &stderr)()
	if c == nil || stderr.Len() != 0 {
		t.Fatalf("client %v, stderr %q", c, stderr.String())
	}
	defer c.Close()
	reportCRI(c, &stderr)
	if stderr.Len() != 0 {
		t.Errorf("nothing failed, yet: %q", stderr.String())
	}
	s.Fail(true)
	c.Refresh(context.Background())
	reportCRI(c, &stderr)
	want = "tuxscope: the CRI runtime at " + sock + " failed 1 of 2 listings (last: CRI ListPodSandbox: Unavailable: critest: failing on purpose): pod and container names may be missing or stale\n"
	if stderr.String() != want || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}
