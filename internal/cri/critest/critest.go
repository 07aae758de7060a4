// Package critest is a CRI runtime for tests: a real gRPC server of the
// RuntimeService (k8s.io/cri-api v1) on a unix socket that answers
// Version, ListPodSandbox and ListContainers with the pods and containers
// a test gives it, and nothing else.
package critest

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Server is a fake CRI runtime. Its methods may be called while it serves.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	mu         sync.Mutex
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	lists      int           // ListContainers calls
	fail       bool          // answer the listings with an error
	stall      chan struct{} // while open, ListContainers waits on it

	srv *grpc.Server
	lis net.Listener
}

// Start serves on a new unix socket at path until Stop.
func Start(path string) (*Server, error) {
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := &Server{srv: grpc.NewServer(), lis: lis}
	runtimeapi.RegisterRuntimeServiceServer(s.srv, s)
	go s.srv.Serve(lis)
	return s, nil
}

// Stop ends the server and closes its connections.
func (s *Server) Stop() { s.srv.Stop() }

// AddPod adds a ready pod sandbox.
func (s *Server) AddPod(sandboxID, uid, name, namespace string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sandboxes = append(s.sandboxes, &runtimeapi.PodSandbox{
		Id:       sandboxID,
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: namespace},
		State:    runtimeapi.PodSandboxState_SANDBOX_READY,
	})
}

// AddContainer adds a running container to a sandbox, with the labels
// the kubelet gives it (labels may be nil).
func (s *Server) AddContainer(id, sandboxID, name string, labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.containers = append(s.containers, &runtimeapi.Container{
		Id:           id,
		PodSandboxId: sandboxID,
		Metadata:     &runtimeapi.ContainerMetadata{Name: name},
		State:        runtimeapi.ContainerState_CONTAINER_RUNNING,
		Labels:       labels,
	})
}

// Fail makes the listings answer with an error (true) or not.
func (s *Server) Fail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// Stall makes ListContainers wait until release is called (or its
// caller gives up).
func (s *Server) Stall() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.stall = ch
	return func() {
		s.mu.Lock()
		if s.stall == ch {
			s.stall = nil
		}
		s.mu.Unlock()
		close(ch)
	}
}

// Lists is how many times ListContainers was called.
func (s *Server) Lists() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}

func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "critest", RuntimeVersion: "1.0", RuntimeApiVersion: "v1"}, nil
}

func (s *Server) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return nil, status.Error(codes.Unavailable, "critest: failing on purpose")
	}
	return &runtimeapi.ListPodSandboxResponse{Items: append([]*runtimeapi.PodSandbox(nil), s.sandboxes...)}, nil
}

func (s *Server) ListContainers(ctx context.Context, _ *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	s.mu.Lock()
	s.lists++
	if stall := s.stall; stall != nil {
		s.mu.Unlock()
		select {
		case <-stall:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if s.fail {
		return nil, status.Error(codes.Unavailable, "critest: failing on purpose")
	}
	return &runtimeapi.ListContainersResponse{Containers: append([]*runtimeapi.Container(nil), s.containers...)}, nil
}
