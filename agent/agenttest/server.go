// Package agenttest is a fake control-plane side of AgentService.Session for
// tests of the agent (and of anything that embeds one): a real gRPC server
// on 127.0.0.1:0 that registers nodes, sends SessionInfo and assignments
// (a full set on every new session, then diffs), records every status,
// usage report and heartbeat, and can refuse or cut sessions the way a
// follower does (UNAVAILABLE with x-atoll-leader).
package agenttest

import (
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// LeaderHeader mirrors agent.LeaderHeader (kept here to avoid an import cycle in tests).
const LeaderHeader = "x-atoll-leader"

// Server is the fake control plane. Its exported fields are read at the
// start of every session; set them before the agent connects.
type Server struct {
	Addr        string
	Token       string
	HeartbeatMs int64
	UsageMs     int64
	Secret      string
	Domain      string

	t   testing.TB
	srv *grpc.Server

	mu            sync.Mutex
	changed       chan struct{}
	nextNode      int
	registrations []*atollv1.RegisterNode
	statuses      map[string]*atollv1.InstanceStatus
	history       map[string][]*atollv1.InstanceStatus
	usage         []*atollv1.UsageReport
	heartbeats    int
	assignments   map[string]*atollv1.Assignment
	routes        map[string][]string
	sessions      int
	cur           *session
	refuse        error
	refuseLeader  string
}

type session struct {
	out  chan *atollv1.ServerMessage
	kill chan error
}

// New starts a fake control plane; it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	return newServer(t)
}

// NewTLS starts a fake control plane serving TLS with cfg.
func NewTLS(t testing.TB, cfg *tls.Config) *Server {
	t.Helper()
	return newServer(t, grpc.Creds(credentials.NewTLS(cfg)))
}

func newServer(t testing.TB, opts ...grpc.ServerOption) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("agenttest: listen: %v", err)
	}
	s := &Server{
		Addr: l.Addr().String(), Token: "join-token", HeartbeatMs: 200, UsageMs: 10_000,
		Secret: "agent-secret", Domain: "localhost",
		t: t, srv: grpc.NewServer(opts...), changed: make(chan struct{}),
		statuses: map[string]*atollv1.InstanceStatus{}, history: map[string][]*atollv1.InstanceStatus{},
		assignments: map[string]*atollv1.Assignment{}, routes: map[string][]string{},
	}
	atollv1.RegisterAgentServiceServer(s.srv, &service{s: s})
	go s.srv.Serve(l)
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (idempotent).
func (s *Server) Stop() { s.srv.Stop() }

// notify wakes the waiters; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Upsert adds or replaces assignments and sends them to the current session.
func (s *Server) Upsert(as ...*atollv1.Assignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range as {
		s.assignments[a.InstanceId] = proto.Clone(a).(*atollv1.Assignment)
	}
	s.push(&atollv1.Assignments{Upsert: cloneAll(as)})
}

// Remove drops assignments and tells the current session.
func (s *Server) Remove(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.assignments, id)
	}
	s.push(&atollv1.Assignments{Remove: ids})
}

// SetAssignments replaces the whole set without telling the current session
// (the next session gets it as its full set).
func (s *Server) SetAssignments(as ...*atollv1.Assignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.assignments = map[string]*atollv1.Assignment{}
	for _, a := range as {
		s.assignments[a.InstanceId] = proto.Clone(a).(*atollv1.Assignment)
	}
}

// SetRoutes replaces the routes and sends them to the current session.
func (s *Server) SetRoutes(routes map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = maps.Clone(routes)
	s.push(&atollv1.Assignments{Routes: routeMsg(routes)})
}

func (s *Server) push(m *atollv1.Assignments) {
	if s.cur == nil {
		return
	}
	select {
	case s.cur.out <- &atollv1.ServerMessage{Msg: &atollv1.ServerMessage_Assignments{Assignments: m}}:
	default:
		s.t.Errorf("agenttest: session outbox full")
	}
}

// Kill ends the current session with err (a gRPC status error) and leader
// (if not empty) in the trailer.
func (s *Server) Kill(code codes.Code, leader string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		select {
		case s.cur.kill <- leaderErr{status.Error(code, "agenttest: session killed"), leader}:
		default:
		}
		s.cur = nil
	}
}

// Refuse makes new sessions fail with code and the leader hint (codes.OK
// accepts them again).
func (s *Server) Refuse(code codes.Code, leader string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == codes.OK {
		s.refuse, s.refuseLeader = nil, ""
		return
	}
	s.refuse, s.refuseLeader = status.Error(code, "agenttest: not the leader"), leader
}

type leaderErr struct {
	err    error
	leader string
}

// Registrations returns every RegisterNode received, in order.
func (s *Server) Registrations() []*atollv1.RegisterNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.registrations)
}

// Sessions returns how many sessions were established.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Status returns the latest status of an instance.
func (s *Server) Status(id string) *atollv1.InstanceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.statuses[id]; ok {
		return proto.Clone(st).(*atollv1.InstanceStatus)
	}
	return nil
}

// History returns every status reported for an instance.
func (s *Server) History(id string) []*atollv1.InstanceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.history[id])
}

// Usage returns the usage reports received.
func (s *Server) Usage() []*atollv1.UsageReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.usage)
}

// Heartbeats returns how many heartbeats arrived.
func (s *Server) Heartbeats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeats
}

// Await waits until cond (called with the server locked against changes,
// so it must only use the accessors' data it is given) holds, or fails the
// test after timeout.
func (s *Server) Await(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("agenttest: timed out after %v waiting for %s", timeout, what)
		}
	}
}

// AwaitStatus waits for an instance status that satisfies pred and returns it.
func (s *Server) AwaitStatus(t testing.TB, timeout time.Duration, id string, what string, pred func(*atollv1.InstanceStatus) bool) *atollv1.InstanceStatus {
	t.Helper()
	var got *atollv1.InstanceStatus
	s.Await(t, timeout, fmt.Sprintf("instance %s %s (last: %v)", id, what, lazyStatus{s, id}), func() bool {
		got = s.Status(id)
		return got != nil && pred(got)
	})
	return got
}

type lazyStatus struct {
	s  *Server
	id string
}

func (l lazyStatus) String() string {
	st := l.s.Status(l.id)
	if st == nil {
		return "none"
	}
	return st.String()
}

// InState is a predicate for AwaitStatus.
func InState(state atollv1.InstanceState) func(*atollv1.InstanceStatus) bool {
	return func(st *atollv1.InstanceStatus) bool { return st.State == state }
}

type service struct {
	atollv1.UnimplementedAgentServiceServer
	s *Server
}

func (v *service) Session(stream grpc.BidiStreamingServer[atollv1.AgentMessage, atollv1.ServerMessage]) error {
	s := v.s
	md, _ := metadata.FromIncomingContext(stream.Context())
	if a := md.Get("authorization"); len(a) == 0 || a[0] != "Bearer "+s.Token {
		return status.Error(codes.Unauthenticated, "agenttest: bad join token")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	reg := first.GetRegister()
	if reg == nil {
		return status.Error(codes.InvalidArgument, "agenttest: first message must be RegisterNode")
	}
	s.mu.Lock()
	if s.refuse != nil {
		err, leader := s.refuse, s.refuseLeader
		s.mu.Unlock()
		if leader != "" {
			stream.SetTrailer(metadata.Pairs(LeaderHeader, leader))
		}
		return err
	}
	s.registrations = append(s.registrations, proto.Clone(reg).(*atollv1.RegisterNode))
	nodeID := reg.NodeId
	if nodeID == "" {
		s.nextNode++
		nodeID = fmt.Sprintf("node-%d", s.nextNode)
	}
	full := &atollv1.Assignments{Full: true, Routes: routeMsg(s.routes)}
	for _, id := range slices.Sorted(maps.Keys(s.assignments)) {
		full.Upsert = append(full.Upsert, proto.Clone(s.assignments[id]).(*atollv1.Assignment))
	}
	sess := &session{out: make(chan *atollv1.ServerMessage, 256), kill: make(chan error, 1)}
	if s.cur != nil {
		select {
		case s.cur.kill <- leaderErr{status.Error(codes.Aborted, "agenttest: replaced by a new session"), ""}:
		default:
		}
	}
	s.cur = sess
	s.sessions++
	info := &atollv1.SessionInfo{NodeId: nodeID, HeartbeatPeriodMs: s.HeartbeatMs, UsagePeriodMs: s.UsageMs, Domain: s.Domain, AgentSecret: s.Secret}
	s.notify()
	s.mu.Unlock()
	if err := stream.Send(&atollv1.ServerMessage{Msg: &atollv1.ServerMessage_Session{Session: info}}); err != nil {
		return err
	}
	if err := stream.Send(&atollv1.ServerMessage{Msg: &atollv1.ServerMessage_Assignments{Assignments: full}}); err != nil {
		return err
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			s.record(m)
		}
	}()
	defer func() {
		s.mu.Lock()
		if s.cur == sess {
			s.cur = nil
		}
		s.notify()
		s.mu.Unlock()
	}()
	for {
		select {
		case m := <-sess.out:
			if err := stream.Send(m); err != nil {
				return err
			}
		case k := <-sess.kill:
			le := k.(leaderErr)
			if le.leader != "" {
				stream.SetTrailer(metadata.Pairs(LeaderHeader, le.leader))
			}
			return le.err
		case err := <-recvErr:
			return err
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (le leaderErr) Error() string { return le.err.Error() }

func (s *Server) record(m *atollv1.AgentMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch x := m.Msg.(type) {
	case *atollv1.AgentMessage_Status:
		for _, st := range x.Status.Instances {
			s.statuses[st.InstanceId] = st
			s.history[st.InstanceId] = append(s.history[st.InstanceId], st)
		}
	case *atollv1.AgentMessage_Usage:
		s.usage = append(s.usage, x.Usage)
	case *atollv1.AgentMessage_Heartbeat:
		s.heartbeats++
	}
	s.notify()
}

func routeMsg(r map[string][]string) map[string]*atollv1.RouteTargets {
	if len(r) == 0 {
		return nil
	}
	out := make(map[string]*atollv1.RouteTargets, len(r))
	for h, a := range r {
		out[h] = &atollv1.RouteTargets{Addresses: slices.Clone(a)}
	}
	return out
}

func cloneAll[T proto.Message](in []T) []T {
	out := make([]T, len(in))
	for i, m := range in {
		out[i] = proto.Clone(m).(T)
	}
	return out
}
