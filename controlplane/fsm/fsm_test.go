package fsm_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/api"
	"github.com/atollhq/atoll/controlplane/fsm"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type script struct {
	org     string
	project string
	cmds    []*atollv1.Command
}

func cmd(org string, c any) *atollv1.Command {
	out := &atollv1.Command{Time: timestamppb.New(t0), Actor: "tester", OrgId: org}
	switch c := c.(type) {
	case *atollv1.CreateOrganizationCmd:
		out.Cmd = &atollv1.Command_CreateOrganization{CreateOrganization: c}
	case *atollv1.CreateEnvironmentCmd:
		out.Cmd = &atollv1.Command_CreateEnvironment{CreateEnvironment: c}
	case *atollv1.UpdateEnvironmentCmd:
		out.Cmd = &atollv1.Command_UpdateEnvironment{UpdateEnvironment: c}
	case *atollv1.DeleteEnvironmentCmd:
		out.Cmd = &atollv1.Command_DeleteEnvironment{DeleteEnvironment: c}
	case *atollv1.RestoreEnvironmentCmd:
		out.Cmd = &atollv1.Command_RestoreEnvironment{RestoreEnvironment: c}
	case *atollv1.PurgeDeletedEnvironmentsCmd:
		out.Cmd = &atollv1.Command_PurgeDeletedEnvironments{PurgeDeletedEnvironments: c}
	}
	return out
}

func newScript() *script {
	oc, _ := api.NewOrganization("acme", &atollv1.Resources{Cpu: 3000, Memory: 6000, Storage: 30000}, []string{"*"})
	s := &script{org: oc.Organization.Id, project: oc.DefaultProject.Id}
	s.cmds = append(s.cmds, cmd(s.org, oc))
	return s
}

func (s *script) env(id, name string, cpu int32) *atollv1.Command {
	return cmd(s.org, &atollv1.CreateEnvironmentCmd{SlugDerived: true, Environment: &atollv1.Environment{
		Id: id, Name: name, Slug: api.Slugify(name, "env"), OrgId: s.org, ProjectId: s.project,
		ResourceQuota: &atollv1.Resources{Cpu: cpu, Memory: 1000, Storage: 1000},
	}})
}

func apply(t *testing.T, f *fsm.FSM, first uint64, cmds []*atollv1.Command) []*fsm.Result {
	t.Helper()
	logs := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = &raft.Log{Index: first + uint64(i), Type: raft.LogCommand, Data: b}
	}
	var out []*fsm.Result
	for _, r := range f.ApplyBatch(logs) {
		out = append(out, r.(*fsm.Result))
	}
	return out
}

func hash(t *testing.T, f *fsm.FSM) string {
	t.Helper()
	st, _ := f.State()
	h, err := st.Snapshot().Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// replayEverywhichWay applies cmds in one batch (each must be accepted), one
// by one, and after a snapshot restore at every cut, fails the test unless all
// give the same state, and returns the batched FSM.
func replayEverywhichWay(t *testing.T, cmds []*atollv1.Command) *fsm.FSM {
	t.Helper()
	batch := fsm.New(100, nil, nil)
	for i, r := range apply(t, batch, 1, cmds) {
		if r.Err != nil {
			t.Fatalf("command %d refused: %v", i, r.Err)
		}
	}
	want := hash(t, batch)
	single := fsm.New(100, nil, nil)
	for i, c := range cmds {
		apply(t, single, uint64(i+1), []*atollv1.Command{c})
	}
	if hash(t, single) != want {
		t.Fatal("batched and one-by-one application differ")
	}
	for cut := 1; cut < len(cmds); cut++ {
		half := fsm.New(100, nil, nil)
		apply(t, half, 1, cmds[:cut])
		snap, err := half.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := snap.Persist(&memSink{Buffer: &buf}); err != nil {
			t.Fatal(err)
		}
		restored := fsm.New(100, nil, nil)
		if err := restored.Restore(io.NopCloser(&buf)); err != nil {
			t.Fatal(err)
		}
		apply(t, restored, uint64(cut+1), cmds[cut:])
		if hash(t, restored) != want {
			t.Fatalf("restored after command %d then applied the rest: state differs", cut)
		}
	}
	return batch
}

// The same log gives the same state, whether applied in one batch, one by
// one, or restored from a snapshot taken half way.
func TestDeterministicAcrossBatchingAndSnapshots(t *testing.T) {
	s := newScript()
	e1, e2 := api.NewID("env"), api.NewID("env")
	s.cmds = append(s.cmds,
		s.env(e1, "Review App", 1000),
		s.env(e2, "review app!", 1000), // same slug derived: gets -2; name differs only by '!'
		cmd(s.org, &atollv1.UpdateEnvironmentCmd{EnvironmentId: e1, Paths: []string{"description", "resourceQuota.cpu"},
			Patch: &atollv1.Environment{Description: "d", ResourceQuota: &atollv1.Resources{Cpu: 1500}}}),
		cmd(s.org, &atollv1.DeleteEnvironmentCmd{EnvironmentId: e2}),
		cmd(s.org, &atollv1.RestoreEnvironmentCmd{EnvironmentId: e1, Version: 1}),
	)
	batch := replayEverywhichWay(t, s.cmds)
	st, _ := batch.State()
	tx := st.Snapshot()
	if e := tx.Environment(e2); e.Slug != "review-app-2" || !e.IsDeleted {
		t.Fatalf("second env: slug %q deleted %v", e.Slug, e.IsDeleted)
	}
	if e := tx.Environment(e1); e.ResourceQuota.Cpu != 1000 || e.Version != 3 {
		t.Fatalf("restored env: %v", e)
	}
	if org := tx.Organization(s.org); org.Allocated.Cpu != 1000 || org.EnvironmentCount != 1 {
		t.Fatalf("org allocation %v count %d", org.Allocated, org.EnvironmentCount)
	}
}

// A refused command in a batch leaves no trace: the state equals the batch
// without it.
func TestRefusedCommandLeavesNoTrace(t *testing.T) {
	s := newScript()
	a, b, dup, big := api.NewID("env"), api.NewID("env"), api.NewID("env"), api.NewID("env")
	with := append([]*atollv1.Command{}, s.cmds...)
	with = append(with, s.env(a, "one", 1000), s.env(dup, "one", 500), s.env(big, "huge", 2500), s.env(b, "two", 1000))
	f := fsm.New(100, nil, nil)
	res := apply(t, f, 1, with)
	if status.Code(res[2].Err) != codes.AlreadyExists || status.Code(res[3].Err) != codes.ResourceExhausted || res[4].Err != nil {
		t.Fatalf("results: %v / %v / %v", res[2].Err, res[3].Err, res[4].Err)
	}
	// The same log without the refused commands (raft indexes differ, so
	// compare the objects, not the hash).
	st, _ := f.State()
	tx := st.Snapshot()
	if tx.Environment(dup) != nil || tx.Environment(big) != nil {
		t.Fatal("a refused environment was written")
	}
	if org := tx.Organization(s.org); org.Allocated.Cpu != 2000 || org.EnvironmentCount != 2 {
		t.Fatalf("org allocation %v count %d, want 2000m / 2", org.Allocated, org.EnvironmentCount)
	}
	if n := len(tx.EnvironmentVersions(dup)); n != 0 {
		t.Fatalf("refused env has %d history entries", n)
	}
}

// Purges (of a live and of a soft-deleted environment, and the retention
// sweep) are deterministic across batching and snapshots, keep the
// organization's allocation exact, and a sweep skips what is not due.
func TestPurgeDeterministic(t *testing.T) {
	s := newScript()
	live, soft, kept, swept, again := api.NewID("env"), api.NewID("env"), api.NewID("env"), api.NewID("env"), api.NewID("env")
	s.cmds = append(s.cmds,
		s.env(live, "live", 500),
		s.env(soft, "soft", 700),
		s.env(kept, "kept", 300),
		s.env(swept, "swept", 200),
		cmd(s.org, &atollv1.DeleteEnvironmentCmd{EnvironmentId: soft}),
		cmd(s.org, &atollv1.DeleteEnvironmentCmd{EnvironmentId: live, Purge: true}),
		cmd(s.org, &atollv1.DeleteEnvironmentCmd{EnvironmentId: swept}),
		cmd(s.org, &atollv1.DeleteEnvironmentCmd{EnvironmentId: soft, Purge: true}),
		// kept is live: the sweep skips it; swept was deleted at t0, due.
		cmd("", &atollv1.PurgeDeletedEnvironmentsCmd{EnvironmentIds: []string{kept, swept, live}, DeletedBefore: timestamppb.New(t0)}),
		s.env(again, "live", 500),
	)
	batch := replayEverywhichWay(t, s.cmds)
	st, _ := batch.State()
	tx := st.Snapshot()
	for _, id := range []string{live, soft, swept} {
		if tx.Environment(id) != nil || len(tx.EnvironmentVersions(id)) != 0 {
			t.Fatalf("environment %s not purged", id)
		}
	}
	if e := tx.Environment(kept); e == nil || e.IsDeleted {
		t.Fatalf("live environment swept: %v", e)
	}
	if org := tx.Organization(s.org); org.Allocated.Cpu != 800 || org.EnvironmentCount != 2 {
		t.Fatalf("org allocation %v count %d, want 800m / 2", org.Allocated, org.EnvironmentCount)
	}
	purged := 0
	events, _, _ := tx.EventsAfter(0)
	for _, ev := range events {
		if ev.Type == "environment.purged" {
			purged++
		}
	}
	if purged != 3 {
		t.Fatalf("%d environment.purged events, want 3", purged)
	}
}

// Undecodable log entries are refused, never a panic.
func TestGarbageLogEntry(t *testing.T) {
	f := fsm.New(10, nil, nil)
	r := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{0xff, 0xff, 0xff}}).(*fsm.Result)
	if r.Err == nil {
		t.Fatal("garbage accepted")
	}
	r = f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: nil}).(*fsm.Result)
	if r.Err == nil {
		t.Fatal("empty command accepted")
	}
}

type memSink struct{ *bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }
