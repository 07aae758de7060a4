// Package cri names Kubernetes pods and their containers from a CRI
// runtime (containerd, CRI-O): a client of the runtime's RuntimeService
// (k8s.io/cri-api, v1) on its unix socket keeps a cache of what
// ListPodSandbox and ListContainers say, refreshed in the background, and
// answers container.Namer's lookups from it without waiting.
package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tuxscope/tuxscope/internal/container"
)

// Bounds on the client's work and memory.
const (
	// RefreshEvery is how often the cache is listed anew.
	RefreshEvery = 5 * time.Second
	// MissRefreshGap is the least time between a refresh and one that a
	// lookup of an unknown id asks for: a container started after
	// tuxscope is named within about this, plus the listing's time.
	MissRefreshGap = 250 * time.Millisecond
	// CallTimeout bounds each call to the runtime.
	CallTimeout = 2 * time.Second
	// MaxMessage bounds a response (about 10,000 containers with their
	// labels and annotations); a larger one fails the refresh.
	MaxMessage = 16 << 20
	// MaxEntries caps the containers (and sandboxes) and the pods
	// cached; what a listing holds beyond it is left out and counted.
	MaxEntries = 16384
	// MaxName is the longest name kept, in bytes (Kubernetes names are
	// at most 253); a longer one is cut at a character boundary.
	MaxName = 253
	// maxMisses caps the unknown ids remembered between refreshes.
	maxMisses = 4096
	// apiVersion is what the kubelet sends in VersionRequest.
	apiVersion = "0.1.0"
)

// DefaultSockets are the runtime sockets probed when none is given:
// containerd, CRI-O, k3s' containerd, cri-dockerd.
var DefaultSockets = []string{
	"/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/run/k3s/containerd/containerd.sock",
	"/run/cri-dockerd.sock",
	"/var/run/containerd/containerd.sock",
	"/var/run/crio/crio.sock",
	"/var/run/k3s/containerd/containerd.sock",
	"/var/run/cri-dockerd.sock",
}

// Kubelet's labels on a container, read when its sandbox is not listed
// (made between the two listings).
const (
	labelPodName      = "io.kubernetes.pod.name"
	labelPodNamespace = "io.kubernetes.pod.namespace"
)

// Stats is what the client did so far.
type Stats struct {
	Refreshes, Failures uint64 // listings made, and those that failed
	// Dropped is what the last listing held beyond MaxEntries.
	Dropped int
	// LastError is the last failure's, or nil.
	LastError error
}

// Client is a CRI runtime's names, cached. Its methods may be called from
// any goroutine.
type Client struct {
	// Socket is the runtime's socket path; Runtime and RuntimeVersion
	// what it says it is.
	Socket, Runtime, RuntimeVersion string
	// Every and MissGap are RefreshEvery and MissRefreshGap unless set
	// before Start.
	Every, MissGap time.Duration

	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient

	refreshing sync.Mutex // one listing at a time
	mu         sync.Mutex
	containers map[string]container.Names // by container or sandbox id
	pods       map[string]container.Names // by pod uid
	missed     map[missKey]struct{}       // unknown ids looked up since the last refresh began
	judging    map[missKey]struct{}       // those the refresh under way will judge
	unknown    map[missKey]struct{}       // ids a refresh after their lookup did not know
	stats      Stats

	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool
}

// missKey is an id looked up and not known: a container's (pod false) or
// a pod's uid.
type missKey struct {
	id  string
	pod bool
}

// New makes a client of the runtime at socket (a path, or unix://PATH);
// nothing is sent until Start.
func New(socket string) (*Client, error) {
	path := strings.TrimPrefix(socket, "unix://")
	if path == "" {
		return nil, errors.New("empty socket path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+abs,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessage)),
		// A restarted runtime is found again within seconds, not the
		// default two minutes of backoff.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: CallTimeout,
		}),
	)
	if err != nil {
		return nil, err
	}
	return &Client{
		Socket:     path,
		Every:      RefreshEvery,
		MissGap:    MissRefreshGap,
		conn:       conn,
		rt:         runtimeapi.NewRuntimeServiceClient(conn),
		containers: map[string]container.Names{},
		pods:       map[string]container.Names{},
		missed:     map[missKey]struct{}{},
		unknown:    map[missKey]struct{}{},
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}, nil
}

// Start asks the runtime its version and lists it once (within ctx), then
// keeps the cache fresh in the background until Close. It fails if the
// socket does not answer as a CRI runtime.
func (c *Client) Start(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, CallTimeout)
	v, err := c.rt.Version(cctx, &runtimeapi.VersionRequest{Version: apiVersion})
	cancel()
	if err != nil {
		return rpcError("Version", err)
	}
	c.Runtime, c.RuntimeVersion = clip(v.GetRuntimeName()), clip(v.GetRuntimeVersion())
	if err := c.Refresh(ctx); err != nil {
		return err
	}
	c.started = true
	go c.loop()
	return nil
}

// Open is New and Start, for a socket that must be there: a missing path
// or one that is not a socket fails at once.
func Open(ctx context.Context, socket string) (*Client, error) {
	path := strings.TrimPrefix(socket, "unix://")
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if st.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%s is not a socket", path)
	}
	c, err := New(socket)
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Probe opens the first of sockets that exists as a socket and answers
// as a CRI runtime, each within perSocket; nil if none does.
func Probe(ctx context.Context, sockets []string, perSocket time.Duration) *Client {
	seen := map[string]bool{}
	for _, s := range sockets {
		real, err := filepath.EvalSymlinks(s)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		if st, err := os.Stat(real); err != nil || st.Mode().Type() != os.ModeSocket {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, perSocket)
		c, err := Open(pctx, s)
		cancel()
		if err == nil {
			return c
		}
	}
	return nil
}

// Close stops the refreshes and the connection.
func (c *Client) Close() error {
	if c.started {
		close(c.stop)
		<-c.done
		c.started = false
	}
	return c.conn.Close()
}

// Names is what the last listing said of the container with this id, or
// else of the pod with this uid. An id it did not know asks for a
// refresh (at most one per MissGap), unless one made since its last
// lookup did not know it either: then only the periodic ones look again.
func (c *Client) Names(containerID, podUID string) (container.Names, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if containerID != "" {
		if n, ok := c.containers[containerID]; ok {
			return n, true
		}
		c.miss(missKey{id: containerID})
	}
	if podUID != "" {
		if n, ok := c.pods[podUID]; ok {
			return n, true
		}
		c.miss(missKey{id: podUID, pod: true})
	}
	return container.Names{}, false
}

// miss notes an unknown id and wakes the refresher; c.mu is held.
func (c *Client) miss(k missKey) {
	if _, ok := c.unknown[k]; ok {
		return
	}
	// Looked up before the listing under way began: it will tell.
	if _, ok := c.judging[k]; ok {
		return
	}
	if _, ok := c.missed[k]; ok || len(c.missed) >= maxMisses {
		return
	}
	c.missed[k] = struct{}{}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Stats is what the client did so far.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Client) loop() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-c.stop; cancel() }()
	last := time.Now()
	tick := time.NewTimer(c.Every)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		case <-c.wake:
			if wait := c.MissGap - time.Since(last); wait > 0 {
				select {
				case <-c.stop:
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		_ = c.Refresh(ctx)
		if !tick.Stop() {
			select {
			case <-tick.C:
			default:
			}
		}
		tick.Reset(c.Every)
	}
}

// Refresh lists the runtime's pod sandboxes and containers and replaces
// the cache with what they name. On failure the cache is kept as it was.
func (c *Client) Refresh(ctx context.Context) error {
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	// The ids missed so far are judged by this listing; those missed
	// while it runs, by the next.
	c.mu.Lock()
	missed := c.missed
	c.missed, c.judging = map[missKey]struct{}{}, missed
	c.mu.Unlock()

	containers, pods, dropped, err := c.list(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.judging = nil
	c.stats.Refreshes++
	if err != nil {
		c.stats.Failures++
		c.stats.LastError = err
		// Not judged: the next periodic refresh will (a lookup does
		// not ask again, so a failing runtime is not asked more often).
		for k := range missed {
			if len(c.missed) < maxMisses {
				c.missed[k] = struct{}{}
			}
		}
		return err
	}
	c.containers, c.pods, c.stats.Dropped = containers, pods, dropped
	if len(c.unknown)+len(missed) > maxMisses {
		clear(c.unknown)
	}
	for k := range missed {
		known := false
		if k.pod {
			_, known = pods[k.id]
		} else {
			_, known = containers[k.id]
		}
		if !known {
			c.unknown[k] = struct{}{}
		}
	}
	// An id listed now is known: should it go, a lookup may ask again.
	for k := range c.unknown {
		if k.pod {
			if _, ok := pods[k.id]; ok {
				delete(c.unknown, k)
			}
		} else if _, ok := containers[k.id]; ok {
			delete(c.unknown, k)
		}
	}
	return nil
}

func (c *Client) list(ctx context.Context) (containers, pods map[string]container.Names, dropped int, err error) {
	cctx, cancel := context.WithTimeout(ctx, CallTimeout)
	sb, err := c.rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	cancel()
	if err != nil {
		return nil, nil, 0, rpcError("ListPodSandbox", err)
	}
	cctx, cancel = context.WithTimeout(ctx, CallTimeout)
	cs, err := c.rt.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	cancel()
	if err != nil {
		return nil, nil, 0, rpcError("ListContainers", err)
	}
	containers = make(map[string]container.Names, min(len(sb.GetItems())+len(cs.GetContainers()), MaxEntries))
	pods = make(map[string]container.Names, min(len(sb.GetItems()), MaxEntries))
	sandboxes := make(map[string]container.Names, min(len(sb.GetItems()), MaxEntries))
	for _, s := range sb.GetItems() {
		md := s.GetMetadata()
		if s.GetId() == "" || md == nil {
			continue
		}
		if len(containers) >= MaxEntries {
			dropped++
			continue
		}
		n := container.Names{Pod: clip(md.GetName()), Namespace: clip(md.GetNamespace())}
		// The sandbox's own (pause) container runs in a cgroup named
		// by the sandbox's id.
		containers[s.GetId()], sandboxes[s.GetId()] = n, n
		if uid := md.GetUid(); uid != "" && len(pods) < MaxEntries {
			pods[uid] = n
		}
	}
	for _, ct := range cs.GetContainers() {
		if ct.GetId() == "" {
			continue
		}
		if len(containers) >= MaxEntries {
			dropped++
			continue
		}
		n, ok := sandboxes[ct.GetPodSandboxId()]
		if !ok {
			l := ct.GetLabels()
			n = container.Names{Pod: clip(l[labelPodName]), Namespace: clip(l[labelPodNamespace])}
		}
		n.Container = clip(ct.GetMetadata().GetName())
		containers[ct.GetId()] = n
	}
	return containers, pods, dropped, nil
}

// callError is a failed call to the runtime, in one line: "CRI
// ListContainers: Unavailable: ...". Its gRPC status is kept.
type callError struct {
	call string
	st   *status.Status
}

func (e *callError) Error() string {
	return fmt.Sprintf("CRI %s: %s: %s", e.call, e.st.Code(), e.st.Message())
}

func (e *callError) GRPCStatus() *status.Status { return e.st }

func rpcError(call string, err error) error {
	return &callError{call, status.Convert(err)}
}

// clip cuts s to MaxName bytes at a character boundary; it copies it, so
// the listing's message is not kept alive by the names.
func clip(s string) string {
	if len(s) > MaxName {
		i := MaxName
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return strings.Clone(s)
}
