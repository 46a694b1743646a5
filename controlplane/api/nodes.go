package api

import (
	"context"
	"fmt"
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

// DrainBlockedPrefix starts the status message of an app the scheduler
// could not move (all or part of) off a draining node; the scheduler's
// reasons follow.
const DrainBlockedPrefix = "cannot move off a draining node: "

// Nodes are cluster resources: every organization whose tokens have
// node:read sees every node's status and capacity (where its apps can run).
// Who registered a node (registeredByToken, a token id of the organization
// that joined it) and which apps of other organizations run on it are shown
// only to that organization and to cluster admins.
func (s *Services) presentNode(ctx context.Context, tx *state.Txn, n *atollv1.Node) *atollv1.Node {
	out := proto.Clone(n).(*atollv1.Node)
	viewer := nodeViewerOf(ctx)
	if out.RegisteredByToken != "" && !viewer.admin {
		if t := tx.Token(out.RegisteredByToken); t == nil || t.OrgId != viewer.org {
			out.RegisteredByToken = ""
		}
	}
	out.Allocated = fsm.NodeAllocated(tx, n.Id).Proto()
	out.Instances = int32(len(tx.NodeInstances(n.Id)))
	if blocked := drainBlocked(tx, n, viewer); blocked != "" {
		if out.StatusMessage != "" {
			out.StatusMessage += "; "
		}
		out.StatusMessage += blocked
	}
	if h := s.opts.Health; h != nil {
		if t := h.LastHeartbeat(n.Id); !t.IsZero() {
			out.LastHeartbeat = tsOf(t)
		}
		out.Measured = h.NodeUsage(n.Id)
	}
	return out
}

// drainBlocked names the instances of a draining node that cannot move, and
// why (the scheduler's reasons in their apps' status messages):
//
//	2 cannot move: instance inst_1 of app big: 0/3 nodes available: 2 insufficient cpu, 1 draining; instances inst_2, inst_3 of app db: ...
//
// "" when every instance can move or the node is not draining.
// nodeViewer is who looks at a node: their organization, and whether they
// administer the cluster.
type nodeViewer struct {
	org   string
	admin bool
}

func nodeViewerOf(ctx context.Context) nodeViewer {
	id := IdentityFrom(ctx)
	if id == nil { // in-process callers
		return nodeViewer{admin: true}
	}
	return nodeViewer{org: id.OrgID, admin: id.Has(PermClusterAdmin)}
}

func drainBlocked(tx *state.Txn, n *atollv1.Node, viewer nodeViewer) string {
	if n.Status != atollv1.NodeStatus_NODE_DRAINING {
		return ""
	}
	others := 0 // blocked instances of other organizations' apps: counted, not named
	type group struct {
		app *atollv1.App
		why string
		ids []string
	}
	byApp := map[string]*group{}
	var groups []*group
	count := 0
	for _, in := range tx.NodeInstances(n.Id) {
		app := tx.App(in.AppId)
		if app == nil || app.IsDeleted || in.AppVersion != app.Version {
			continue
		}
		why, ok := strings.CutPrefix(app.GetStatus().GetMessage(), DrainBlockedPrefix)
		if !ok {
			continue
		}
		if !viewer.admin && app.OrgId != viewer.org {
			others++
			count++
			continue
		}
		g := byApp[app.Id]
		if g == nil {
			g = &group{app: app, why: why}
			byApp[app.Id] = g
			groups = append(groups, g)
		}
		g.ids = append(g.ids, in.Id)
		count++
	}
	if count == 0 {
		return ""
	}
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i].app, groups[j].app
		return a.CreateIndex < b.CreateIndex || a.CreateIndex == b.CreateIndex && a.Id < b.Id
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d cannot move: ", count)
	for k, g := range groups {
		if k > 0 {
			b.WriteString("; ")
		}
		sort.Strings(g.ids)
		noun := "instance"
		if len(g.ids) > 1 {
			noun = "instances"
		}
		fmt.Fprintf(&b, "%s %s of app %s: %s", noun, strings.Join(g.ids, ", "), g.app.Name, g.why)
	}
	if others > 0 {
		if len(groups) > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d instance(s) of other organizations", others)
	}
	return b.String()
}

func (s *nodeService) ListNodes(ctx context.Context, _ *atollv1.ListNodesRequest) (*atollv1.ListNodesResponse, error) {
	tx := s.snap()
	nodes, _ := tx.Nodes()
	resp := &atollv1.ListNodesResponse{}
	for _, n := range nodes {
		resp.Nodes = append(resp.Nodes, s.presentNode(ctx, tx, n))
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
	return s.presentNode(ctx, tx, n), nil
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
	return s.presentNode(ctx, tx, tx.Node(n.Id)), nil
}
