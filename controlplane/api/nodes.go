package api

import (
	"context"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type nodeService struct {
	*Services
	atollv1.UnimplementedNodeServiceServer
}

// NodeHealth gives the leader's view of agent heartbeats and measured usage.
type NodeHealth interface {
	LastHeartbeat(nodeID string) time.Time
	NodeUsage(nodeID string) *atollv1.Resources
}

func (s *Services) presentNode(tx *state.Txn, n *atollv1.Node) *atollv1.Node {
	out := proto.Clone(n).(*atollv1.Node)
	out.Allocated = fsm.NodeAllocated(tx, n.Id).Proto()
	out.Instances = int32(len(tx.NodeInstances(n.Id)))
	if h := s.opts.Health; h != nil {
		if t := h.LastHeartbeat(n.Id); !t.IsZero() {
			out.LastHeartbeat = tsOf(t)
		}
		out.Measured = h.NodeUsage(n.Id)
	}
	return out
}

func (s *nodeService) ListNodes(ctx context.Context, _ *atollv1.ListNodesRequest) (*atollv1.ListNodesResponse, error) {
	tx := s.snap()
	nodes, _ := tx.Nodes()
	resp := &atollv1.ListNodesResponse{}
	for _, n := range nodes {
		resp.Nodes = append(resp.Nodes, s.presentNode(tx, n))
	}
	sort.Slice(resp.Nodes, func(i, j int) bool { return resp.Nodes[i].Name < resp.Nodes[j].Name })
	return resp, nil
}

func (s *Services) nodeRef(tx *state.Txn, ref string) (*atollv1.Node, error) {
	if ref == "" {
		return nil, apierr.InvalidField("nodeId", "is required (the node's id or name)")
	}
	if n := tx.Node(ref); n != nil {
		return n, nil
	}
	nodes, _ := tx.Nodes()
	var found []*atollv1.Node
	for _, n := range nodes {
		if n.Name == ref || strings.HasPrefix(n.Id, ref) && len(ref) >= 8 {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, apierr.NotFound("node", ref)
	}
	return nil, apierr.InvalidField("nodeId", "%q matches %d nodes: use the id", ref, len(found))
}

func (s *nodeService) GetNode(ctx context.Context, req *atollv1.GetNodeRequest) (*atollv1.Node, error) {
	tx := s.snap()
	n, err := s.nodeRef(tx, req.NodeId)
	if err != nil {
		return nil, err
	}
	return s.presentNode(tx, n), nil
}

func (s *nodeService) DrainNode(ctx context.Context, req *atollv1.DrainNodeRequest) (*atollv1.Node, error) {
	tx := s.snap()
	n, err := s.nodeRef(tx, req.NodeId)
	if err != nil {
		return nil, err
	}
	drain := int32(1)
	if req.Undrain {
		drain = 2
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_SetNodeStatus{SetNodeStatus: &atollv1.SetNodeStatusCmd{NodeId: n.Id, Drain: drain}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	tx = s.snap()
	return s.presentNode(tx, tx.Node(n.Id)), nil
}
