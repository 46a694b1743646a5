package controlplane_test

import (
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func image(tag string) *atollv1.AppSource {
	return &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "example/api", Tag: tag}}
}

func TestReleaseDeployLifecycle(t *testing.T) {
	f := newAPIFixture(t)
	conn := cptest.Conn(t, f.srv)
	rels := atollv1.NewReleaseServiceClient(conn)
	apps := atollv1.NewAppServiceClient(conn)
	agent := f.c.NewFakeAgent(cptest.FakeAgentConfig{Name: "host-1"})
	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "staging"})
	prj := env.ProjectId

	mk := func(version, tag string) *atollv1.Release {
		t.Helper()
		r, err := rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: prj, Release: &atollv1.Release{
			AppName: "api", Version: version, Source: image(tag),
			Ports: []*atollv1.Port{{Number: 8080}}, PublicEndpoint: &atollv1.PublicEndpoint{AppPort: 8080},
		}})
		if err != nil {
			t.Fatalf("create release %s: %v", version, err)
		}
		return r
	}
	v1, v2 := mk("1.0.0", "v1"), mk("2.0.0", "v2")
	if v1.Id[:4] != "rel_" || v1.OrgId != env.OrgId || v1.CreatedBy == "" || v1.Ports[0].Protocol != "TCP" {
		t.Fatalf("release %v", v1)
	}
	if got, err := rels.GetRelease(f.ctx, &atollv1.GetReleaseRequest{ReleaseId: v1.Id}); err != nil || got.Version != "1.0.0" {
		t.Fatalf("get release: %v %v", got, err)
	}
	list, err := rels.ListReleases(f.ctx, &atollv1.ListReleasesRequest{ProjectId: prj, AppName: "api"})
	if err != nil || list.TotalCount != 2 || list.Releases[0].Id != v2.Id {
		t.Fatalf("list releases (newest first): %v %v", list, err)
	}
	if l, _ := rels.ListReleases(f.ctx, &atollv1.ListReleasesRequest{ProjectId: prj, AppName: "other"}); l.GetTotalCount() != 0 {
		t.Fatalf("filter by app: %v", l)
	}
	_, err = rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: prj, Release: &atollv1.Release{AppName: "api", Version: "1.0.0", Source: image("v1b")}})
	wantCode(t, err, codes.AlreadyExists, "1.0.0")
	_, err = rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: prj, Release: &atollv1.Release{AppName: "Bad_Name", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "x"}},
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "lots"}}})
	st := wantCode(t, err, codes.InvalidArgument)
	for _, fld := range []string{"appName", "version", "source.image.tag", "resourceRequests.cpu"} {
		if !contains(fieldViolations(st), fld) {
			t.Fatalf("violations %v lack %s", fieldViolations(st), fld)
		}
	}

	// Deploy v1: the app is created from the release and runs.
	d1, err := rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: v1.Id})
	if err != nil {
		t.Fatal(err)
	}
	if d1.DeploymentId[:4] != "dep_" || d1.ReleaseId != v1.Id || d1.EnvironmentId != env.Id || d1.AppId == "" || d1.Message == "" ||
		d1.Deployment.PreviousReleaseId != "" || d1.Deployment.AppVersion != 1 || d1.Deployment.Action != "deploy" {
		t.Fatalf("deploy v1: %v", d1)
	}
	appID := d1.AppId
	cptest.WaitFor(t, 10*time.Second, "v1 running", func() bool {
		a, err := apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: env.Id, AppId: "api"})
		return err == nil && a.Status.State == "RUNNING" && a.Source.Image.Tag == "v1" && a.Requests.Cpu == 100 && a.Requests.Memory == 128
	})
	e, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
	if err != nil || e.ActiveDeployments["api"] != v1.Id || len(e.ActiveDeployments) != 1 {
		t.Fatalf("active deployments %v %v", e.GetActiveDeployments(), err)
	}

	// Deploy v2: the same app gets a new version with the new image; the
	// scheduler replaces its instance.
	d2, err := rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: v2.Id, AppId: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if d2.AppId != appID || d2.Deployment.PreviousReleaseId != v1.Id || d2.Deployment.AppVersion != 2 {
		t.Fatalf("deploy v2: %v", d2)
	}
	cptest.WaitFor(t, 10*time.Second, "v2 running, v1 instance replaced", func() bool {
		a, err := apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: env.Id, AppId: appID})
		return err == nil && a.Version == 2 && a.Source.Image.Tag == "v2" && a.Status.State == "RUNNING" &&
			len(a.Status.Instances) == 1 && a.Status.Instances[0].AppVersion == 2
	})
	e, _ = f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
	if e.ActiveDeployments["api"] != v2.Id || e.Version != env.Version {
		t.Fatalf("after v2: active %v, version %d (was %d)", e.ActiveDeployments, e.Version, env.Version)
	}
	deps, err := rels.ListDeployments(f.ctx, &atollv1.ListDeploymentsRequest{EnvironmentId: env.Id})
	if err != nil || deps.TotalCount != 2 || deps.Deployments[0].Id != d2.DeploymentId || deps.Deployments[1].Id != d1.DeploymentId ||
		deps.Deployments[0].DeployedBy == "" || deps.Deployments[0].DeployedAt == nil {
		t.Fatalf("deployments %v %v", deps, err)
	}

	// Undeploy: the app and its instances go, the entry is removed.
	u, err := rels.UndeployApp(f.ctx, &atollv1.UndeployAppRequest{EnvironmentId: env.Id, AppId: "api"})
	if err != nil || u.DeploymentId == "" {
		t.Fatalf("undeploy: %v %v", u, err)
	}
	_, err = apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: env.Id, AppId: "api"})
	wantCode(t, err, codes.NotFound)
	f.c.WaitState(10*time.Second, "instances removed", func(tx *state.Txn) bool { return len(tx.AppInstances(appID)) == 0 })
	agent.WaitInstances(10*time.Second, 0)
	deps, _ = rels.ListDeployments(f.ctx, &atollv1.ListDeploymentsRequest{EnvironmentId: env.Id})
	if deps.TotalCount != 3 || deps.Deployments[0].Action != "undeploy" || deps.Deployments[0].PreviousReleaseId != v2.Id || deps.Deployments[0].AppName != "api" {
		t.Fatalf("after undeploy: %v", deps)
	}
	e, _ = f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
	if len(e.ActiveDeployments) != 0 {
		t.Fatalf("active after undeploy: %v", e.ActiveDeployments)
	}
	_, err = rels.UndeployApp(f.ctx, &atollv1.UndeployAppRequest{EnvironmentId: env.Id, AppId: "api"})
	wantCode(t, err, codes.NotFound)
}

func TestReleaseErrors(t *testing.T) {
	f := newAPIFixture(t)
	conn := cptest.Conn(t, f.srv)
	rels := atollv1.NewReleaseServiceClient(conn)
	apps := atollv1.NewAppServiceClient(conn)
	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "small", ResourceQuota: &atollv1.Resources{Cpu: 500, Memory: 1024, Storage: 1024}})
	rel, err := rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: env.ProjectId, Release: &atollv1.Release{AppName: "api", Version: "1", Source: image("v1")}})
	if err != nil {
		t.Fatal(err)
	}

	// Unknown release, unknown environment.
	_, err = rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: "rel_aaaaaaaaaaaaaaaaaaaaaaaaaa"})
	wantCode(t, err, codes.NotFound, "release")
	_, err = rels.GetRelease(f.ctx, &atollv1.GetReleaseRequest{ReleaseId: "rel_aaaaaaaaaaaaaaaaaaaaaaaaaa"})
	wantCode(t, err, codes.NotFound)
	_, err = rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: "env_aaaaaaaaaaaaaaaaaaaaaaaaaa", ReleaseId: rel.Id})
	wantCode(t, err, codes.NotFound, "environment")
	_, err = rels.GetRelease(f.ctx, &atollv1.GetReleaseRequest{ReleaseId: "nope"})
	wantCode(t, err, codes.InvalidArgument)

	// Quota: the app a deploy would create does not fit: refused, nothing written.
	big, err := rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: env.ProjectId, Release: &atollv1.Release{AppName: "big", Version: "1", Source: image("v1"),
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "2000m", Memory: "256Mi"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: big.Id})
	wantCode(t, err, codes.ResourceExhausted, "cpu")
	deps, _ := rels.ListDeployments(f.ctx, &atollv1.ListDeploymentsRequest{EnvironmentId: env.Id})
	la, _ := apps.ListApps(f.ctx, &atollv1.ListAppsRequest{EnvId: env.Id})
	e, _ := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
	if deps.TotalCount != 0 || la.TotalCount != 0 || len(e.ActiveDeployments) != 0 || e.ResourceUsage.Cpu != 0 {
		t.Fatalf("a refused deploy left traces: %v %v %v", deps, la, e)
	}

	// A release deploys only to environments of its project.
	prj, err := atollv1.NewProjectServiceClient(conn).CreateProject(f.ctx, &atollv1.CreateProjectRequest{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	env2 := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "elsewhere", ProjectId: prj.Id, ResourceQuota: &atollv1.Resources{Cpu: 500, Memory: 1024, Storage: 1024}})
	_, err = rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env2.Id, ReleaseId: rel.Id})
	wantCode(t, err, codes.FailedPrecondition, "project")

	// Permissions: app:write is needed to create and deploy.
	ro := cptest.Ctx(t, f.token(t, "app:read", "env:read"))
	_, err = rels.DeployRelease(ro, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: rel.Id})
	wantCode(t, err, codes.PermissionDenied, "app:write")
	_, err = rels.CreateRelease(ro, &atollv1.CreateReleaseRequest{ProjectId: env.ProjectId, Release: &atollv1.Release{AppName: "api", Version: "9", Source: image("v9")}})
	wantCode(t, err, codes.PermissionDenied, "app:write")
	if _, err := rels.ListDeployments(ro, &atollv1.ListDeploymentsRequest{EnvironmentId: env.Id}); err != nil {
		t.Fatalf("app:read lists deployments: %v", err)
	}

	// Another organization sees neither our releases nor our environments.
	other := cptest.Ctx(t, f.newOrg(t, "other-org", nil))
	_, err = rels.GetRelease(other, &atollv1.GetReleaseRequest{ReleaseId: rel.Id})
	wantCode(t, err, codes.NotFound)
	_, err = rels.ListReleases(other, &atollv1.ListReleasesRequest{ProjectId: env.ProjectId})
	wantCode(t, err, codes.NotFound)
	_, err = rels.CreateRelease(other, &atollv1.CreateReleaseRequest{ProjectId: env.ProjectId, Release: &atollv1.Release{AppName: "api", Version: "2", Source: image("v2")}})
	wantCode(t, err, codes.NotFound)
	_, err = rels.DeployRelease(other, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: rel.Id})
	wantCode(t, err, codes.NotFound)
	oenv, err := f.envs.CreateEnvironment(other, &atollv1.CreateEnvironmentRequest{Name: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: oenv.Id, ReleaseId: rel.Id})
	wantCode(t, err, codes.NotFound, "environment")
	_, err = rels.ListDeployments(other, &atollv1.ListDeploymentsRequest{EnvironmentId: env.Id})
	wantCode(t, err, codes.NotFound)

	// An app created without a deploy has nothing to undeploy.
	if _, err := apps.CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: env.Id, App: &atollv1.App{Name: "plain", Source: image("x"),
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "64Mi"}}}); err != nil {
		t.Fatal(err)
	}
	_, err = rels.UndeployApp(f.ctx, &atollv1.UndeployAppRequest{EnvironmentId: env.Id, AppId: "plain"})
	wantCode(t, err, codes.NotFound)

	// Renaming a deployed app keeps its active deployment; deleting it as
	// an app forgets it.
	if _, err := rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: rel.Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := apps.UpdateApp(f.ctx, &atollv1.UpdateAppRequest{EnvId: env.Id, AppId: "api", App: &atollv1.App{Name: "api2"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}}); err != nil {
		t.Fatal(err)
	}
	if e, _ := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id}); len(e.ActiveDeployments) != 1 || e.ActiveDeployments["api2"] != rel.Id {
		t.Fatalf("active deployments after rename: %v", e.ActiveDeployments)
	}
	if _, err := apps.DeleteApp(f.ctx, &atollv1.DeleteAppRequest{EnvId: env.Id, AppId: "api2"}); err != nil {
		t.Fatal(err)
	}
	if e, _ := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id}); len(e.ActiveDeployments) != 0 {
		t.Fatalf("active deployments after DeleteApp: %v", e.ActiveDeployments)
	}
}

func TestReleaseDeployREST(t *testing.T) {
	f := newAPIFixture(t)
	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "rest"})
	r := f.rest(t, f.c.AdminToken)
	rel := r.must(http.StatusCreated, "POST", "/v1/projects/"+env.ProjectId+"/releases",
		map[string]any{"app_name": "web", "version": "1.0", "source": map[string]any{"image": map[string]any{"name": "nginx", "tag": "1.27"}}})
	relID := rel.str("id")
	o := r.must(http.StatusOK, "POST", "/v1/environments/"+env.Id+"/deploy", map[string]any{"releaseId": relID})
	for _, k := range []string{"message", "deploymentId", "environmentId", "appId", "releaseId"} {
		if o.str(k) == "" {
			t.Fatalf("deploy response lacks %s: %s", k, o.raw)
		}
	}
	if o.str("releaseId") != relID || o.str("environmentId") != env.Id {
		t.Fatalf("deploy response %s", o.raw)
	}
	ds := r.must(http.StatusOK, "GET", "/v1/environments/"+env.Id+"/deployments", nil)
	if ds.num("totalCount") != 1 || ds.list("deployments")[0].str("deployedBy") == "" {
		t.Fatalf("deployments %s", ds.raw)
	}
	e := r.must(http.StatusOK, "GET", "/v1/environments/"+env.Id, nil)
	if e.str("activeDeployments.web") != relID {
		t.Fatalf("activeDeployments %s", e.raw)
	}
	code, eo := r.do("DELETE", "/v1/environments/"+env.Id+"/deploy/nothere", nil)
	wantError(t, code, eo, http.StatusNotFound, "NOT_FOUND")
	r.must(http.StatusOK, "DELETE", "/v1/environments/"+env.Id+"/deploy/web", nil)
}

// A deploy prepared against an older version of the app is refused
// (ABORTED) by the state machine and leaves no trace.
func TestReleaseDeployStaleVersionAborted(t *testing.T) {
	f := newAPIFixture(t)
	rels := atollv1.NewReleaseServiceClient(cptest.Conn(t, f.srv))
	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "occ"})
	mk := func(v string) *atollv1.Release {
		r, err := rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: env.ProjectId, Release: &atollv1.Release{AppName: "api", Version: v, Source: image(v)}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	v1, v2 := mk("v1"), mk("v2")
	d1, err := rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: v1.Id})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.srv.State()
	app := proto.Clone(st.Snapshot().App(d1.AppId)).(*atollv1.App)
	app.Source = v2.Source
	res, err := f.srv.Apply(f.ctx, &atollv1.Command{Time: timestamppb.Now(), Actor: "test", OrgId: env.OrgId,
		Cmd: &atollv1.Command_DeployRelease{DeployRelease: &atollv1.DeployReleaseCmd{
			App: app, ExpectedVersion: app.Version + 1,
			Deployment: &atollv1.Deployment{Id: "dep_aaaaaaaaaaaaaaaaaaaaaaaaaa", EnvironmentId: env.Id, ReleaseId: v2.Id},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, res.Err, codes.Aborted, "version")
	tx := st.Snapshot()
	if a := tx.App(d1.AppId); a.Version != 1 || a.Source.Image.Tag != "v1" {
		t.Fatalf("app changed by a refused deploy: %v", a)
	}
	if len(tx.Deployments(env.Id)) != 1 || tx.Environment(env.Id).ActiveDeployments["api"] != v1.Id {
		t.Fatalf("refused deploy recorded: %v %v", tx.Deployments(env.Id), tx.Environment(env.Id).ActiveDeployments)
	}
}
