package controlplane_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// A node belongs to the join token it first registered with: another join
// token cannot open a session as that node (and receive its assignments).
func TestNodeIdentityBoundToItsJoinToken(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	conn := cptest.Conn(t, c.Servers[0])
	ctx := cptest.Ctx(t, c.AdminToken)
	tokens := atollv1.NewTokenServiceClient(conn)
	mk := func(name string) string {
		r, err := tokens.CreateToken(ctx, &atollv1.CreateTokenRequest{Name: name, Scopes: []string{"node:agent"}})
		if err != nil {
			t.Fatal(err)
		}
		return r.Secret
	}
	first, second := mk("join-a"), mk("join-b")
	res := &atollv1.Resources{Cpu: 1000, Memory: 1024, Storage: 1024}
	register := func(token, nodeID string) (string, error) {
		sctx := metadata.AppendToOutgoingContext(cptest.Ctx(t, ""), "authorization", "Bearer "+token)
		stream, err := atollv1.NewAgentServiceClient(conn).Session(sctx)
		if err != nil {
			return "", err
		}
		defer stream.CloseSend()
		if err := stream.Send(&atollv1.AgentMessage{Msg: &atollv1.AgentMessage_Register{Register: &atollv1.RegisterNode{
			NodeId: nodeID, Name: "h", Capacity: res, Allocatable: res}}}); err != nil {
			return "", err
		}
		m, err := stream.Recv()
		if err != nil {
			return "", err
		}
		return m.GetSession().GetNodeId(), nil
	}
	node, err := register(first, "")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := register(first, node); err != nil || again != node {
		t.Fatalf("same token re-registers: %q %v", again, err)
	}
	if _, err := register(second, node); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("another join token took node %s: %v", node, err)
	}
	if _, err := register(c.AdminToken, node); err != nil {
		t.Fatalf("cluster admin may re-register it: %v", err)
	}
}
