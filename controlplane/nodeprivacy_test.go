package controlplane_test

import (
	"net/http"
	"testing"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Nodes are shared: every organization sees them (capacity, status), but
// only the organization that registered a node (and cluster admins) sees
// which of its tokens did.
func TestNodeRegisteredByHiddenFromOtherOrgs(t *testing.T) {
	f := newAPIFixture(t)
	agent := f.c.NewFakeAgent(cptest.FakeAgentConfig{Name: "shared-host"})
	conn := cptest.Conn(t, f.srv)
	nodes := atollv1.NewNodeServiceClient(conn)
	me, err := f.toks.WhoAmI(f.ctx, &atollv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	otherOrg := f.newOrg(t, "other", nil)
	sameOrgReader := f.token(t, "node:read")

	get := func(token string) (*atollv1.Node, *atollv1.Node) {
		t.Helper()
		ctx := cptest.Ctx(t, token)
		n, err := nodes.GetNode(ctx, &atollv1.GetNodeRequest{NodeId: agent.NodeID()})
		if err != nil {
			t.Fatalf("GetNode: %v", err)
		}
		l, err := nodes.ListNodes(ctx, &atollv1.ListNodesRequest{})
		if err != nil || len(l.Nodes) != 1 {
			t.Fatalf("ListNodes: %v %v", l, err)
		}
		return n, l.Nodes[0]
	}
	for _, tc := range []struct {
		who, token, want string
	}{
		{"cluster admin", f.c.AdminToken, me.Id},
		{"same organization, node:read", sameOrgReader, me.Id},
		{"another organization", otherOrg, ""},
	} {
		n, l := get(tc.token)
		if n.RegisteredByToken != tc.want || l.RegisteredByToken != tc.want {
			t.Errorf("%s: registeredByToken get=%q list=%q, want %q", tc.who, n.RegisteredByToken, l.RegisteredByToken, tc.want)
		}
		if n.Name != "shared-host" || n.GetAllocatable().GetCpu() == 0 {
			t.Errorf("%s: sees %v, want the node's name and capacity", tc.who, n)
		}
	}
	// REST: the field is absent for the other organization.
	o := f.rest(t, otherOrg).must(http.StatusOK, http.MethodGet, "/v1/nodes/"+agent.NodeID(), nil)
	if o.get("registeredByToken") != nil && o.str("registeredByToken") != "" {
		t.Fatalf("REST node for another organization shows registeredByToken: %s", o.raw)
	}
	if o := f.rest(t, f.c.AdminToken).must(http.StatusOK, http.MethodGet, "/v1/nodes/"+agent.NodeID(), nil); o.str("registeredByToken") != me.Id {
		t.Fatalf("REST node for the admin: %s", o.raw)
	}
}
