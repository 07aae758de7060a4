package cri

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuxscope/tuxscope/internal/container"
	"github.com/tuxscope/tuxscope/internal/cri/critest"
)

// A container.Namer, as the resolver wants one.
var _ container.Namer = (*Client)(nil)

const (
	uidA = "5a1b2c3d-4e5f-6789-abcd-ef0123456789"
	uidB = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
)

func hexID(c byte) string { return strings.Repeat(string(c), 64) }

// serve starts a fake CRI runtime on a socket in a temp dir.
func serve(t *testing.T) (*critest.Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	s, err := critest.Start(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, sock
}

func open(t *testing.T, sock string, every, gap time.Duration) *Client {
	t.Helper()
	c, err := New(sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Every, c.MissGap = every, gap
	if err := c.Start(context.Background()); err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantNames(t *testing.T, c *Client, cid, uid string, want container.Names, wantOK bool) {
	t.Helper()
	got, ok := c.Names(cid, uid)
	if got != want || ok != wantOK {
		t.Errorf("Names(%.12s, %s) = %+v %v, want %+v %v", cid, uid, got, ok, want, wantOK)
	}
}

// The cache names containers (by their id, or their sandbox's), and pods
// by uid, from the runtime's listings over the real protocol.
func TestNames(t *testing.T) {
	s, sock := serve(t)
	s.AddPod(hexID('a'), uidA, "web-7d4b9", "shop")
	s.AddPod(hexID('b'), uidB, "db-0", "data")
	s.AddContainer(hexID('1'), hexID('a'), "nginx", nil)
	s.AddContainer(hexID('2'), hexID('a'), "sidecar", nil)
	s.AddContainer(hexID('3'), hexID('b'), "postgres", nil)
	// Its sandbox not (yet) listed: the kubelet's labels name the pod.
	s.AddContainer(hexID('4'), hexID('c'), "late", map[string]string{labelPodName: "late-pod", labelPodNamespace: "ns2"})
	c := open(t, sock, time.Hour, time.Hour)
	if c.Runtime != "critest" || c.RuntimeVersion != "1.0" {
		t.Errorf("runtime %q %q", c.Runtime, c.RuntimeVersion)
	}
	wantNames(t, c, hexID('1'), uidA, container.Names{Pod: "web-7d4b9", Namespace: "shop", Container: "nginx"}, true)
	wantNames(t, c, hexID('2'), "", container.Names{Pod: "web-7d4b9", Namespace: "shop", Container: "sidecar"}, true)
	wantNames(t, c, hexID('3'), uidB, container.Names{Pod: "db-0", Namespace: "data", Container: "postgres"}, true)
	wantNames(t, c, hexID('4'), "", container.Names{Pod: "late-pod", Namespace: "ns2", Container: "late"}, true)
	// The pause container's cgroup is named by the sandbox id.
	wantNames(t, c, hexID('a'), uidA, container.Names{Pod: "web-7d4b9", Namespace: "shop"}, true)
	// An unknown container of a known pod: the pod's names.
	wantNames(t, c, hexID('9'), uidB, container.Names{Pod: "db-0", Namespace: "data"}, true)
	wantNames(t, c, "", uidA, container.Names{Pod: "web-7d4b9", Namespace: "shop"}, true)
	wantNames(t, c, hexID('9'), "", container.Names{}, false)
	wantNames(t, c, "", "", container.Names{}, false)
	if st := c.Stats(); st.Refreshes != 1 || st.Failures != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A container the runtime starts after the client did is named soon after
// its first lookup missed: the miss asks for a refresh. An id the runtime
// does not know asks once, not at every lookup.
func TestMissRefreshes(t *testing.T) {
	s, sock := serve(t)
	s.AddPod(hexID('a'), uidA, "web", "shop")
	c := open(t, sock, time.Hour, MissRefreshGap)
	lists := s.Lists()
	s.AddContainer(hexID('1'), hexID('a'), "nginx", nil)
	start := time.Now()
	if _, ok := c.Names(hexID('1'), ""); ok {
		t.Fatal("named before any refresh")
	}
	for {
		if n, ok := c.Names(hexID('1'), ""); ok {
			if n != (container.Names{Pod: "web", Namespace: "shop", Container: "nginx"}) {
				t.Errorf("names %+v", n)
			}
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("not named within 2s of its first lookup (%d listings)", s.Lists()-lists)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("named %v after the first lookup", time.Since(start).Round(time.Millisecond))
	if got := s.Lists() - lists; got != 1 {
		t.Errorf("%d listings, want 1", got)
	}

	// An id no listing knows: one refresh, then no more.
	lists = s.Lists()
	for range 100 {
		c.Names(hexID('e'), "")
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(2 * MissRefreshGap)
	for range 100 {
		c.Names(hexID('e'), "")
	}
	time.Sleep(2 * MissRefreshGap)
	if got := s.Lists() - lists; got != 1 {
		t.Errorf("an unknown id looked up 200 times: %d listings, want 1", got)
	}
}

// The periodic refresh picks up a container nobody looked up, and drops
// one the runtime no longer lists.
func TestPeriodicRefresh(t *testing.T) {
	s, sock := serve(t)
	s.AddPod(hexID('a'), uidA, "web", "shop")
	c := open(t, sock, 50*time.Millisecond, time.Hour)
	s.AddContainer(hexID('1'), hexID('a'), "nginx", nil)
	deadline := time.Now().Add(2 * time.Second)
	for {
		c.mu.Lock()
		_, ok := c.containers[hexID('1')]
		c.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a new container not listed within 2s by refreshes every 50ms")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A refresh that fails keeps the cache as it was and is counted; a later
// one that works replaces it.
func TestRefreshFailureKeepsCache(t *testing.T) {
	s, sock := serve(t)
	s.AddPod(hexID('a'), uidA, "web", "shop")
	s.AddContainer(hexID('1'), hexID('a'), "nginx", nil)
	c := open(t, sock, time.Hour, time.Hour)
	s.Fail(true)
	err := c.Refresh(context.Background())
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("refresh: %v, want Unavailable", err)
	}
	wantNames(t, c, hexID('1'), "", container.Names{Pod: "web", Namespace: "shop", Container: "nginx"}, true)
	if st := c.Stats(); st.Refreshes != 2 || st.Failures != 1 || st.LastError == nil {
		t.Errorf("stats %+v", st)
	}
	s.Fail(false)
	s.AddContainer(hexID('2'), hexID('a'), "sidecar", nil)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantNames(t, c, hexID('2'), "", container.Names{Pod: "web", Namespace: "shop", Container: "sidecar"}, true)
}

// Lookups never wait for the runtime: a listing stalled in the server
// leaves Names answering at once from the last one.
func TestNamesDoNotBlock(t *testing.T) {
	s, sock := serve(t)
	s.AddPod(hexID('a'), uidA, "web", "shop")
	s.AddContainer(hexID('1'), hexID('a'), "nginx", nil)
	c := open(t, sock, time.Hour, time.Millisecond)
	release := s.Stall()
	defer release()
	lists := s.Lists()
	c.Names(hexID('f'), "") // a miss: the refresh it asks for stalls
	deadline := time.Now().Add(2 * time.Second)
	for s.Lists() == lists {
		if time.Now().After(deadline) {
			t.Fatal("the miss asked for no listing")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for range 1000 {
		c.Names(hexID('1'), "")
		c.Names(hexID('d'), uidB)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("2000 lookups took %v during a stalled listing", d)
	}
	wantNames(t, c, hexID('1'), "", container.Names{Pod: "web", Namespace: "shop", Container: "nginx"}, true)
}

// Hostile or huge listings are bounded: names are cut to MaxName bytes at
// a character boundary, entries beyond MaxEntries are left out and
// counted, and a response beyond MaxMessage fails the refresh.
func TestBounds(t *testing.T) {
	s, sock := serve(t)
	long := strings.Repeat("é", MaxName) // 2 bytes each: cut at 252
	s.AddPod(hexID('a'), uidA, long, "ns\x1b[2J")
	for i := range MaxEntries + 10 {
		s.AddContainer(strings.Repeat("0", 56)+hex8(i), hexID('a'), "c", nil)
	}
	c := open(t, sock, time.Hour, time.Hour)
	n, ok := c.Names("", uidA)
	if !ok || n.Pod != strings.Repeat("é", MaxName/2) || n.Namespace != "ns\x1b[2J" {
		t.Errorf("pod names %q %q %v", n.Pod, n.Namespace, ok)
	}
	// The sandbox and MaxEntries-1 containers fit.
	if st := c.Stats(); st.Dropped != 11 {
		t.Errorf("dropped %d, want 11", st.Dropped)
	}
	c.mu.Lock()
	got := len(c.containers)
	c.mu.Unlock()
	if got != MaxEntries {
		t.Errorf("%d cached, want %d", got, MaxEntries)
	}

	s.AddContainer(hexID('9'), hexID('a'), "huge", map[string]string{"x": strings.Repeat("x", MaxMessage)})
	err := c.Refresh(context.Background())
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a listing over %d bytes: %v, want ResourceExhausted", MaxMessage, err)
	}
}

func hex8(i int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 8)
	for j := 7; j >= 0; j-- {
		b[j] = digits[i&0xf]
		i >>= 4
	}
	return string(b)
}

// Open fails, within its context, on what does not answer as a CRI
// runtime: no socket, or a socket whose server speaks no gRPC.
func TestOpenFails(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := Open(ctx, filepath.Join(dir, "none.sock")); err == nil {
		c.Close()
		t.Error("Open of a missing socket worked")
	}
	mute := filepath.Join(dir, "mute.sock")
	lis, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // accepted, never answered
		}
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if c, err := Open(ctx2, mute); err == nil {
		c.Close()
		t.Error("Open of a mute socket worked")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// Probe skips what is missing, not a socket, or not a CRI runtime, and
// opens the first that answers.
func TestProbe(t *testing.T) {
	s, sock := serve(t)
	s.AddPod(hexID('a'), uidA, "web", "shop")
	dir := t.TempDir()
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(sock, link); err != nil {
		t.Fatal(err)
	}
	c := Probe(context.Background(), []string{filepath.Join(dir, "none.sock"), file, link, sock}, time.Second)
	if c == nil {
		t.Fatal("no runtime found")
	}
	defer c.Close()
	if c.Socket != link {
		t.Errorf("found %s, want %s", c.Socket, link)
	}
	wantNames(t, c, "", uidA, container.Names{Pod: "web", Namespace: "shop"}, true)
	if c := Probe(context.Background(), []string{file, filepath.Join(dir, "none.sock")}, time.Second); c != nil {
		c.Close()
		t.Error("found a runtime where there is none")
	}
}

// What a lookup costs the pipeline: a hit, and a miss of an id already
// judged unknown (a Docker container beside Kubernetes), with 10,000
// containers cached; and what a refresh of them costs.
func BenchmarkNames(b *testing.B) {
	s, sock := serveB(b)
	s.AddPod(hexID('a'), uidA, "web", "shop")
	for i := range 10000 {
		s.AddContainer(strings.Repeat("0", 56)+hex8(i), hexID('a'), "c", nil)
	}
	c, err := Open(context.Background(), sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	hit := strings.Repeat("0", 56) + hex8(1234)
	miss := hexID('e')
	c.Names(miss, "")
	if err := c.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Names(hit, uidA)
		}
	})
	b.Run("unknown", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Names(miss, "")
		}
	})
	// A listing of the 10,000, over the socket, and the new cache.
	b.Run("refresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func serveB(b *testing.B) (*critest.Server, string) {
	sock := filepath.Join(b.TempDir(), "cri.sock")
	s, err := critest.Start(sock)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Stop)
	return s, sock
}
