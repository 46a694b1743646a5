package controlplane_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Host loss: an agent stops heart-beating -> its node goes DOWN, its
// instances are LOST and replaced on the other nodes; when it comes back
// (same node id, new session) its full assignment set no longer lists the old
// instances, so it removes them: no app runs more replicas than asked.
func TestSchedHostLossReplacesAndNoDuplicates(t *testing.T) {
	f := newSchedFixture(t, 3, nil)
	agents := []*cptest.FakeAgent{f.agent("host-a", 2000, 4096), f.agent("host-b", 2000, 4096), f.agent("host-c", 2000, 4096)}
	web := f.createApp(t, "web", 3, "500m", "256Mi")
	api := f.createApp(t, "api", 2, "250m", "128Mi")
	f.waitSettled(t, web.Id, 3)
	f.waitSettled(t, api.Id, 2)

	victim := busiest(f.snap(), agents...)
	node := victim.NodeID()
	old := victim.Instances()
	if len(old) == 0 {
		t.Fatal("the busiest agent runs nothing")
	}
	victim.PauseHeartbeats()
	f.c.WaitState(schedWait, "node down and its instances replaced elsewhere", func(tx *state.Txn) bool {
		n := tx.Node(node)
		if n == nil || n.Status != atollv1.NodeStatus_NODE_DOWN {
			return false
		}
		for _, app := range []*atollv1.App{web, api} {
			c := countApp(tx, app.Id)
			if c.byNode[node] != 0 || !settled(tx, app.Id, int(app.Replicas)) {
				return false
			}
		}
		return true
	})

	// The agent comes back: a new session with the same node id.
	victim.Reconnect()
	victim.Resume()
	if victim.NodeID() != node {
		t.Fatalf("node id changed across sessions: %s -> %s", node, victim.NodeID())
	}
	victim.WaitUntil(schedWait, "old instances removed from the returning agent", func() bool {
		for _, id := range old {
			if slices.Contains(victim.Instances(), id) {
				return false
			}
		}
		return true
	})
	f.c.WaitState(schedWait, "node ready, no duplicates", func(tx *state.Txn) bool {
		n := tx.Node(node)
		return n != nil && n.Status == atollv1.NodeStatus_NODE_READY && settled(tx, web.Id, 3) && settled(tx, api.Id, 2)
	})
	// What the agents run is what the state says: exactly the replicas.
	running := 0
	for _, a := range agents {
		running += len(a.Instances())
	}
	tx := f.snap()
	if want := len(tx.AppInstances(web.Id)) + len(tx.AppInstances(api.Id)); running != want || want != 5 {
		t.Fatalf("agents run %d instances, state has %d, want 5", running, want)
	}
}

// Drain moves every instance off a node, one at a time: a replacement runs
// before the drained instance stops, so no app ever has fewer than its
// replicas RUNNING, and at most one move is in flight. Undrain makes the node
// schedulable again.
func TestSchedDrainMovesOneByOne(t *testing.T) {
	f := newSchedFixture(t, 3, nil)
	agents := []*cptest.FakeAgent{f.agent("host-a", 2000, 4096), f.agent("host-b", 2000, 4096), f.agent("host-c", 2000, 4096)}
	web := f.createApp(t, "web", 4, "250m", "128Mi")
	worker := f.createApp(t, "worker", 1, "500m", "256Mi")
	f.waitSettled(t, web.Id, 4)
	f.waitSettled(t, worker.Id, 1)
	victim := busiest(f.snap(), agents...)
	node := victim.NodeID()
	total := len(f.snap().NodeInstances(node))

	// Watch every committed state while the drain runs.
	var (
		mu         sync.Mutex
		violations []string
		stop       = make(chan struct{})
		watched    = make(chan struct{})
	)
	go func() {
		defer close(watched)
		l := f.c.WaitLeader()
		for {
			st, _ := l.State()
			tx := st.Snapshot()
			extra := 0
			for _, app := range []*atollv1.App{web, worker} {
				c := countApp(tx, app.Id)
				if c.running < int(app.Replicas) {
					mu.Lock()
					violations = append(violations, fmt.Sprintf("index %d: app %s has %d RUNNING < %d", tx.AppliedIndex(), app.Name, c.running, app.Replicas))
					mu.Unlock()
				}
				extra += max(0, c.total-int(app.Replicas))
			}
			if extra > 1 {
				mu.Lock()
				violations = append(violations, fmt.Sprintf("index %d: %d moves in flight", tx.AppliedIndex(), extra))
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-tx.TableWatch(state.TableMeta):
			}
		}
	}()

	n, err := f.nodes.DrainNode(f.ctx, &atollv1.DrainNodeRequest{NodeId: nameOf(victim, agents)})
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != atollv1.NodeStatus_NODE_DRAINING || n.StatusMessage != fmt.Sprintf("draining: 0 of %d instances moved", total) {
		t.Fatalf("after drain: status %s, message %q", n.Status, n.StatusMessage)
	}
	victim.WaitInstances(schedWait, 0)
	f.c.WaitState(schedWait, "everything moved off the drained node", func(tx *state.Txn) bool {
		return len(tx.NodeInstances(node)) == 0 && settled(tx, web.Id, 4) && settled(tx, worker.Id, 1)
	})
	close(stop)
	<-watched
	if len(violations) > 0 {
		t.Fatalf("drain broke its invariants:\n%s", strings.Join(violations, "\n"))
	}
	got, err := f.nodes.GetNode(f.ctx, &atollv1.GetNodeRequest{NodeId: node})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("drained: %d of %d instances moved", total, total); got.StatusMessage != want || got.Instances != 0 {
		t.Fatalf("drained node: message %q (want %q), %d instances", got.StatusMessage, want, got.Instances)
	}

	// Undrain: the node takes work again. The other nodes cannot hold two
	// more 1500m instances, so one lands on it.
	if n, err = f.nodes.DrainNode(f.ctx, &atollv1.DrainNodeRequest{NodeId: node, Undrain: true}); err != nil || n.Status != atollv1.NodeStatus_NODE_READY || n.StatusMessage != "" {
		t.Fatalf("undrain: %v %v", n, err)
	}
	big := f.createApp(t, "big", 2, "1500m", "256Mi")
	f.waitSettled(t, big.Id, 2)
	if countApp(f.snap(), big.Id).byNode[node] != 1 {
		t.Fatalf("the undrained node got no instance of %s: %v", big.Name, countApp(f.snap(), big.Id).byNode)
	}
}

func nameOf(a *cptest.FakeAgent, agents []*cptest.FakeAgent) string {
	for i, x := range agents {
		if x == a {
			return fmt.Sprintf("host-%c", 'a'+i)
		}
	}
	return ""
}

// A drained instance with nowhere to go keeps running; the app says why,
// and it moves once a node with room joins.
func TestSchedDrainWithoutRoomKeepsRunning(t *testing.T) {
	f := newSchedFixture(t, 1, nil)
	a := f.agent("host-a", 1000, 4096)
	f.agent("host-b", 1000, 4096)
	app := f.createApp(t, "web", 2, "600m", "128Mi")
	f.waitSettled(t, app.Id, 2)
	if _, err := f.nodes.DrainNode(f.ctx, &atollv1.DrainNodeRequest{NodeId: "host-a"}); err != nil {
		t.Fatal(err)
	}
	const why = "cannot move off a draining node: 0/2 nodes available: 1 draining, 1 insufficient cpu"
	f.c.WaitState(schedWait, "app explains the blocked drain", func(tx *state.Txn) bool {
		return tx.App(app.Id).GetStatus().GetMessage() == why
	})
	if got, err := f.apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: f.env.Id, AppId: app.Id}); err != nil || got.Status.Running != 2 || got.Status.Message != why {
		t.Fatalf("app while the drain is blocked: %v %v", got.GetStatus(), err)
	}
	if len(a.Instances()) != 1 {
		t.Fatalf("the draining node stopped its instance with nowhere to go: %v", a.Instances())
	}
	f.agent("host-c", 1000, 4096)
	a.WaitInstances(schedWait, 0)
	f.c.WaitState(schedWait, "moved, message cleared", func(tx *state.Txn) bool {
		return settled(tx, app.Id, 2) && tx.App(app.Id).GetStatus().GetMessage() == ""
	})
}

// An app that fits its quota but not the cluster stays PENDING with the
// scheduler's reasons (status and an app.unschedulable event) and is placed
// when a node with room registers. The scheduler metrics follow.
func TestSchedUnschedulableAppPlacedWhenNodeJoins(t *testing.T) {
	f := newSchedFixture(t, 3, nil)
	f.agent("small-1", 1000, 2048)
	f.agent("small-2", 1000, 2048)
	app := f.createApp(t, "huge", 2, "1500m", "512Mi")
	const why = "0/2 nodes available: 2 insufficient cpu"
	f.c.WaitState(schedWait, "unschedulable reasons on the app", func(tx *state.Txn) bool {
		return tx.App(app.Id).GetStatus().GetMessage() == why
	})
	got, err := f.apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: f.env.Id, AppId: "huge"})
	if err != nil || got.Status.State != "PENDING" || got.Status.Message != why {
		t.Fatalf("pending app: %v %v", got.GetStatus(), err)
	}
	evs, _, _ := f.snap().EventsAfter(0)
	found := false
	for _, e := range evs {
		found = found || e.Type == "app.unschedulable" && e.ObjectId == app.Id
	}
	if !found {
		t.Fatal("no app.unschedulable event")
	}
	reg := f.registry(t)
	if v := schedMetric(t, reg, "atoll_scheduler_pending_apps", nil); v != 1 {
		t.Fatalf("pending_apps = %v, want 1", v)
	}
	if v := schedMetric(t, reg, "atoll_scheduler_failed_placements_total", map[string]string{"reason": "insufficient cpu"}); v < 1 {
		t.Fatalf("failed_placements_total{reason=insufficient cpu} = %v", v)
	}
	if n, err := testutil.GatherAndCount(reg, "atoll_scheduler_evaluation_duration_seconds"); err != nil || n != 1 {
		t.Fatalf("evaluation histogram: %d series, %v", n, err)
	}
	before := schedMetric(t, reg, "atoll_scheduler_placements_total", nil)

	f.agent("large", 4000, 8192)
	f.waitSettled(t, app.Id, 2)
	f.c.WaitState(schedWait, "message cleared", func(tx *state.Txn) bool { return tx.App(app.Id).GetStatus().GetMessage() == "" })
	if got, _ := f.apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: f.env.Id, AppId: "huge"}); got.Status.State != "RUNNING" {
		t.Fatalf("app after the node joined: %v", got.Status)
	}
	if f.c.WaitLeader() == f.c.Leader() && f.registry(t) == reg {
		if v := schedMetric(t, reg, "atoll_scheduler_placements_total", nil); v < before+2 {
			t.Fatalf("placements_total %v -> %v, want +2", before, v)
		}
		if v := schedMetric(t, reg, "atoll_scheduler_pending_apps", nil); v != 0 {
			t.Fatalf("pending_apps = %v after placement", v)
		}
	}
}

// Rolling update: a new image tag replaces the instances one at a time;
// never fewer than replicas-1 RUNNING, and in the end every instance runs
// the new version.
func TestSchedRollingUpdate(t *testing.T) {
	f := newSchedFixture(t, 3, nil)
	f.agent("host-a", 4000, 8192)
	f.agent("host-b", 4000, 8192)
	app := f.createApp(t, "web", 4, "250m", "128Mi")
	f.waitSettled(t, app.Id, 4)

	var (
		mu       sync.Mutex
		minRun   = 1 << 30
		maxTotal int
		stop     = make(chan struct{})
		watched  = make(chan struct{})
	)
	go func() {
		defer close(watched)
		l := f.c.WaitLeader()
		for {
			st, _ := l.State()
			tx := st.Snapshot()
			run, total := 0, 0
			for _, in := range tx.AppInstances(app.Id) {
				total++
				if in.State == atollv1.InstanceState_INSTANCE_RUNNING {
					run++
				}
			}
			mu.Lock()
			minRun, maxTotal = min(minRun, run), max(maxTotal, total)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tx.TableWatch(state.TableMeta):
			}
		}
	}()
	upd, err := f.apps.UpdateApp(f.ctx, &atollv1.UpdateAppRequest{EnvId: f.env.Id, AppId: app.Id,
		App:        &atollv1.App{Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "2"}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"source"}}})
	if err != nil {
		t.Fatal(err)
	}
	f.c.WaitState(schedWait, "all instances on the new version", func(tx *state.Txn) bool {
		for _, in := range tx.AppInstances(app.Id) {
			if in.AppVersion != upd.Version {
				return false
			}
		}
		return settled(tx, app.Id, 4)
	})
	close(stop)
	<-watched
	if minRun < 3 || maxTotal > 5 {
		t.Fatalf("rollout went down to %d RUNNING (want >= 3) and up to %d instances (want <= 5)", minRun, maxTotal)
	}
	for _, in := range f.snap().AppInstances(app.Id) {
		if in.AppVersion != upd.Version {
			t.Fatalf("instance %s still at version %d", in.Id, in.AppVersion)
		}
	}
}

// The agent's heartbeats resume on the session that outlived the TTL (a
// stalled agent, not a restarted one): the node is READY again and the
// session's diffs remove the instances that were replaced meanwhile.
func TestSchedHostLossHeartbeatsResumeOnSameSession(t *testing.T) {
	f := newSchedFixture(t, 3, nil)
	agents := []*cptest.FakeAgent{f.agent("host-a", 2000, 4096), f.agent("host-b", 2000, 4096)}
	web := f.createApp(t, "web", 2, "500m", "256Mi")
	f.waitSettled(t, web.Id, 2)
	victim := busiest(f.snap(), agents...)
	node := victim.NodeID()
	victim.PauseHeartbeats()
	f.c.WaitState(schedWait, "node down and replaced", func(tx *state.Txn) bool {
		n := tx.Node(node)
		return n != nil && n.Status == atollv1.NodeStatus_NODE_DOWN && countApp(tx, web.Id).byNode[node] == 0 && settled(tx, web.Id, 2)
	})
	sessions := victim.Sessions()
	victim.Resume()
	victim.WaitInstances(schedWait, 0)
	f.c.WaitState(schedWait, "node ready again, no duplicates", func(tx *state.Txn) bool {
		n := tx.Node(node)
		return n != nil && n.Status == atollv1.NodeStatus_NODE_READY && settled(tx, web.Id, 2)
	})
	if victim.Sessions() != sessions {
		t.Fatalf("the agent reconnected (%d -> %d sessions); the test wants the same session", sessions, victim.Sessions())
	}
}
