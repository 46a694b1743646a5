package controlplane

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/apierr"
)

const forwardedHeader = "x-atoll-forwarded"

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "internal error (logged on server %s)", s.id)
		}
	}()
	return h(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in stream handler", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "internal error (logged on server %s)", s.id)
		}
	}()
	return h(srv, ss)
}

func (s *Server) metricsUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	s.metrics.APIRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	s.metrics.APILatency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	return resp, err
}

func (s *Server) metricsStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	s.metrics.APIRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return err
}

// localMethods are served by whichever server receives them.
func localMethod(m string) bool {
	return strings.HasPrefix(m, "/grpc.") || m == "/atoll.v1.OperatorService/ListRaftPeers"
}

type staleRequest interface{ GetStale() bool }

func isRead(method string) bool {
	name := method[strings.LastIndexByte(method, '/')+1:]
	return strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List") || name == "WhoAmI" || name == "StateHash"
}

// forwardUnary sends a call received by a follower to the leader, so any
// server can take any request. Reads are linearizable: the leader confirms
// its leadership before answering. A read marked stale is answered from this
// server's state, with headers saying how fresh it is.
func (s *Server) forwardUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if localMethod(info.FullMethod) {
		return h(ctx, req)
	}
	if sr, ok := req.(staleRequest); ok && sr.GetStale() {
		s.setFreshness(ctx)
		return h(ctx, req)
	}
	if s.raft.State() == raft.Leader {
		if isRead(info.FullMethod) {
			if err := s.readBarrier(ctx); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}
	conn, leader, octx, err := s.forwardTarget(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if conn == nil { // became leader meanwhile
		return h(ctx, req)
	}
	resp, err := newResponse(info.FullMethod)
	if err != nil {
		return nil, err
	}
	var header metadata.MD
	err = conn.Invoke(octx, info.FullMethod, req, resp, grpc.Header(&header))
	if len(header) > 0 {
		_ = grpc.SetHeader(ctx, header)
	}
	if err != nil {
		if status.Code(err) == codes.Unavailable && !strings.Contains(err.Error(), "leader") {
			return nil, apierr.Unavailable("forwarding to leader %s failed: %v; retry", leader, err)
		}
		return nil, err
	}
	return resp, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	for !s.leaderReady.Load() {
		if s.raft.State() != raft.Leader {
			return apierr.Unavailable("leadership changed; retry")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// setFreshness tells a stale reader how far this server may lag behind.
func (s *Server) setFreshness(ctx context.Context) {
	md := metadata.Pairs("x-atoll-index", strconv.FormatUint(s.raft.AppliedIndex(), 10))
	if s.raft.State() == raft.Leader {
		md.Set("x-atoll-last-contact", "0s")
		md.Set("x-atoll-known-leader", "true")
	} else {
		lc := s.raft.LastContact()
		age := "never"
		if !lc.IsZero() {
			age = time.Since(lc).Round(time.Millisecond).String()
		}
		_, leader := s.raft.LeaderWithID()
		md.Set("x-atoll-last-contact", age)
		md.Set("x-atoll-known-leader", strconv.FormatBool(leader != ""))
	}
	_ = grpc.SetHeader(ctx, md)
}

var responseTypes sync.Map // full method -> protoreflect.MessageType

// newResponse returns an empty response message of a unary method.
func newResponse(fullMethod string) (proto.Message, error) {
	if t, ok := responseTypes.Load(fullMethod); ok {
		return t.(protoreflect.MessageType).New().Interface(), nil
	}
	svc, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return nil, fmt.Errorf("bad method name %q", fullMethod)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, fmt.Errorf("unknown method %s", fullMethod)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, err
	}
	responseTypes.Store(fullMethod, mt)
	return mt.New().Interface(), nil
}

// forwardTarget prepares a call this follower relays to the leader: the
// leader's connection and id, and the outgoing context carrying the
// caller's credentials and the forwarded mark (counted in ForwardedCalls).
// A call that was forwarded already is refused (leadership is moving); a
// nil connection means this server became the leader meanwhile.
func (s *Server) forwardTarget(ctx context.Context, method string) (*grpc.ClientConn, string, context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(forwardedHeader)) > 0 {
		return nil, "", nil, apierr.Unavailable("server %s received a forwarded call but is not the leader (leadership is changing); retry", s.id)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, leader, err := s.leaderConn(wctx)
	cancel()
	if err != nil || conn == nil {
		return nil, leader, nil, err
	}
	out := metadata.MD{}
	for _, k := range []string{"authorization", "x-request-id", api.OrgHeader} {
		if v := md.Get(k); len(v) > 0 {
			out.Set(k, v...)
		}
	}
	out.Set(forwardedHeader, s.id)
	s.metrics.ForwardedCalls.WithLabelValues(method).Inc()
	return conn, leader, metadata.NewOutgoingContext(ctx, out), nil
}
