package api

import (
	"bytes"
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type operatorService struct {
	s *Services
	atollv1.UnimplementedOperatorServiceServer
}

// ServerIDHeader names the server that answered ListRaftPeers (it is served
// locally, not forwarded): a server missing from its own list was removed.
const ServerIDHeader = "x-atoll-server-id"

func (o *operatorService) ListRaftPeers(ctx context.Context, _ *atollv1.ListRaftPeersRequest) (*atollv1.ListRaftPeersResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs(ServerIDHeader, o.s.op.ServerID()))
	peers, err := o.s.op.RaftPeers(ctx)
	if err != nil {
		return nil, err
	}
	return &atollv1.ListRaftPeersResponse{Peers: peers}, nil
}

func (o *operatorService) RemoveRaftPeer(ctx context.Context, req *atollv1.RemoveRaftPeerRequest) (*emptypb.Empty, error) {
	if req.Id == "" {
		return nil, apierr.InvalidField("id", "is required: the server id shown by `atoll operator raft list-peers`")
	}
	return &emptypb.Empty{}, o.s.op.RemovePeer(ctx, req.Id)
}

func (o *operatorService) JoinServer(ctx context.Context, req *atollv1.JoinServerRequest) (*atollv1.JoinServerResponse, error) {
	m := req.GetServer()
	var v apierr.Violations
	if m.GetId() == "" {
		v.Add("server.id", "is required")
	}
	if m.GetRaftAddress() == "" {
		v.Add("server.raftAddress", "is required")
	}
	if m.GetGrpcAddress() == "" {
		v.Add("server.grpcAddress", "is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := o.s.op.Join(ctx, m); err != nil {
		return nil, err
	}
	peers, err := o.s.op.RaftPeers(ctx)
	if err != nil {
		return nil, err
	}
	return &atollv1.JoinServerResponse{Peers: peers, Keyring: o.s.op.ClusterKey()}, nil
}

const chunkSize = 256 << 10

func (o *operatorService) SaveSnapshot(_ *atollv1.SaveSnapshotRequest, stream atollv1.OperatorService_SaveSnapshotServer) error {
	var buf bytes.Buffer
	if err := o.s.op.SaveSnapshot(stream.Context(), &buf); err != nil {
		return err
	}
	for b := buf.Bytes(); len(b) > 0; {
		n := min(chunkSize, len(b))
		if err := stream.Send(&atollv1.SnapshotChunk{Data: b[:n]}); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (o *operatorService) RestoreSnapshot(stream atollv1.OperatorService_RestoreSnapshotServer) error {
	var buf bytes.Buffer
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if buf.Len()+len(c.Data) > 4<<30 {
			return apierr.InvalidField("data", "snapshot larger than 4 GiB")
		}
		buf.Write(c.Data)
	}
	idx, err := o.s.op.RestoreSnapshot(stream.Context(), &buf)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&atollv1.RestoreSnapshotResponse{Index: idx})
}

func (o *operatorService) StateHash(_ context.Context, _ *atollv1.StateHashRequest) (*atollv1.StateHashResponse, error) {
	tx := o.s.snap()
	h, err := tx.Hash()
	if err != nil {
		return nil, err
	}
	return &atollv1.StateHashResponse{Sha256: h, AppliedIndex: tx.AppliedIndex(), ServerId: o.s.op.ServerID()}, nil
}
