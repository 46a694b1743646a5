package fsm_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// rcmd wraps the commands of a rollout in a Command.
func rcmd(org string, c proto.Message) *atollv1.Command {
	out := &atollv1.Command{Time: timestamppb.New(t0), Actor: "tester", OrgId: org}
	switch c := c.(type) {
	case *atollv1.CreateAppCmd:
		out.Cmd = &atollv1.Command_CreateApp{CreateApp: c}
	case *atollv1.UpdateAppCmd:
		out.Cmd = &atollv1.Command_UpdateApp{UpdateApp: c}
	case *atollv1.DeleteAppCmd:
		out.Cmd = &atollv1.Command_DeleteApp{DeleteApp: c}
	case *atollv1.UpsertNodeCmd:
		out.Cmd = &atollv1.Command_UpsertNode{UpsertNode: c}
	case *atollv1.ApplyPlanCmd:
		out.Cmd = &atollv1.Command_ApplyPlan{ApplyPlan: c}
	case *atollv1.UpdateInstancesCmd:
		out.Cmd = &atollv1.Command_UpdateInstances{UpdateInstances: c}
	case *atollv1.CreateVariableSetCmd:
		out.Cmd = &atollv1.Command_CreateVariableSet{CreateVariableSet: c}
	case *atollv1.DeleteVariableSetCmd:
		out.Cmd = &atollv1.Command_DeleteVariableSet{DeleteVariableSet: c}
	case *atollv1.UpdateVariableSetCmd:
		out.Cmd = &atollv1.Command_UpdateVariableSet{UpdateVariableSet: c}
	case *atollv1.CreateFileCmd:
		out.Cmd = &atollv1.Command_CreateFile{CreateFile: c}
	case *atollv1.UpdateFileCmd:
		out.Cmd = &atollv1.Command_UpdateFile{UpdateFile: c}
	default:
		panic("rcmd: unknown command")
	}
	return out
}

// rollout is a script of one app on one node, with helpers that write the
// commands the API, the scheduler loop and the agent would.
type rollout struct {
	*script
	env, node, app string
	version        int64 // the app's version, as the commands advance it
	next           uint64
	f              *fsm.FSM
	t              *testing.T
}

func newRollout(t *testing.T) *rollout {
	s := newScript()
	r := &rollout{script: s, env: api.NewID("env"), node: api.NewID("node"), app: api.NewID("app"), t: t, f: fsm.New(100, nil, nil)}
	initial := s.cmds
	s.cmds = nil
	r.run(initial...)
	r.run(
		s.env(r.env, "web", 2000),
		rcmd(s.org, &atollv1.CreateVariableSetCmd{VariableSet: &atollv1.VariableSet{Id: "vset_a", EnvId: r.env, Name: "a",
			Variables: map[string]*atollv1.Variable{"GREETING": {Value: "hello"}}}}),
		rcmd(s.org, &atollv1.CreateVariableSetCmd{VariableSet: &atollv1.VariableSet{Id: "vset_b", EnvId: r.env, Name: "b",
			Variables: map[string]*atollv1.Variable{"GREETING": {Value: "hi"}}}}),
		rcmd("", &atollv1.UpsertNodeCmd{Node: &atollv1.Node{Id: r.node, Name: "host", Status: atollv1.NodeStatus_NODE_READY,
			Capacity: &atollv1.Resources{Cpu: 8000, Memory: 8000, Storage: 8000}, Allocatable: &atollv1.Resources{Cpu: 8000, Memory: 8000, Storage: 8000}}}),
		rcmd(s.org, &atollv1.CreateAppCmd{App: r.spec("nginx:1", "vset_a", 2)}),
	)
	r.version = 1
	return r
}

func (r *rollout) spec(image, vset string, replicas int32) *atollv1.App {
	name, tag, _ := strings.Cut(image, ":")
	return &atollv1.App{Id: r.app, EnvIdRef: r.env, Name: "web", Replicas: replicas,
		Source:            &atollv1.AppSource{Image: &atollv1.ImageRef{Name: name, Tag: tag}},
		Requests:          &atollv1.Resources{Cpu: 100, Memory: 100},
		VariableSetMounts: []*atollv1.VariableSetMount{{VarSetIdRef: vset}}}
}

// run applies commands one by one and fails the test on a refusal.
func (r *rollout) run(cmds ...*atollv1.Command) {
	r.t.Helper()
	for _, c := range cmds {
		if res := r.try(c); res.Err != nil {
			r.t.Fatalf("command %T refused: %v", c.Cmd, res.Err)
		}
	}
}

func (r *rollout) try(c *atollv1.Command) *fsm.Result {
	r.t.Helper()
	r.script.cmds = append(r.script.cmds, c)
	r.next++
	return apply(r.t, r.f, r.next, []*atollv1.Command{c})[0]
}

func (r *rollout) tx() *state.Txn {
	st, _ := r.f.State()
	return st.Snapshot()
}

func (r *rollout) appNow() *atollv1.App { return r.tx().App(r.app) }

// update writes an app update like the API does (the whole app).
func (r *rollout) update(app *atollv1.App) {
	r.t.Helper()
	r.run(rcmd(r.org, &atollv1.UpdateAppCmd{App: app, ExpectedVersion: r.version}))
	r.version++
}

// place places n instances of the app's current spec version, as the
// scheduler loop does, stopping the listed ones.
func (r *rollout) place(ids []string, stop ...string) {
	r.t.Helper()
	app := r.appNow()
	plan := &atollv1.ApplyPlanCmd{Stop: stop, AppVersions: map[string]int64{app.Id: app.Version},
		NodeIndexes: map[string]uint64{r.node: r.tx().Node(r.node).ModifyIndex}}
	for _, id := range ids {
		plan.Place = append(plan.Place, &atollv1.Instance{Id: id, AppId: app.Id, EnvId: r.env, OrgId: app.OrgId, NodeId: r.node,
			AppVersion: fsm.SpecVersion(app), Resources: app.Requests})
	}
	r.run(rcmd("", plan))
}

// report writes agent states: id -> state, with an error for ERROR.
func (r *rollout) report(state atollv1.InstanceState, errMsg string, ids ...string) {
	r.t.Helper()
	c := &atollv1.UpdateInstancesCmd{NodeId: r.node}
	for _, id := range ids {
		c.Instances = append(c.Instances, &atollv1.InstanceStatus{InstanceId: id, State: state, Error: errMsg, Address: "127.0.0.1:1"})
	}
	r.run(rcmd("", c))
}

func specVersions(tx *state.Txn, appID string) []int64 {
	var out []int64
	for _, s := range tx.AppSpecs(appID) {
		out = append(out, s.Version)
	}
	return out
}

// The rollout's state side: which updates start a rollout, which spec every
// instance runs, the kept specs and their pruning, the status; and the same
// log replays to the same state in batches, one by one and from a snapshot
// at every cut.
func TestRolloutState(t *testing.T) {
	r := newRollout(t)
	r.place([]string{"inst_a", "inst_b"})
	r.report(atollv1.InstanceState_INSTANCE_RUNNING, "", "inst_a", "inst_b")
	if in := r.tx().Instance("inst_a"); in.RunningSince == nil || !in.RunningSince.AsTime().Equal(t0) {
		t.Fatalf("running_since = %v, want the command time", in.RunningSince)
	}

	// Scaling is not a spec change: same spec version, nothing kept, no rollout.
	r.update(r.spec("nginx:1", "vset_a", 3))
	if app := r.appNow(); app.Version != 2 || fsm.SpecVersion(app) != 1 {
		t.Fatalf("after scaling: version %d spec version %d, want 2 and 1", app.Version, fsm.SpecVersion(app))
	}
	if v := specVersions(r.tx(), r.app); len(v) != 0 {
		t.Fatalf("scaling kept specs %v", v)
	}
	if ro := fsm.Rollout(r.appNow(), r.tx().AppInstances(r.app)); ro != nil {
		t.Fatalf("scaling started a rollout: %v", ro)
	}
	r.place([]string{"inst_c"}) // the scheduler adds the third replica at spec version 1
	r.report(atollv1.InstanceState_INSTANCE_RUNNING, "", "inst_c")

	// A new image is: the spec of version 1 is kept for the running instances.
	r.update(r.spec("nginx:missing", "vset_a", 3))
	app := r.appNow()
	if app.Version != 3 || fsm.SpecVersion(app) != 3 {
		t.Fatalf("after image change: version %d spec version %d, want 3 and 3", app.Version, fsm.SpecVersion(app))
	}
	kept := r.tx().AppSpec(r.app, 1)
	if kept == nil || kept.App.GetSource().GetImage().GetTag() != "1" {
		t.Fatalf("spec of version 1 not kept: %v", kept)
	}
	if got := fsm.InstanceSpec(r.tx(), app, r.tx().Instance("inst_a")); got.GetSource().GetImage().GetTag() != "1" {
		t.Fatalf("old instance's spec: image %v, want nginx:1", got.GetSource().GetImage())
	}
	// A plan placing instances of the old spec version is stale.
	stale := &atollv1.ApplyPlanCmd{AppVersions: map[string]int64{r.app: app.Version}, NodeIndexes: map[string]uint64{r.node: r.tx().Node(r.node).ModifyIndex},
		Place: []*atollv1.Instance{{Id: "inst_x", AppId: r.app, EnvId: r.env, OrgId: app.OrgId, NodeId: r.node, AppVersion: 1, Resources: app.Requests}}}
	if res := r.try(rcmd("", stale)); status.Code(res.Err) != codes.Aborted {
		t.Fatalf("plan for an old spec version: %v, want Aborted", res.Err)
	}
	// The variable set the old instances run with cannot be deleted.
	r.update(r.spec("nginx:missing", "vset_b", 3)) // version 4: spec changes again (another env)
	if res := r.try(rcmd(r.org, &atollv1.DeleteVariableSetCmd{VariableSetId: "vset_a"})); status.Code(res.Err) != codes.FailedPrecondition ||
		!strings.Contains(res.Err.Error(), "still running") {
		t.Fatalf("deleting a variable set old instances use: %v, want FailedPrecondition naming the rollout", res.Err)
	}

	// The new instance cannot run: the rollout failed, with its error.
	r.place([]string{"inst_n1"})
	r.report(atollv1.InstanceState_INSTANCE_ERROR, `image "nginx:missing": not found`, "inst_n1")
	ro := fsm.Rollout(r.appNow(), r.tx().AppInstances(r.app))
	if ro == nil || ro.State != fsm.RolloutFailed || ro.Version != 4 || !strings.Contains(ro.Message, "rollout to version 4 failed") ||
		!strings.Contains(ro.Message, "nginx:missing") || ro.Outdated != 3 {
		t.Fatalf("rollout status: %v", ro)
	}
	env := r.tx().Environment(r.env)
	if env.Status != atollv1.EnvironmentStatus_RUNNING || !strings.Contains(env.StatusMessage, "rollout to version 4 failed") {
		t.Fatalf("environment during a halted rollout: %s %q, want RUNNING naming the failed rollout", env.Status, env.StatusMessage)
	}

	// Rolling back to the spec the old instances run makes them current
	// again (nothing restarts); the failed instance is the old one now.
	r.update(r.spec("nginx:1", "vset_a", 3))
	app = r.appNow()
	if fsm.SpecVersion(app) != 1 {
		t.Fatalf("rollback: spec version %d, want 1 (the running instances' spec)", fsm.SpecVersion(app))
	}
	if v := specVersions(r.tx(), r.app); len(v) != 1 || v[0] != 4 {
		t.Fatalf("kept specs after the rollback %v, want [4] (inst_n1 runs it)", v)
	}
	r.place(nil, "inst_n1") // the scheduler stops the failed, outdated instance
	if v := specVersions(r.tx(), r.app); len(v) != 0 {
		t.Fatalf("kept specs after the last outdated instance stopped: %v, want none", v)
	}
	if ro := fsm.Rollout(r.appNow(), r.tx().AppInstances(r.app)); ro != nil {
		t.Fatalf("rollout after the rollback: %v, want none", ro)
	}

	// A restart is a spec change; deleting the app drops every kept spec.
	next := r.spec("nginx:1", "vset_a", 3)
	next.RestartGeneration = 1
	r.update(next)
	if fsm.SpecVersion(r.appNow()) != r.version || r.tx().AppSpec(r.app, 1) == nil {
		t.Fatalf("restart: spec version %d (want %d), kept %v", fsm.SpecVersion(r.appNow()), r.version, specVersions(r.tx(), r.app))
	}
	r.run(rcmd(r.org, &atollv1.DeleteAppCmd{AppId: r.app}))
	if v := specVersions(r.tx(), r.app); len(v) != 0 {
		t.Fatalf("deleted app keeps specs %v", v)
	}

	// Deterministic, snapshots included (the kept specs are in them).
	var accepted []*atollv1.Command
	for _, c := range r.cmds {
		if c.GetApplyPlan() != nil && len(c.GetApplyPlan().Place) == 1 && c.GetApplyPlan().Place[0].Id == "inst_x" {
			continue // the refused one
		}
		if c.GetDeleteVariableSet() != nil {
			continue
		}
		accepted = append(accepted, c)
	}
	f := replayEverywhichWay(t, accepted)
	st, _ := f.State()
	if a := st.Snapshot().App(r.app); a == nil || !a.IsDeleted || len(specVersions(st.Snapshot(), r.app)) != 0 {
		t.Fatalf("replayed state: app %v, specs %v", a, specVersions(st.Snapshot(), r.app))
	}
}

// The kept specs survive a snapshot in the middle of a rollout.
func TestRolloutSpecsInSnapshot(t *testing.T) {
	r := newRollout(t)
	r.place([]string{"inst_a", "inst_b"})
	r.report(atollv1.InstanceState_INSTANCE_RUNNING, "", "inst_a", "inst_b")
	r.update(r.spec("nginx:2", "vset_b", 2))
	f := replayEverywhichWay(t, r.cmds)
	st, _ := f.State()
	if s := st.Snapshot().AppSpec(r.app, 1); s == nil || s.App.GetSource().GetImage().GetTag() != "1" || s.EnvId != r.env {
		t.Fatalf("kept spec after replays: %v", s)
	}
}
