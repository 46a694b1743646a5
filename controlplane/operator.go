package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/atollhq/atoll/client"
	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ClusterKey implements api.Operator: the keyring for a joining server.
func (s *Server) ClusterKey() []byte { return s.keyring.Key() }

// ServerID implements api.Operator.
func (s *Server) ServerID() string { return s.id }

// RaftPeers lists the raft configuration with each server's gRPC address.
func (s *Server) RaftPeers(context.Context) ([]*atollv1.RaftPeer, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	_, leader := s.raft.LeaderWithID()
	st, _ := s.fsm.State()
	tx := st.Snapshot()
	var out []*atollv1.RaftPeer
	for _, srv := range f.Configuration().Servers {
		p := &atollv1.RaftPeer{Id: string(srv.ID), Address: string(srv.Address), Leader: srv.ID == leader, Voter: srv.Suffrage == raft.Voter}
		if m := tx.Server(string(srv.ID)); m != nil {
			p.GrpcAddress = m.GrpcAddress
		}
		out = append(out, p)
	}
	return out, nil
}

// RemovePeer removes a server from the raft configuration (leader only; forwarded).
func (s *Server) RemovePeer(_ context.Context, id string) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	voters := 0
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
	}
	for _, srv := range servers {
		if string(srv.ID) != id {
			continue
		}
		if srv.Suffrage == raft.Voter && voters == 1 {
			return apierr.FailedPrecondition("%s is the cluster's only voter: removing it would leave no server to hold the state; add another server first", id)
		}
		if err := s.raft.RemoveServer(srv.ID, 0, s.cfg.ApplyTimeout).Error(); err != nil {
			return apierr.Unavailable("removing raft peer %s failed: %v; check list-peers and retry", id, err)
		}
		return nil
	}
	return apierr.NotFound("raft peer", id)
}

// SaveSnapshot writes the state as of now (read on the leader, after confirming leadership).
func (s *Server) SaveSnapshot(ctx context.Context, w io.Writer) error {
	if s.raft.State() != raft.Leader {
		return s.forwardSnapshotSave(ctx, w)
	}
	if err := s.awaitFuture(ctx, s.raft.Barrier(s.cfg.ApplyTimeout)); err != nil {
		return apierr.Unavailable("snapshot: %v", err)
	}
	st, _ := s.fsm.State()
	return st.Snapshot().Persist(w)
}

func (s *Server) forwardSnapshotSave(ctx context.Context, w io.Writer) error {
	conn, _, err := s.leaderConn(ctx)
	if err != nil || conn == nil {
		return apierr.Unavailable("no leader to take the snapshot: %v", err)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	_, err = client.SaveSnapshot(metadata.NewOutgoingContext(ctx, md), atollv1.NewOperatorServiceClient(conn), w)
	return err
}

// RestoreSnapshot replaces the cluster's state with a saved one (leader only).
func (s *Server) RestoreSnapshot(ctx context.Context, r io.Reader) (uint64, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	if s.raft.State() != raft.Leader {
		conn, _, err := s.leaderConn(ctx)
		if err != nil || conn == nil {
			return 0, apierr.Unavailable("no leader to restore the snapshot: %v", err)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		return client.RestoreSnapshot(metadata.NewOutgoingContext(ctx, md), atollv1.NewOperatorServiceClient(conn), bytes.NewReader(data))
	}
	// Refuse garbage before raft sees it.
	if _, err := stateRestoreCheck(data); err != nil {
		return 0, apierr.InvalidField("snapshot", "%v", err)
	}
	st, _ := s.fsm.State()
	members := st.Snapshot().Servers()
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(data))}
	if err := s.raft.Restore(meta, bytes.NewReader(data), s.cfg.ApplyTimeout); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	// The restored state names the servers of the cluster it came from:
	// record this cluster's servers again so forwarding keeps working.
	for _, m := range members {
		if _, err := s.applySystem(&atollv1.Command{Cmd: &atollv1.Command_UpsertServer{UpsertServer: &atollv1.UpsertServerCmd{Server: m}}}); err != nil {
			return 0, err
		}
	}
	return s.raft.AppliedIndex(), nil
}

// permanentJoinError: the cluster answered the join and said no (bad token,
// bad request); asking again cannot help. Anything else (unreachable, no
// leader yet, a leadership change during the join) is retried.
func permanentJoinError(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition, codes.Unimplemented:
		return true
	}
	return false
}

// joinRefused says why the cluster refused this server and what to do.
func joinRefused(addr string, err error) error {
	msg := status.Convert(err).Message()
	hint := ""
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		hint = "; pass a token with the cluster:admin scope of that cluster (--token or ATOLL_TOKEN), e.g. its bootstrap admin token"
	}
	return fmt.Errorf("join via %s refused (%s): %s%s", addr, status.Code(err), msg, hint)
}

// Failed receives an error when the server cannot go on and should exit
// (a join the cluster refused for good). Close still needs to be called.
func (s *Server) Failed() <-chan error { return s.failed }

func (s *Server) fail(err error) {
	s.log.Error("server cannot continue", "err", err)
	select {
	case s.failed <- err:
	default:
	}
}
