package fsm_test

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// placeFor places instances of an app's current spec version, stopping the
// listed ones, as the scheduler loop does.
func (r *rollout) placeFor(appID string, ids []string, stop ...string) {
	r.t.Helper()
	app := r.tx().App(appID)
	plan := &atollv1.ApplyPlanCmd{Stop: stop, AppVersions: map[string]int64{app.Id: app.Version},
		NodeIndexes: map[string]uint64{r.node: r.tx().Node(r.node).ModifyIndex}}
	for _, id := range ids {
		plan.Place = append(plan.Place, &atollv1.Instance{Id: id, AppId: app.Id, EnvId: r.env, OrgId: app.OrgId, NodeId: r.node,
			AppVersion: fsm.SpecVersion(app), Resources: app.Requests})
	}
	r.run(rcmd("", plan))
}

// envOf is the variables an instance runs with, as the dispatcher builds
// them (the mounts of the instance's spec, at their versions).
func envOf(t *testing.T, tx *state.Txn, instID string) map[string]string {
	t.Helper()
	in := tx.Instance(instID)
	spec := fsm.InstanceSpec(tx, tx.App(in.AppId), in)
	if spec == nil {
		t.Fatalf("instance %s has no spec", instID)
	}
	out := map[string]string{}
	for _, m := range spec.VariableSetMounts {
		for k, v := range fsm.MountedVariableSet(tx, m).Variables {
			out[k] = v.Value
		}
	}
	return out
}

func fileOf(t *testing.T, tx *state.Txn, instID string) string {
	t.Helper()
	in := tx.Instance(instID)
	spec := fsm.InstanceSpec(tx, tx.App(in.AppId), in)
	if spec == nil || len(spec.FileMounts) != 1 {
		t.Fatalf("instance %s: spec %v", instID, spec)
	}
	return string(fsm.MountedFile(tx, spec.FileMounts[0]).Content)
}

// Updating a variable set or a file: a new content version; the live apps
// mounting it (and only those) get a new spec version in the same command;
// old instances keep the old content (kept as a row while a kept spec
// mounts it, pruned after); refusals leave no trace; and the log replays
// to the same state in batches, one by one and from a snapshot at every cut.
func TestContentUpdateRolls(t *testing.T) {
	r := newRollout(t)
	other := "app_other"
	r.run(
		rcmd(r.org, &atollv1.CreateFileCmd{File: &atollv1.File{Id: "file_x", EnvId: r.env, Name: "conf", Content: []byte("v1")}}),
		rcmd(r.org, &atollv1.CreateAppCmd{App: &atollv1.App{Id: other, EnvIdRef: r.env, Name: "other", Replicas: 1,
			Source:            &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "1"}},
			Requests:          &atollv1.Resources{Cpu: 100, Memory: 100},
			VariableSetMounts: []*atollv1.VariableSetMount{{VarSetIdRef: "vset_b"}},
			FileMounts:        []*atollv1.FileMount{{FileIdRef: "file_x", MountPath: "/etc/conf"}}}}),
	)
	r.place([]string{"inst_a", "inst_b"})
	r.placeFor(other, []string{"inst_o"})
	r.report(atollv1.InstanceState_INSTANCE_RUNNING, "", "inst_a", "inst_b", "inst_o")
	if m := r.appNow().VariableSetMounts[0]; m.VarSetVersion != 1 {
		t.Fatalf("created app's mount version %d, want 1", m.VarSetVersion)
	}

	// Set one key of vset_a: web rolls, other does not.
	res := r.try(rcmd(r.org, &atollv1.UpdateVariableSetCmd{VariableSetId: "vset_a", ExpectedVersion: 1,
		Variables: map[string]*atollv1.Variable{"GREETING": {Value: "bonjour"}, "EXTRA": {Value: "x"}}}))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	out := res.Value.(*atollv1.VariableSet)
	if out.Version != 2 || !slices.Equal(out.RollingApps, []string{"web"}) {
		t.Fatalf("update answer: version %d rolling %v, want 2 [web]", out.Version, out.RollingApps)
	}
	tx := r.tx()
	web, oth := tx.App(r.app), tx.App(other)
	if web.Version != 2 || fsm.SpecVersion(web) != 2 || web.VariableSetMounts[0].VarSetVersion != 2 {
		t.Fatalf("web after the update: version %d spec %d mount %d, want 2/2/2", web.Version, fsm.SpecVersion(web), web.VariableSetMounts[0].VarSetVersion)
	}
	if oth.Version != 1 || fsm.SpecVersion(oth) != 1 {
		t.Fatalf("an app not mounting the set changed: version %d spec %d", oth.Version, fsm.SpecVersion(oth))
	}
	if kept := tx.VariableSetVersion("vset_a", 1); kept == nil || kept.VariableSet.Variables["GREETING"].GetValue() != "hello" {
		t.Fatalf("version 1 of vset_a not kept: %v", kept)
	}
	if got := envOf(t, tx, "inst_a"); got["GREETING"] != "hello" || got["EXTRA"] != "" {
		t.Fatalf("old instance's variables %v, want the old ones", got)
	}
	if tx.VariableSet("vset_a").Variables["GREETING"].Value != "bonjour" {
		t.Fatal("the set's current variables are not the new ones")
	}

	// A stale expected version, removing a key the set does not have, an
	// unknown set: refused, no trace.
	before := hash(t, r.f)
	for _, c := range []struct {
		cmd  *atollv1.UpdateVariableSetCmd
		code codes.Code
	}{
		{&atollv1.UpdateVariableSetCmd{VariableSetId: "vset_a", ExpectedVersion: 1, Variables: map[string]*atollv1.Variable{"A": {Value: "1"}}}, codes.Aborted},
		{&atollv1.UpdateVariableSetCmd{VariableSetId: "vset_a", Remove: []string{"NOPE"}}, codes.InvalidArgument},
		{&atollv1.UpdateVariableSetCmd{VariableSetId: "vset_zz", Variables: map[string]*atollv1.Variable{"A": {Value: "1"}}}, codes.NotFound},
		{&atollv1.UpdateVariableSetCmd{VariableSetId: "vset_a", Variables: tooManyVariables()}, codes.InvalidArgument},
	} {
		if res := r.try(rcmd(r.org, c.cmd)); status.Code(res.Err) != c.code {
			t.Fatalf("%v: %v, want %s", c.cmd, res.Err, c.code)
		}
		r.cmds = r.cmds[:len(r.cmds)-1] // not part of the replayed log
	}
	// The same values again: no new version, nothing rolls.
	r.run(rcmd(r.org, &atollv1.UpdateVariableSetCmd{VariableSetId: "vset_a", Variables: map[string]*atollv1.Variable{"GREETING": {Value: "bonjour"}}}))
	if r.tx().VariableSet("vset_a").Version != 2 || r.appNow().Version != 2 {
		t.Fatalf("a no-op update made a version: set %d app %d", r.tx().VariableSet("vset_a").Version, r.appNow().Version)
	}
	if hash(t, r.f) != before { // the hash leaves the applied index out
		t.Fatal("refused or no-op updates changed the state")
	}

	// The rollout replaces the old instances; the old content goes with the last.
	r.place([]string{"inst_n1"})
	r.report(atollv1.InstanceState_INSTANCE_RUNNING, "", "inst_n1")
	r.place([]string{"inst_n2"}, "inst_a")
	if r.tx().VariableSetVersion("vset_a", 1) == nil {
		t.Fatal("old content pruned while inst_b still runs it")
	}
	if got := envOf(t, r.tx(), "inst_n1"); got["GREETING"] != "bonjour" || got["EXTRA"] != "x" {
		t.Fatalf("new instance's variables %v, want the new ones", got)
	}
	r.place(nil, "inst_b")
	if r.tx().VariableSetVersion("vset_a", 1) != nil || r.tx().AppSpec(r.app, 1) != nil {
		t.Fatal("old content or spec kept after the last old instance stopped")
	}

	// A file: only other mounts it.
	res = r.try(rcmd(r.org, &atollv1.UpdateFileCmd{FileId: "file_x", Content: []byte("v2")}))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if f := res.Value.(*atollv1.File); f.Version != 2 || !slices.Equal(f.RollingApps, []string{"other"}) || f.SizeBytes != 2 {
		t.Fatalf("file update answer: %v", f)
	}
	tx = r.tx()
	if fsm.SpecVersion(tx.App(other)) != 2 || tx.App(r.app).Version != 2 {
		t.Fatalf("file update: other spec %d, web version %d", fsm.SpecVersion(tx.App(other)), tx.App(r.app).Version)
	}
	if fileOf(t, tx, "inst_o") != "v1" {
		t.Fatalf("old instance's file %q, want v1", fileOf(t, tx, "inst_o"))
	}

	// Replace vset_b while other's only instance runs the old file: the
	// spec of version 2 (no instance runs it yet) is not kept, version 1 of
	// vset_b goes at once (no kept spec mounts it), file version 1 stays.
	r.run(rcmd(r.org, &atollv1.UpdateVariableSetCmd{VariableSetId: "vset_b", Replace: true, Variables: map[string]*atollv1.Variable{"OTHER": {Value: "o"}}}))
	tx = r.tx()
	if fsm.SpecVersion(tx.App(other)) != 3 || tx.AppSpec(other, 2) != nil || tx.AppSpec(other, 1) == nil {
		t.Fatalf("other: spec %d, kept %v", fsm.SpecVersion(tx.App(other)), specVersions(tx, other))
	}
	if tx.VariableSetVersion("vset_b", 1) == nil {
		t.Fatal("vset_b version 1 pruned while inst_o (spec 1) runs it")
	}
	if tx.VariableSetVersion("vset_b", 2) != nil || tx.FileVersion("file_x", 1) == nil {
		t.Fatal("content rows kept or pruned wrongly")
	}
	r.placeFor(other, []string{"inst_o2"}, "inst_o")
	tx = r.tx()
	if tx.FileVersion("file_x", 1) != nil || tx.VariableSetVersion("vset_b", 1) != nil || len(specVersions(tx, other)) != 0 {
		t.Fatal("old content kept after the last old instance of other stopped")
	}
	if got := envOf(t, tx, "inst_o2"); got["OTHER"] != "o" || got["GREETING"] != "" || fileOf(t, tx, "inst_o2") != "v2" {
		t.Fatalf("other's new instance runs %v / %q", got, fileOf(t, tx, "inst_o2"))
	}

	// A later app update stamps the current content versions again.
	r.version = r.appNow().Version
	r.update(r.spec("nginx:2", "vset_a", 2))
	if m := r.appNow().VariableSetMounts[0]; m.VarSetVersion != 2 {
		t.Fatalf("mount version after an app update %d, want 2", m.VarSetVersion)
	}

	replayEverywhichWay(t, r.cmds)
}

// Kept content versions are in snapshots: a restore in the middle of a
// content rollout still gives old instances the old values.
func TestContentVersionsInSnapshot(t *testing.T) {
	r := newRollout(t)
	r.place([]string{"inst_a", "inst_b"})
	r.report(atollv1.InstanceState_INSTANCE_RUNNING, "", "inst_a", "inst_b")
	r.run(rcmd(r.org, &atollv1.UpdateVariableSetCmd{VariableSetId: "vset_a", Variables: map[string]*atollv1.Variable{"GREETING": {Value: "hey", Secret: true}}}))
	f := replayEverywhichWay(t, r.cmds)
	st, _ := f.State()
	tx := st.Snapshot()
	if got := envOf(t, tx, "inst_a"); got["GREETING"] != "hello" {
		t.Fatalf("after replays, the old instance runs %v", got)
	}
	if v := tx.VariableSetVersion("vset_a", 1); v == nil || v.EnvId != r.env {
		t.Fatalf("kept version after replays: %v", v)
	}
}

// tooManyVariables is one more variable than a set may hold.
func tooManyVariables() map[string]*atollv1.Variable {
	m := map[string]*atollv1.Variable{}
	for i := range fsm.MaxVariables + 1 {
		m[fmt.Sprintf("V%d", i)] = &atollv1.Variable{Value: "x"}
	}
	return m
}
