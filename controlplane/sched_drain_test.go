package controlplane_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// A drain does not stall on an instance that cannot be placed anywhere: the
// instances that can move do, the ones that cannot keep running on the
// draining node, and the node's drain progress names them with the
// scheduler's reasons. Here "big" fits no other node and "db" is pinned to
// the draining node by its volume; both come before "small" in the drain
// order (apps by creation), so a drain that waits on its first instance
// would never move "small".
func TestSchedDrainSkipsUnplaceableInstances(t *testing.T) {
	f := newSchedFixture(t, 1, nil)
	a := f.agent("host-a", 4000, 8192)
	big := f.createApp(t, "big", 1, "1500m", "128Mi")
	if _, err := atollv1.NewVolumeServiceClient(cptestConn(t, f)).CreateVolume(f.ctx, &atollv1.CreateVolumeRequest{EnvId: f.env.Id, Volume: &atollv1.Volume{Name: "data", SizeMb: 100}}); err != nil {
		t.Fatal(err)
	}
	db, err := f.apps.CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: f.env.Id, App: &atollv1.App{
		Name: "db", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "pg", Tag: "16"}},
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "64Mi"}, Replicas: 1,
		VolumeMounts: []*atollv1.VolumeMount{{VolNameRef: "data", Path: "/data"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	small := f.createApp(t, "small", 2, "200m", "64Mi")
	for _, app := range []*atollv1.App{big, db, small} {
		f.waitSettled(t, app.Id, int(app.Replicas))
	}
	node := a.NodeID()
	instOf := func(tx *state.Txn, appID string) *atollv1.Instance {
		ins := tx.AppInstances(appID)
		if len(ins) != 1 {
			t.Fatalf("app %s has %d instances, want 1", appID, len(ins))
		}
		return ins[0]
	}
	bigInst, dbInst := instOf(f.snap(), big.Id), instOf(f.snap(), db.Id)
	if bigInst.NodeId != node || dbInst.NodeId != node || countApp(f.snap(), small.Id).byNode[node] != 2 {
		t.Fatalf("setup: not everything runs on host-a")
	}
	f.agent("host-b", 1000, 4096)
	f.agent("host-c", 1000, 4096)

	if _, err := f.nodes.DrainNode(f.ctx, &atollv1.DrainNodeRequest{NodeId: "host-a"}); err != nil {
		t.Fatal(err)
	}
	const bigWhy = "0/3 nodes available: 2 insufficient cpu, 1 draining"
	dbWhy := "0/3 nodes available: 2 volume data on node " + node + ", 1 draining"
	f.c.WaitState(schedWait, "small moved off host-a; big and db still there with their reasons", func(tx *state.Txn) bool {
		c := countApp(tx, small.Id)
		return c.byNode[node] == 0 && settled(tx, small.Id, 2) &&
			tx.App(big.Id).GetStatus().GetMessage() == "cannot move off a draining node: "+bigWhy &&
			tx.App(db.Id).GetStatus().GetMessage() == "cannot move off a draining node: "+dbWhy
	})
	// The unplaceable instances were not stopped: the same instances still
	// run on the draining node.
	tx := f.snap()
	for _, in := range []*atollv1.Instance{bigInst, dbInst} {
		cur := tx.Instance(in.Id)
		if cur == nil || cur.NodeId != node || cur.State != atollv1.InstanceState_INSTANCE_RUNNING {
			t.Fatalf("instance %s with nowhere to go: %v", in.Id, cur)
		}
	}
	// Each blocked app was told once: its message does not flap while the
	// others move.
	evs, _, _ := tx.EventsAfter(0)
	told := map[string]int{}
	for _, e := range evs {
		if e.Type == "app.unschedulable" {
			told[e.ObjectId]++
		}
	}
	if told[big.Id] != 1 || told[db.Id] != 1 || told[small.Id] != 0 {
		t.Fatalf("app.unschedulable events: big %d, db %d, small %d; want 1, 1, 0", told[big.Id], told[db.Id], told[small.Id])
	}
	a.WaitInstances(schedWait, 2)
	if got := a.Instances(); !slices.Contains(got, bigInst.Id) || !slices.Contains(got, dbInst.Id) {
		t.Fatalf("host-a runs %v, want the 2 instances that cannot move", got)
	}
	n, err := f.nodes.GetNode(f.ctx, &atollv1.GetNodeRequest{NodeId: "host-a"})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("draining: 2 of 4 instances moved; 2 cannot move: instance %s of app big: %s; instance %s of app db: %s",
		bigInst.Id, bigWhy, dbInst.Id, dbWhy)
	if n.Status != atollv1.NodeStatus_NODE_DRAINING || n.StatusMessage != want || n.Instances != 2 {
		t.Fatalf("node while the drain is blocked: %s %q, %d instances\nwant message %q", n.Status, n.StatusMessage, n.Instances, want)
	}

	// Room for big appears: it moves; db stays with its volume.
	f.agent("host-d", 2000, 4096)
	f.c.WaitState(schedWait, "big moved", func(tx *state.Txn) bool {
		c := countApp(tx, big.Id)
		return c.byNode[node] == 0 && settled(tx, big.Id, 1) && tx.App(big.Id).GetStatus().GetMessage() == ""
	})
	f.c.WaitState(schedWait, "node message names only db", func(tx *state.Txn) bool {
		n, err := f.nodes.GetNode(f.ctx, &atollv1.GetNodeRequest{NodeId: "host-a"})
		return err == nil && n.StatusMessage == fmt.Sprintf("draining: 3 of 4 instances moved; 1 cannot move: instance %s of app db: %s", dbInst.Id, "0/4 nodes available: 3 volume data on node "+node+", 1 draining")
	})
}
