package controlplane_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/scheduler"
)

// Two evaluations race on the same snapshot: each plan fits the node alone,
// not both together. Both go through the raft Apply path; the state machine
// commits the first and refuses the second whole (ABORTED), so the node is
// never overcommitted. The leader's loop then re-evaluates on fresh state and
// reports the app that does not fit.
func TestSchedStalePlanRejected(t *testing.T) {
	longTTL := func(_ int, c *controlplane.Config) { c.NodeTTL = time.Hour } // the node has no agent
	f := newSchedFixture(t, 3, nil, longTTL)
	l := f.c.WaitLeader()
	res := &atollv1.Resources{Cpu: 1000, Memory: 4096, Storage: 10000}
	nodeID := api.NewID("node")
	if r, err := l.Apply(f.ctx, &atollv1.Command{Actor: "test", Cmd: &atollv1.Command_UpsertNode{UpsertNode: &atollv1.UpsertNodeCmd{Node: &atollv1.Node{
		Id: nodeID, Name: "only", Status: atollv1.NodeStatus_NODE_READY, Capacity: res, Allocatable: res}}}}); err != nil || r.Err != nil {
		t.Fatalf("register node: %v %+v", err, r)
	}
	// A stopped environment keeps the leader's own loop away from its apps
	// while the test plays the two racing evaluators.
	if _, err := f.envs.StopEnvironment(f.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: f.env.Id}); err != nil {
		t.Fatal(err)
	}
	a := f.createApp(t, "a", 1, "600m", "128Mi")
	b := f.createApp(t, "b", 1, "600m", "128Mi")

	tx := f.snap()
	planFor := func(app *atollv1.App) *atollv1.ApplyPlanCmd {
		n := tx.Node(nodeID)
		cur := tx.App(app.Id)
		p, err := scheduler.Schedule(scheduler.Input{
			Nodes:    []scheduler.Node{{ID: n.Id, Status: scheduler.NodeReady, Capacity: schedRes(n.Capacity), Allocatable: schedRes(n.Allocatable)}},
			Requests: []scheduler.Request{{AppID: cur.Id, Replicas: 1, Resources: schedRes(cur.Requests)}},
		}, scheduler.Options{Seed: 1})
		if err != nil || len(p.Placements) != 1 {
			t.Fatalf("plan for %s alone: %v %+v", app.Name, err, p)
		}
		return &atollv1.ApplyPlanCmd{
			Place: []*atollv1.Instance{{Id: api.NewID("inst"), AppId: cur.Id, EnvId: cur.EnvIdRef, OrgId: cur.OrgId,
				NodeId: p.Placements[0].NodeID, AppVersion: cur.Version, Replica: 1, Resources: cur.Requests}},
			AppVersions: map[string]int64{cur.Id: cur.Version},
			NodeIndexes: map[string]uint64{nodeID: n.ModifyIndex},
		}
	}
	p1, p2 := planFor(a), planFor(b)
	apply := func(p *atollv1.ApplyPlanCmd) error {
		r, err := l.Apply(f.ctx, &atollv1.Command{Actor: "system:scheduler", Cmd: &atollv1.Command_ApplyPlan{ApplyPlan: p}})
		if err != nil {
			t.Fatalf("raft apply: %v", err)
		}
		return r.Err
	}
	if err := apply(p1); err != nil {
		t.Fatalf("first plan: %v", err)
	}
	err := apply(p2)
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "no room for cpu") {
		t.Fatalf("second plan from the same snapshot: %v, want ABORTED naming cpu", err)
	}
	checkNode := func() {
		t.Helper()
		n, err := f.nodes.GetNode(f.ctx, &atollv1.GetNodeRequest{NodeId: nodeID})
		if err != nil {
			t.Fatal(err)
		}
		if n.Allocated.GetCpu() > n.Allocatable.GetCpu() || n.Allocated.GetMemory() > n.Allocatable.GetMemory() {
			t.Fatalf("node overcommitted: allocated %v > allocatable %v", n.Allocated, n.Allocatable)
		}
		if n.Allocated.GetCpu() != 600 || n.Instances != 1 {
			t.Fatalf("node: allocated %v, %d instances; want the first plan only", n.Allocated, n.Instances)
		}
	}
	checkNode()
	if got := countApp(f.snap(), b.Id); got.total != 0 {
		t.Fatalf("the refused plan left %d instances of b", got.total)
	}

	// Re-evaluation on fresh state: the loop keeps a and explains b.
	if _, err := f.envs.StartEnvironment(f.ctx, &atollv1.StartEnvironmentRequest{EnvironmentId: f.env.Id}); err != nil {
		t.Fatal(err)
	}
	f.c.WaitState(schedWait, "b explained as unschedulable", func(tx *state.Txn) bool {
		return tx.App(b.Id).GetStatus().GetMessage() == "0/1 nodes available: 1 insufficient cpu"
	})
	checkNode()
	if got := countApp(f.snap(), a.Id); got.total != 1 {
		t.Fatalf("a has %d instances after re-evaluation", got.total)
	}
}

func schedRes(r *atollv1.Resources) scheduler.Resources {
	return scheduler.Resources{CPU: int64(r.GetCpu()), MemoryMB: int64(r.GetMemory()), StorageMB: int64(r.GetStorage())}
}

// Quota race: 100 concurrent CreateApp calls (spread over the leader and two
// followers) whose environment quota has room for exactly 10: exactly 10
// are accepted, 90 get RESOURCE_EXHAUSTED naming the dimension.
func TestSchedAppQuotaRace(t *testing.T) {
	f := newSchedFixture(t, 3, &atollv1.Resources{Cpu: 1000, Memory: 4096, Storage: 10240})
	var clients []atollv1.AppServiceClient
	for _, s := range f.c.Live() {
		clients = append(clients, atollv1.NewAppServiceClient(cptest.Conn(t, s)))
	}
	const tries = 100
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		accepted  int
		exhausted int
		other     []error
	)
	start := make(chan struct{})
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := clients[i%len(clients)].CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: f.env.Id, App: &atollv1.App{
				Name: fmt.Sprintf("racer-%03d", i), Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "1"}},
				ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "64Mi"}, Replicas: 1,
			}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case status.Code(err) == codes.ResourceExhausted:
				exhausted++
				if msg := status.Convert(err).Message(); !strings.Contains(msg, "cpu") {
					t.Errorf("RESOURCE_EXHAUSTED does not name the dimension: %q", msg)
				}
			default:
				other = append(other, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if accepted != 10 || exhausted != 90 || len(other) > 0 {
		t.Fatalf("accepted %d, exhausted %d, other %v; want 10 and 90", accepted, exhausted, other)
	}
	env, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: f.env.Id})
	if err != nil {
		t.Fatal(err)
	}
	if env.ResourceUsage.GetCpu() != 1000 || env.Resources.GetApps() != 10 {
		t.Fatalf("environment after the race: usage %v, %d apps", env.ResourceUsage, env.Resources.GetApps())
	}
}
