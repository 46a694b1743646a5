package controlplane_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// allocation is an organization's allocated quota and environment count.
type allocation struct {
	cpu, memory, storage int32
	envs                 int32
}

func orgAllocation(t *testing.T, ctx context.Context, orgs atollv1.OrganizationServiceClient) allocation {
	t.Helper()
	org, err := orgs.GetOrganization(ctx, &atollv1.GetOrganizationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	a := org.GetAllocated()
	return allocation{a.GetCpu(), a.GetMemory(), a.GetStorage(), org.EnvironmentCount}
}

// envLeftovers names what the state still holds of an environment: the
// environment, its history, and the rows of every table with an env index.
func envLeftovers(tx *state.Txn, envID string) []string {
	counts := []struct {
		what string
		n    int
	}{
		{"history", len(tx.EnvironmentVersions(envID))},
		{"apps", len(tx.Apps(envID))},
		{"instances", len(tx.EnvInstances(envID))},
		{"volumes", len(tx.Volumes(envID))},
		{"variable sets", len(tx.VariableSets(envID))},
		{"files", len(tx.Files(envID))},
		{"deployments", len(tx.Deployments(envID))},
	}
	var out []string
	if tx.Environment(envID) != nil {
		out = append(out, "environment")
	}
	for _, c := range counts {
		if c.n > 0 {
			out = append(out, c.what)
		}
	}
	return out
}

func snapOf(s *controlplane.Server) *state.Txn {
	st, _ := s.State()
	return st.Snapshot()
}

// agentView follows the assignments a miniAgent receives: the instances it
// should run and the volumes it must keep.
type agentView struct {
	ch        <-chan *atollv1.Assignments
	instances map[string]bool
	volumes   map[string]bool
}

func (v *agentView) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for !cond() {
		select {
		case a, ok := <-v.ch:
			if !ok {
				t.Fatalf("agent session ended waiting for %s", what)
			}
			if a.Full {
				v.instances = map[string]bool{}
			}
			for _, u := range a.Upsert {
				v.instances[u.InstanceId] = true
			}
			for _, id := range a.Remove {
				delete(v.instances, id)
			}
			if a.VolumesListed {
				v.volumes = map[string]bool{}
				for _, id := range a.LiveVolumes {
					v.volumes[id] = true
				}
			}
		case <-deadline:
			t.Fatalf("timed out waiting for the agent to see %s", what)
		}
	}
}

// Purging a running environment, with everything in it, over gRPC: in one
// apply it is stopped, soft-deleted and removed; the agent is told to remove
// its containers and its volume's data; a watch sees deleted then purged and
// ends; the quota is back and the name free.
func TestPurgeLiveEnvironment(t *testing.T) {
	f := newAPIFixture(t)
	conn := cptest.Conn(t, f.srv)
	ctx := f.ctx
	before := orgAllocation(t, ctx, f.orgs)
	_, ch := miniAgent(t, ctx, atollv1.NewAgentServiceClient(conn), f.c.AdminToken, "host-1")
	agent := &agentView{ch: ch, instances: map[string]bool{}, volumes: map[string]bool{}}

	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "doomed", ResourceQuota: &atollv1.Resources{Cpu: 1000, Memory: 1024, Storage: 2048}})
	vol, err := atollv1.NewVolumeServiceClient(conn).CreateVolume(ctx, &atollv1.CreateVolumeRequest{EnvId: env.Id, Volume: &atollv1.Volume{Name: "data", Size: "100Mi"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := atollv1.NewVariableSetServiceClient(conn).CreateVariableSet(ctx, &atollv1.CreateVariableSetRequest{EnvId: env.Id, VariableSet: &atollv1.VariableSet{
		Name: "settings", Variables: map[string]*atollv1.Variable{"MODE": {Value: "test"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := atollv1.NewFileServiceClient(conn).CreateFile(ctx, &atollv1.CreateFileRequest{EnvId: env.Id, File: &atollv1.File{Name: "conf", Content: []byte("x=1")}}); err != nil {
		t.Fatal(err)
	}
	apps := atollv1.NewAppServiceClient(conn)
	if _, err := apps.CreateApp(ctx, &atollv1.CreateAppRequest{EnvId: env.Id, App: &atollv1.App{
		Name: "web", Source: image("v1"), Replicas: 2,
		ResourceRequests:  &atollv1.ResourceRequests{Cpu: "100m", Memory: "128Mi"},
		Ports:             []*atollv1.Port{{Number: 80}},
		PublicEndpoint:    &atollv1.PublicEndpoint{AppPort: 80},
		VolumeMounts:      []*atollv1.VolumeMount{{VolNameRef: "data", Path: "/data"}},
		VariableSetMounts: []*atollv1.VariableSetMount{{VarSetNameRef: "settings"}},
		FileMounts:        []*atollv1.FileMount{{FileNameRef: "conf", MountPath: "/etc/app.conf"}},
	}}); err != nil {
		t.Fatal(err)
	}
	rels := atollv1.NewReleaseServiceClient(conn)
	rel, err := rels.CreateRelease(ctx, &atollv1.CreateReleaseRequest{ProjectId: env.ProjectId, Release: &atollv1.Release{AppName: "api", Version: "1", Source: image("v1"),
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "64Mi"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rels.DeployRelease(ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: rel.Id}); err != nil {
		t.Fatal(err)
	}
	agent.await(t, "three instances and the volume", func() bool { return len(agent.instances) == 3 && agent.volumes[vol.Id] })
	cptest.WaitFor(t, 10*time.Second, "apps running", func() bool {
		a, err := apps.GetApp(ctx, &atollv1.GetAppRequest{EnvId: env.Id, AppId: "web"})
		return err == nil && a.Status.Running == 2
	})
	if left := envLeftovers(snapOf(f.srv), env.Id); len(left) != 8 {
		t.Fatalf("before the purge the state should hold every kind of object, has %v", left)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := f.envs.WatchEnvironment(wctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: env.Id})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := watch.Recv(); err != nil || ev.EventType != "current" {
		t.Fatalf("first watch event: %v %v", ev, err)
	}

	if _, err := f.envs.DeleteEnvironment(ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: env.Id, Purge: true}); err != nil {
		t.Fatalf("purge a running environment: %v", err)
	}

	var types []string
	for {
		ev, err := watch.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("watch: %v (events so far %v)", err, types)
		}
		types = append(types, ev.EventType)
		if ev.EventType == "purged" && ev.Environment.GetId() != env.Id {
			t.Fatalf("purged event for %v", ev.Environment)
		}
	}
	if len(types) < 2 || types[len(types)-1] != "purged" || types[len(types)-2] != "deleted" {
		t.Fatalf("watch events %v: want ... deleted, purged and the end of the stream", types)
	}

	tx := snapOf(f.srv)
	if left := envLeftovers(tx, env.Id); len(left) > 0 {
		t.Fatalf("after the purge the state still holds the environment's %v", left)
	}
	if tx.Release(rel.Id) == nil {
		t.Fatal("the purge removed a release: releases belong to the project")
	}
	// The agent stops and removes the containers and the volume's data.
	agent.await(t, "no instances and no volume", func() bool { return len(agent.instances) == 0 && !agent.volumes[vol.Id] })

	_, err = f.envs.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
	wantCode(t, err, codes.NotFound)
	_, err = f.envs.RestoreEnvironment(ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: env.Id})
	wantCode(t, err, codes.NotFound)
	_, err = f.envs.GetEnvironmentHistory(ctx, &atollv1.GetEnvironmentHistoryRequest{EnvironmentId: env.Id})
	wantCode(t, err, codes.NotFound)
	_, err = f.envs.DeleteEnvironment(ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: env.Id, Purge: true})
	wantCode(t, err, codes.NotFound)
	_, err = apps.GetApp(ctx, &atollv1.GetAppRequest{EnvId: env.Id, AppId: "web"})
	wantCode(t, err, codes.NotFound)
	_, err = mustStream(f.envs.WatchEnvironment(ctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: env.Id}))
	wantCode(t, err, codes.NotFound)
	list, err := f.envs.ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{IncludeDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Environments {
		if e.Id == env.Id {
			t.Fatal("list includeDeleted shows a purged environment")
		}
	}
	if got := orgAllocation(t, ctx, f.orgs); got != before {
		t.Fatalf("organization allocation after the purge %+v, want %+v as before the create", got, before)
	}
	again := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "doomed"})
	if again.Slug != env.Slug || again.Id == env.Id {
		t.Fatalf("the name of a purged environment is free: got slug %q (was %q)", again.Slug, env.Slug)
	}
}

// mustStream opens a server stream and reads its first message, which is
// where a server-streaming call reports an error.
func mustStream(s atollv1.EnvironmentService_WatchEnvironmentClient, err error) (*atollv1.EnvironmentEvent, error) {
	if err != nil {
		return nil, err
	}
	return s.Recv()
}

// Purging a soft-deleted environment over REST (?purge=true); the
// refusals: another organization's environment, a token without env:write.
func TestPurgeSoftDeletedEnvironmentREST(t *testing.T) {
	f := newAPIFixture(t)
	ctx := f.ctx
	rc := f.rest(t, f.c.AdminToken)
	before := orgAllocation(t, ctx, f.orgs)
	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "old", ResourceQuota: &atollv1.Resources{Cpu: 500, Memory: 512, Storage: 1024}})
	rc.must(http.StatusOK, http.MethodDelete, "/v1/environments/"+env.Id, nil)
	if o := rc.must(http.StatusOK, http.MethodGet, "/v1/environments/"+env.Id, nil); o.get("isDeleted") != true {
		t.Fatalf("a plain REST delete is soft: %s", o.raw)
	}
	if got := orgAllocation(t, ctx, f.orgs); got != before {
		t.Fatalf("allocation after the soft delete %+v, want %+v", got, before)
	}

	// Refused: another organization, a read-only token.
	other := cptest.Ctx(t, f.newOrg(t, "other org", nil))
	_, err := f.envs.DeleteEnvironment(other, &atollv1.DeleteEnvironmentRequest{EnvironmentId: env.Id, Purge: true})
	wantCode(t, err, codes.NotFound)
	if code, o := f.rest(t, "").do(http.MethodDelete, "/v1/environments/"+env.Id+"?purge=true", nil); code != http.StatusUnauthorized {
		t.Fatalf("purge without a token: %d %s", code, o.raw)
	}
	ro := cptest.Ctx(t, f.token(t, "env:read"))
	_, err = f.envs.DeleteEnvironment(ro, &atollv1.DeleteEnvironmentRequest{EnvironmentId: env.Id, Purge: true})
	wantCode(t, err, codes.PermissionDenied, "env:write")
	if snapOf(f.srv).Environment(env.Id) == nil {
		t.Fatal("a refused purge removed the environment")
	}

	rc.must(http.StatusOK, http.MethodDelete, "/v1/environments/"+env.Id+"?purge=true", nil)
	rc.must(http.StatusNotFound, http.MethodGet, "/v1/environments/"+env.Id, nil)
	rc.must(http.StatusNotFound, http.MethodPost, "/v1/environments/"+env.Id+"/restore", map[string]any{})
	rc.must(http.StatusNotFound, http.MethodDelete, "/v1/environments/"+env.Id+"?purge=true", nil)
	for _, e := range rc.must(http.StatusOK, http.MethodGet, "/v1/environments?includeDeleted=true", nil).list("environments") {
		if e.str("id") == env.Id {
			t.Fatal("list includeDeleted shows a purged environment")
		}
	}
	if left := envLeftovers(snapOf(f.srv), env.Id); len(left) > 0 {
		t.Fatalf("after the purge the state still holds the environment's %v", left)
	}
	if got := orgAllocation(t, ctx, f.orgs); got != before {
		t.Fatalf("allocation after the purge %+v, want %+v", got, before)
	}
	created := rc.must(http.StatusCreated, http.MethodPost, "/v1/environments", map[string]any{"name": "old"})
	if created.str("slug") != env.Slug {
		t.Fatalf("recreated with slug %q, want %q", created.str("slug"), env.Slug)
	}
}

// The Connect routes: teabar.v1's DeleteEnvironment is a permanent delete
// (Teabar's API promises one); atoll.v1's stays soft unless purge is asked.
func TestPurgeConnectAliases(t *testing.T) {
	f := newAPIFixture(t)
	rc := f.rest(t, f.c.AdminToken)
	soft := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "soft"})
	hard := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "hard"})

	rc.must(http.StatusOK, http.MethodPost, "/atoll.v1.EnvironmentService/DeleteEnvironment", map[string]any{"environmentId": soft.Id})
	if e, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: soft.Id}); err != nil || !e.IsDeleted {
		t.Fatalf("atoll.v1 DeleteEnvironment should soft-delete: %v %v", e, err)
	}
	rc.must(http.StatusOK, http.MethodPost, "/teabar.v1.EnvironmentService/DeleteEnvironment", map[string]any{"environmentId": hard.Id, "force": true})
	_, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: hard.Id})
	wantCode(t, err, codes.NotFound)

	rc.must(http.StatusOK, http.MethodPost, "/atoll.v1.EnvironmentService/DeleteEnvironment", map[string]any{"environmentId": soft.Id, "purge": true})
	_, err = f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: soft.Id})
	wantCode(t, err, codes.NotFound)
	o := rc.must(http.StatusNotFound, http.MethodPost, "/teabar.v1.EnvironmentService/DeleteEnvironment", map[string]any{"environmentId": soft.Id})
	if o.str("code") != "NOT_FOUND" {
		t.Fatalf("teabar delete of a purged environment: %s", o.raw)
	}
	if left := envLeftovers(snapOf(f.srv), hard.Id); len(left) > 0 {
		t.Fatalf("teabar delete left %v", left)
	}
}

// The leader purges environments soft-deleted longer than the retention and
// leaves younger ones; a watch of the organization sees the purge.
func TestDeletedRetentionPurges(t *testing.T) {
	f := newAPIFixture(t, func(_ int, cfg *controlplane.Config) {
		cfg.ReapInterval, cfg.DeletedRetention = 20*time.Millisecond, time.Hour
	})
	ctx := f.ctx
	before := orgAllocation(t, ctx, f.orgs)
	young := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "young"})
	old := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "old"})
	live := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "live"})
	liveAlloc := orgAllocation(t, ctx, f.orgs)
	if _, err := f.envs.DeleteEnvironment(ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: young.Id}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := f.envs.WatchEnvironment(wctx, &atollv1.WatchEnvironmentRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Deleted two hours ago: the command carries the time the state machine uses.
	res, err := f.srv.Apply(ctx, &atollv1.Command{Time: timestamppb.New(time.Now().Add(-2 * time.Hour)), Actor: "test", OrgId: old.OrgId,
		Cmd: &atollv1.Command_DeleteEnvironment{DeleteEnvironment: &atollv1.DeleteEnvironmentCmd{EnvironmentId: old.Id}}})
	if err != nil || res.Err != nil {
		t.Fatalf("delete two hours ago: %v %v", err, res.Err)
	}
	for {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if ev.EventType == "purged" {
			if ev.Environment.GetId() != old.Id {
				t.Fatalf("purged %s (%s), want the old one", ev.Environment.GetName(), ev.Environment.GetId())
			}
			break
		}
	}
	tx := snapOf(f.srv)
	if left := envLeftovers(tx, old.Id); len(left) > 0 {
		t.Fatalf("retention left the old environment's %v", left)
	}
	// The sweep that purged the old one saw the young one (deleted before)
	// and left it: deleted less than the retention ago.
	if e := tx.Environment(young.Id); e == nil || !e.IsDeleted {
		t.Fatalf("the young deleted environment: %v", e)
	}
	if e := tx.Environment(live.Id); e == nil || e.IsDeleted {
		t.Fatalf("the live environment: %v", e)
	}
	want := allocation{liveAlloc.cpu - young.ResourceQuota.Cpu - old.ResourceQuota.Cpu, liveAlloc.memory - young.ResourceQuota.Memory - old.ResourceQuota.Memory,
		liveAlloc.storage - young.ResourceQuota.Storage - old.ResourceQuota.Storage, before.envs + 1}
	if got := orgAllocation(t, ctx, f.orgs); got != want {
		t.Fatalf("allocation %+v, want %+v", got, want)
	}
	if _, err := f.envs.RestoreEnvironment(ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: young.Id}); err != nil {
		t.Fatalf("restore the young one: %v", err)
	}
}

// A retention sweep proposed from a stale view is harmless: the state
// machine skips environments that are live again, not deleted long enough,
// or gone.
func TestDeletedRetentionStaleProposal(t *testing.T) {
	f := newAPIFixture(t) // default retention: 30 days, nothing that old here
	ctx := f.ctx
	restored := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "restored"})
	recent := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "recent"})
	for _, id := range []string{restored.Id, recent.Id} {
		if _, err := f.envs.DeleteEnvironment(ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.envs.RestoreEnvironment(ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: restored.Id}); err != nil {
		t.Fatal(err)
	}
	res, err := f.srv.Apply(ctx, &atollv1.Command{Time: timestamppb.Now(), Actor: "system:retention",
		Cmd: &atollv1.Command_PurgeDeletedEnvironments{PurgeDeletedEnvironments: &atollv1.PurgeDeletedEnvironmentsCmd{
			EnvironmentIds: []string{restored.Id, recent.Id, "env_aaaaaaaaaaaaaaaaaaaaaaaaaa"},
			DeletedBefore:  timestamppb.New(time.Now().Add(-time.Minute)),
		}}})
	if err != nil || res.Err != nil {
		t.Fatalf("stale sweep: %v %v", err, res.Err)
	}
	tx := snapOf(f.srv)
	if e := tx.Environment(restored.Id); e == nil || e.IsDeleted {
		t.Fatalf("a restored environment was purged: %v", e)
	}
	if e := tx.Environment(recent.Id); e == nil || !e.IsDeleted {
		t.Fatalf("a recently deleted environment was purged: %v", e)
	}
}

func TestDeletedRetentionConfig(t *testing.T) {
	cfg := controlplane.DefaultConfig()
	if cfg.DeletedRetention != 720*time.Hour {
		t.Fatalf("default retention %s, want 720h", cfg.DeletedRetention)
	}
	cfg.DeletedRetention = 0 // keep forever
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.DeletedRetention = -time.Hour
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "deleted retention") {
		t.Fatalf("negative retention: %v", err)
	}
}
