package agent

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
)

// Log line limits of InstanceLogs.
const (
	DefaultLogLines = 100
	MaxLogLines     = 1000
)

// logServerOptions keep the log endpoint's connections honest: the agent
// pings an idle control plane and drops a connection whose peer does not
// answer (a vanished server's streams stop following Docker logs), and it
// admits the control plane's own keepalive pings down to every 5 s.
func logServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}

// authStream admits calls that carry the current session's agent secret.
func (a *Agent) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.checkSecret(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

func (a *Agent) checkSecret(ctx context.Context) error {
	secret := *a.secret.Load()
	if secret == "" {
		return status.Error(codes.Unavailable, "agent has no session with the control plane yet")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) == 0 {
		return status.Error(codes.Unauthenticated, "missing authorization: Bearer <agent secret>")
	}
	got, ok := strings.CutPrefix(v[0], "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
		return status.Error(codes.Unauthenticated, "invalid agent secret")
	}
	return nil
}

type logService struct {
	atollv1.UnimplementedAgentLogServiceServer
	a *Agent
}

// InstanceLogs streams an instance's container output: the last Lines
// lines (0: DefaultLogLines) at or after Since, and with Follow the lines
// that come after them. With Follow, Lines 0 sends no tail: every line at or
// after Since, or with Since unset only the lines written from now on.
func (s *logService) InstanceLogs(req *atollv1.InstanceLogsRequest, stream grpc.ServerStreamingServer[atollv1.LogLine]) error {
	if req.InstanceId == "" {
		return status.Error(codes.InvalidArgument, "instance_id is required")
	}
	lines := int(req.Lines)
	switch {
	case lines <= 0 && req.Follow:
		lines = 0 // no tail: every line since Since
	case lines <= 0:
		lines = DefaultLogLines
	case lines > MaxLogLines:
		lines = MaxLogLines
	}
	opts := runtime.LogOptions{Tail: lines, Follow: req.Follow}
	if req.Since != nil {
		opts.Since = req.Since.AsTime()
	} else if req.Follow && lines == 0 {
		opts.Since = time.Now() // only new lines
	}
	ctx := stream.Context()
	ls, err := s.a.rt.Logs(ctx, ContainerName(req.InstanceId), opts)
	if err != nil {
		if errors.Is(err, runtime.ErrNotFound) {
			return notFound(req.InstanceId, s.a.NodeID())
		}
		return status.Errorf(codes.Internal, "logs of instance %s: %v", req.InstanceId, err)
	}
	defer ls.Close()
	for {
		l, err := ls.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return status.Errorf(codes.Internal, "logs of instance %s: %v", req.InstanceId, err)
		}
		if err := stream.Send(&atollv1.LogLine{
			Timestamp:  timestamppb.New(l.Time),
			InstanceId: req.InstanceId,
			Stream:     string(l.Stream),
			Message:    l.Text,
		}); err != nil {
			return err
		}
	}
}

// notFound says the instance has no container here, naming it (ResourceInfo)
// like the control plane's NOT_FOUND errors.
func notFound(instanceID, nodeID string) error {
	st := status.Newf(codes.NotFound, "instance %s has no container on node %s (not started yet, or removed)", instanceID, nodeID)
	if d, err := st.WithDetails(&errdetails.ResourceInfo{ResourceType: "container", ResourceName: ContainerName(instanceID),
		Owner: instanceID, Description: "no container of instance " + instanceID + " on node " + nodeID}); err == nil {
		st = d
	}
	return st.Err()
}
