package controlplane_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// apiFixture is one real server with clients for its bootstrap organization.
type apiFixture struct {
	c    *cptest.Cluster
	srv  *controlplane.Server
	envs atollv1.EnvironmentServiceClient
	orgs atollv1.OrganizationServiceClient
	toks atollv1.TokenServiceClient
	ctx  context.Context
}

func newAPIFixture(t *testing.T, opts ...cptest.Option) *apiFixture {
	t.Helper()
	return newAPIFixtureN(t, 1, opts...)
}

// newAPIFixtureN starts n servers; the fixture's clients talk to the leader.
func newAPIFixtureN(t *testing.T, n int, opts ...cptest.Option) *apiFixture {
	t.Helper()
	c := cptest.NewCluster(t, n, opts...)
	s := c.WaitLeader()
	conn := cptest.Conn(t, s)
	return &apiFixture{
		c: c, srv: s,
		envs: atollv1.NewEnvironmentServiceClient(conn),
		orgs: atollv1.NewOrganizationServiceClient(conn),
		toks: atollv1.NewTokenServiceClient(conn),
		ctx:  cptest.Ctx(t, c.AdminToken),
	}
}

// newOrg creates another organization and returns its admin token.
func (f *apiFixture) newOrg(t *testing.T, name string, q *atollv1.Resources) string {
	t.Helper()
	resp, err := f.orgs.CreateOrganization(f.ctx, &atollv1.CreateOrganizationRequest{Name: name, Quota: q})
	if err != nil {
		t.Fatalf("create organization %q: %v", name, err)
	}
	if resp.AdminToken == "" {
		t.Fatal("CreateOrganization returned no admin token")
	}
	return resp.AdminToken
}

// token creates a token of the bootstrap organization with the given scopes.
func (f *apiFixture) token(t *testing.T, scopes ...string) string {
	t.Helper()
	resp, err := f.toks.CreateToken(f.ctx, &atollv1.CreateTokenRequest{Name: "scoped " + strings.NewReplacer(":", "-", "*", "all").Replace(strings.Join(scopes, " ")), Scopes: scopes})
	if err != nil {
		t.Fatalf("create token %v: %v", scopes, err)
	}
	return resp.Secret
}

func (f *apiFixture) create(t *testing.T, req *atollv1.CreateEnvironmentRequest) *atollv1.Environment {
	t.Helper()
	e, err := f.envs.CreateEnvironment(f.ctx, req)
	if err != nil {
		t.Fatalf("create %q: %v", req.Name, err)
	}
	return e
}

// wantCode fails unless err is a status with code c whose message contains each of subs.
func wantCode(t *testing.T, err error, c codes.Code, subs ...string) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != c {
		t.Fatalf("want %s, got %v", c, err)
	}
	for _, s := range subs {
		if !strings.Contains(st.Message(), s) {
			t.Fatalf("%s message %q does not mention %q", c, st.Message(), s)
		}
	}
	return st
}

func fieldViolations(st *status.Status) []string {
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				out = append(out, v.Field)
			}
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestEnvAPICreateGet(t *testing.T) {
	f := newAPIFixture(t)
	before := time.Now()
	e := f.create(t, &atollv1.CreateEnvironmentRequest{
		Name: "My Env", Description: "first", Labels: map[string]string{"team": "core"}, Ttl: "48h",
		ResourceQuota: &atollv1.Resources{Cpu: 500, Memory: 1024, Storage: 2048},
	})
	if e.Slug != "my-env" || e.Version != 1 || e.Status != atollv1.EnvironmentStatus_RUNNING || e.CreatedBy != "admin" || e.ModifiedBy != "admin" {
		t.Fatalf("created %v", e)
	}
	if e.OrgId == "" || e.CompanyIdRef != e.OrgId || e.ProjectId == "" || e.IsDeleted {
		t.Fatalf("ids: %v", e)
	}
	if q := e.ResourceQuota; q.Cpu != 500 || q.Memory != 1024 || q.Storage != 2048 {
		t.Fatalf("quota %v", q)
	}
	if e.ExpiresAt == nil || e.Ttl != "48h" {
		t.Fatalf("ttl not stored: %v", e)
	}
	if exp := e.ExpiresAt.AsTime(); exp.Before(before.Add(48*time.Hour-time.Minute)) || exp.After(time.Now().Add(48*time.Hour+time.Minute)) {
		t.Fatalf("expiresAt %v is not now+48h", exp)
	}
	// Default project when projectId is omitted.
	projs, err := atollv1.NewProjectServiceClient(cptest.Conn(t, f.srv)).ListProjects(f.ctx, &atollv1.ListProjectsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var def string
	for _, p := range projs.Projects {
		if p.IsDefault {
			def = p.Id
		}
	}
	if def == "" || e.ProjectId != def {
		t.Fatalf("env project %q, default project %q", e.ProjectId, def)
	}
	// Derived slug made unique; an explicit taken slug is a conflict.
	e2 := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "my-env"})
	if e2.Slug != "my-env-2" {
		t.Fatalf("derived slug %q, want my-env-2", e2.Slug)
	}
	e3 := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "MY_ENV"})
	if e3.Slug != "my-env-3" {
		t.Fatalf("derived slug %q, want my-env-3", e3.Slug)
	}
	_, err = f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "other", Slug: "my-env"})
	wantCode(t, err, codes.AlreadyExists, "my-env")
	// Default quota when none is asked for.
	d := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "defaults"})
	if d.ResourceQuota.GetCpu() <= 0 || d.ResourceQuota.GetMemory() <= 0 || d.ResourceQuota.GetStorage() <= 0 || d.ExpiresAt != nil {
		t.Fatalf("defaults: %v", d)
	}

	got, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || got.Name != "My Env" || got.Description != "first" || got.Labels["team"] != "core" || got.Version != 1 {
		t.Fatalf("get: %v %v", got, err)
	}
	if got.ResourceUsage == nil || got.CompanyIdRef != got.OrgId {
		t.Fatalf("get lacks computed fields: %v", got)
	}
}

func TestEnvAPIList(t *testing.T) {
	f := newAPIFixture(t)
	prj, err := atollv1.NewProjectServiceClient(cptest.Conn(t, f.srv)).CreateProject(f.ctx, &atollv1.CreateProjectRequest{Name: "side"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 105
	ids := map[string]bool{}
	var created []*atollv1.Environment
	for i := 0; i < n; i++ {
		req := &atollv1.CreateEnvironmentRequest{Name: fmt.Sprintf("env-%03d", i), ResourceQuota: &atollv1.Resources{Cpu: 10, Memory: 10, Storage: 10}}
		if i%10 == 0 {
			req.ProjectId = prj.Id
			req.Name = fmt.Sprintf("side-%03d", i)
		}
		e := f.create(t, req)
		ids[e.Id] = true
		created = append(created, e)
	}

	// Default page size 50, next page token, total count.
	r, err := f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Environments) != 50 || r.TotalCount != n || r.NextPageToken == "" {
		t.Fatalf("default page: %d envs, total %d, next %q", len(r.Environments), r.TotalCount, r.NextPageToken)
	}
	// Max 100.
	r, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{PageSize: 1000})
	if err != nil || len(r.Environments) != 100 {
		t.Fatalf("pageSize 1000: %d envs, %v", len(r.GetEnvironments()), err)
	}
	_, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{PageSize: -1})
	wantCode(t, err, codes.InvalidArgument, "pageSize")
	_, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{PageToken: "garbage!"})
	wantCode(t, err, codes.InvalidArgument, "pageToken")

	// Walk every page: no duplicate, no miss, even with deletes between pages.
	seen := map[string]bool{}
	tok := ""
	pages := 0
	for {
		r, err := f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{PageSize: 7, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range r.Environments {
			if seen[e.Id] {
				t.Fatalf("%s listed twice", e.Id)
			}
			seen[e.Id] = true
		}
		if r.NextPageToken == "" {
			break
		}
		tok = r.NextPageToken
	}
	if len(seen) != n || pages != (n+6)/7 {
		t.Fatalf("walked %d envs in %d pages, want %d in %d", len(seen), pages, n, (n+6)/7)
	}
	for id := range ids {
		if !seen[id] {
			t.Fatalf("%s never listed", id)
		}
	}

	// Filters.
	r, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{ProjectId: prj.Id, PageSize: 100})
	if err != nil || r.TotalCount != 11 || len(r.Environments) != 11 {
		t.Fatalf("projectId filter: %d/%d %v", len(r.GetEnvironments()), r.GetTotalCount(), err)
	}
	for _, e := range r.Environments {
		if e.ProjectId != prj.Id {
			t.Fatalf("project filter returned %v", e)
		}
	}
	r, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{Search: "SIDE-01"})
	if err != nil || r.TotalCount != 1 || r.Environments[0].Name != "side-010" {
		t.Fatalf("search: %v %v", r, err)
	}
	if _, err := f.envs.StopEnvironment(f.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: created[3].Id}); err != nil {
		t.Fatal(err)
	}
	r, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{Status: "stopped"})
	if err != nil || r.TotalCount != 1 || r.Environments[0].Id != created[3].Id {
		t.Fatalf("status filter: %v %v", r, err)
	}
	_, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{Status: "bogus"})
	wantCode(t, err, codes.InvalidArgument, "status")
	r, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{
		CreatedAfter: created[9].CreatedAt, CreatedBefore: created[13].CreatedAt,
	})
	if err != nil || r.TotalCount != 3 {
		t.Fatalf("created window: %v %v", r, err)
	}
	for i, e := range r.Environments {
		if e.Id != created[10+i].Id {
			t.Fatalf("created window item %d is %s, want %s", i, e.Name, created[10+i].Name)
		}
	}
	_, err = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{CreatedAfter: timestamppb.Now(), CreatedBefore: created[0].CreatedAt})
	wantCode(t, err, codes.InvalidArgument, "createdAfter")

	// Soft delete hides from List unless includeDeleted.
	if _, err := f.envs.DeleteEnvironment(f.ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: created[1].Id}); err != nil {
		t.Fatal(err)
	}
	r, _ = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{Search: "env-001"})
	if r.TotalCount != 0 {
		t.Fatalf("deleted env listed: %v", r)
	}
	r, _ = f.envs.ListEnvironments(f.ctx, &atollv1.ListEnvironmentsRequest{Search: "env-001", IncludeDeleted: true})
	if r.TotalCount != 1 || !r.Environments[0].IsDeleted {
		t.Fatalf("includeDeleted: %v", r)
	}
}

func TestEnvAPIUpdateDeleteRestoreHistory(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "stage", ResourceQuota: &atollv1.Resources{Cpu: 500, Memory: 512, Storage: 1024}})

	u, err := f.envs.UpdateEnvironment(f.ctx, &atollv1.UpdateEnvironmentRequest{
		EnvironmentId: e.Id,
		Environment:   &atollv1.Environment{ResourceQuota: &atollv1.Resources{Cpu: 2000}, Description: "bigger"},
		UpdateMask:    &fieldmaskpb.FieldMask{Paths: []string{"resource_quota.cpu", "description"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 2 || u.ResourceQuota.Cpu != 2000 || u.ResourceQuota.Memory != 512 || u.Description != "bigger" {
		t.Fatalf("update: %v", u)
	}
	_, err = f.envs.UpdateEnvironment(f.ctx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: e.Id, Environment: &atollv1.Environment{Id: "x"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"id"}}})
	wantCode(t, err, codes.InvalidArgument, "id")
	_, err = f.envs.UpdateEnvironment(f.ctx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: e.Id, Environment: &atollv1.Environment{Name: "x"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}, ExpectedVersion: 1})
	wantCode(t, err, codes.Aborted, "version")

	// Delete: hidden from List, Get still shows it as deleted.
	if _, err := f.envs.DeleteEnvironment(f.ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: e.Id}); err != nil {
		t.Fatal(err)
	}
	g, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || !g.IsDeleted || g.DeletedAt == nil || g.Version != 3 {
		t.Fatalf("get deleted: %v %v", g, err)
	}
	// A deleted environment still exists: changing it is FAILED_PRECONDITION
	// (409) saying how to restore it, not NOT_FOUND.
	_, err = f.envs.DeleteEnvironment(f.ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.FailedPrecondition, "is deleted; restore it first")
	_, err = f.envs.UpdateEnvironment(f.ctx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: e.Id, Environment: &atollv1.Environment{Description: "x"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
	wantCode(t, err, codes.FailedPrecondition, "/restore")
	_, err = f.envs.StartEnvironment(f.ctx, &atollv1.StartEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.FailedPrecondition, "is deleted")
	_, err = atollv1.NewAppServiceClient(cptest.Conn(t, f.srv)).CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: e.Id, App: &atollv1.App{Name: "web", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "1"}}}})
	wantCode(t, err, codes.FailedPrecondition, "is deleted")
	// The name is free again while it is deleted.
	other := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "stage"})
	_, err = f.envs.RestoreEnvironment(f.ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.AlreadyExists, "stage")
	if _, err := f.envs.DeleteEnvironment(f.ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: other.Id}); err != nil {
		t.Fatal(err)
	}

	// Undelete.
	r, err := f.envs.RestoreEnvironment(f.ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || r.IsDeleted || r.Version != 4 || r.ResourceQuota.Cpu != 2000 || r.Status != atollv1.EnvironmentStatus_RUNNING {
		t.Fatalf("undelete: %v %v", r, err)
	}
	_, err = f.envs.RestoreEnvironment(f.ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.FailedPrecondition, "not deleted")
	// Bring back version 1's quota.
	r, err = f.envs.RestoreEnvironment(f.ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: e.Id, Version: 1})
	if err != nil || r.Version != 5 || r.ResourceQuota.Cpu != 500 || r.ResourceQuota.Memory != 512 || r.Description != "" {
		t.Fatalf("restore version 1: %v %v", r, err)
	}
	_, err = f.envs.RestoreEnvironment(f.ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: e.Id, Version: 99})
	wantCode(t, err, codes.NotFound)

	// A second token (another actor) shows up in modifiedBy.
	other2 := f.token(t, "env:*")
	u, err = f.envs.UpdateEnvironment(cptest.Ctx(t, other2), &atollv1.UpdateEnvironmentRequest{EnvironmentId: e.Id,
		Environment: &atollv1.Environment{Labels: map[string]string{"a": "b"}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}}})
	if err != nil || u.ModifiedBy == "admin" || u.ModifiedBy == "" || u.CreatedBy != "admin" {
		t.Fatalf("update by another token: %v %v", u, err)
	}

	h, err := f.envs.GetEnvironmentHistory(f.ctx, &atollv1.GetEnvironmentHistoryRequest{EnvironmentId: e.Id})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		action string
		field  string
		by     string
	}{{"create", "", "admin"}, {"update", "resourceQuota", "admin"}, {"delete", "isDeleted", "admin"},
		{"restore", "isDeleted", "admin"}, {"restore", "resourceQuota", "admin"}, {"update", "labels", u.ModifiedBy}}
	if len(h.Versions) != len(want) {
		t.Fatalf("history has %d versions, want %d: %v", len(h.Versions), len(want), h)
	}
	for i, v := range h.Versions {
		w := want[i]
		if v.Version != int32(i+1) || v.ModifiedBy != w.by || !strings.HasPrefix(v.Action, w.action) || v.ModifiedAt == nil || v.Environment.GetVersion() != int32(i+1) {
			t.Fatalf("version %d: %v", i+1, v)
		}
		if w.field != "" && !contains(v.ChangedFields, w.field) {
			t.Fatalf("version %d changed %v, want %s among them", i+1, v.ChangedFields, w.field)
		}
		for _, cf := range v.ChangedFields {
			if cf == "version" || cf == "updatedAt" || cf == "modifyIndex" {
				t.Fatalf("version %d lists bookkeeping field %s", i+1, cf)
			}
		}
	}
	if h.Versions[1].Environment.ResourceQuota.Cpu != 2000 || h.Versions[0].Environment.ResourceQuota.Cpu != 500 {
		t.Fatalf("history snapshots wrong: %v", h)
	}
}

func TestEnvAPIUsageAndLifecycle(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "prod", ResourceQuota: &atollv1.Resources{Cpu: 10000, Memory: 16384, Storage: 102400}})
	u, err := f.envs.GetResourceUsage(f.ctx, &atollv1.GetResourceUsageRequest{EnvironmentId: e.Id})
	if err != nil {
		t.Fatal(err)
	}
	if u.EnvironmentId != e.Id || u.Quota.Cpu != 10000 || u.Quota.Memory != 16384 || u.Quota.Storage != 102400 ||
		u.Used == nil || u.Used.Cpu != 0 || u.Available.Cpu != 10000 || u.Available.Memory != 16384 || u.Available.Storage != 102400 ||
		u.UtilizationPercent == nil || u.UtilizationPercent.Cpu != 0 {
		t.Fatalf("usage: %v", u)
	}

	s, err := f.envs.StopEnvironment(f.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || s.Status != atollv1.EnvironmentStatus_STOPPED || s.Version != 2 {
		t.Fatalf("stop: %v %v", s, err)
	}
	_, err = f.envs.StopEnvironment(f.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.FailedPrecondition, "STOPPED")
	s, err = f.envs.StartEnvironment(f.ctx, &atollv1.StartEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || s.Status != atollv1.EnvironmentStatus_RUNNING {
		t.Fatalf("start: %v %v", s, err)
	}
	_, err = f.envs.StartEnvironment(f.ctx, &atollv1.StartEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.FailedPrecondition, "RUNNING")
	s, err = f.envs.StopEnvironment(f.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: e.Id, Hibernate: true})
	if err != nil || s.Status != atollv1.EnvironmentStatus_HIBERNATING {
		t.Fatalf("hibernate: %v %v", s, err)
	}
	_, err = f.envs.StopEnvironment(f.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: e.Id, Hibernate: true})
	wantCode(t, err, codes.FailedPrecondition, "HIBERNATING")
	s, err = f.envs.StartEnvironment(f.ctx, &atollv1.StartEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || s.Status != atollv1.EnvironmentStatus_RUNNING || s.StartedAt == nil {
		t.Fatalf("start from hibernation: %v %v", s, err)
	}
	h, _ := f.envs.GetEnvironmentHistory(f.ctx, &atollv1.GetEnvironmentHistoryRequest{EnvironmentId: e.Id})
	if n := len(h.GetVersions()); n != 5 || !contains(h.Versions[1].ChangedFields, "status") {
		t.Fatalf("lifecycle history: %v", h)
	}
}

func TestEnvAPIErrors(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "taken"})

	_, err := f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "TAKEN"})
	wantCode(t, err, codes.AlreadyExists, "TAKEN")

	_, err = f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "bad", ResourceQuota: &atollv1.Resources{Cpu: -1, Memory: -2}})
	st := wantCode(t, err, codes.InvalidArgument, "resourceQuota.cpu", "resourceQuota.memory")
	if fv := fieldViolations(st); !contains(fv, "resourceQuota.cpu") || !contains(fv, "resourceQuota.memory") {
		t.Fatalf("field violations %v", fv)
	}
	_, err = f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "", Ttl: "soon", Slug: "Not A Slug"})
	if fv := fieldViolations(wantCode(t, err, codes.InvalidArgument)); !contains(fv, "name") || !contains(fv, "ttl") || !contains(fv, "slug") {
		t.Fatalf("field violations %v", fv)
	}

	for _, id := range []string{"nope", "env_", "env_ABCDEFGHIJKLMNOPQRSTUVWXYZ", "prj_aaaaaaaaaaaaaaaaaaaaaaaaaa", "env_aaaaaaaaaaaaaaaaaaaaaaaaaa/x"} {
		_, err = f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: id})
		wantCode(t, err, codes.InvalidArgument, "environmentId")
	}
	unknown := "env_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	_, err = f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: unknown})
	wantCode(t, err, codes.NotFound, unknown)

	// Another organization sees nothing of ours, exactly like a missing id.
	otherCtx := cptest.Ctx(t, f.newOrg(t, "other org", nil))
	_, err = f.envs.GetEnvironment(otherCtx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.NotFound, e.Id)
	for name, call := range map[string]func() error{
		"update": func() error {
			_, err := f.envs.UpdateEnvironment(otherCtx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: e.Id, Environment: &atollv1.Environment{Description: "x"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
			return err
		},
		"delete": func() error {
			_, err := f.envs.DeleteEnvironment(otherCtx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: e.Id})
			return err
		},
		"restore": func() error {
			_, err := f.envs.RestoreEnvironment(otherCtx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: e.Id, Version: 1})
			return err
		},
		"history": func() error {
			_, err := f.envs.GetEnvironmentHistory(otherCtx, &atollv1.GetEnvironmentHistoryRequest{EnvironmentId: e.Id})
			return err
		},
		"usage": func() error {
			_, err := f.envs.GetResourceUsage(otherCtx, &atollv1.GetResourceUsageRequest{EnvironmentId: e.Id})
			return err
		},
		"stop": func() error {
			_, err := f.envs.StopEnvironment(otherCtx, &atollv1.StopEnvironmentRequest{EnvironmentId: e.Id})
			return err
		},
		"watch": func() error {
			s, err := f.envs.WatchEnvironment(otherCtx, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
	} {
		if status.Code(call()) != codes.NotFound {
			t.Fatalf("%s of another organization's environment: want NOT_FOUND", name)
		}
	}
	if l, err := f.envs.ListEnvironments(otherCtx, &atollv1.ListEnvironmentsRequest{IncludeDeleted: true}); err != nil || l.TotalCount != 0 {
		t.Fatalf("other org lists %v %v", l, err)
	}
	if g, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id}); err != nil || g.Version != 1 {
		t.Fatalf("other org changed our env: %v %v", g, err)
	}

	// Authentication and authorization.
	_, err = f.envs.ListEnvironments(cptest.Ctx(t, ""), &atollv1.ListEnvironmentsRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = f.envs.ListEnvironments(cptest.Ctx(t, "atl_notarealtoken"), &atollv1.ListEnvironmentsRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = f.envs.ListEnvironments(cptest.Ctx(t, "garbage"), &atollv1.ListEnvironmentsRequest{})
	wantCode(t, err, codes.Unauthenticated)
	readOnly := cptest.Ctx(t, f.token(t, "env:read"))
	if _, err := f.envs.GetEnvironment(readOnly, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id}); err != nil {
		t.Fatalf("env:read token cannot read: %v", err)
	}
	_, err = f.envs.CreateEnvironment(readOnly, &atollv1.CreateEnvironmentRequest{Name: "nope"})
	st = wantCode(t, err, codes.PermissionDenied, "env:write")
	named := false
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Metadata["requiredPermission"] == "env:write" {
			named = true
		}
	}
	if !named {
		t.Fatalf("PERMISSION_DENIED details do not name env:write: %v", st.Details())
	}
	_, err = f.envs.DeleteEnvironment(readOnly, &atollv1.DeleteEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.PermissionDenied, "env:write")

	// Organization quota.
	small := cptest.Ctx(t, f.newOrg(t, "small org", &atollv1.Resources{Cpu: 1000, Memory: 100000, Storage: 100000}))
	if _, err := f.envs.CreateEnvironment(small, &atollv1.CreateEnvironmentRequest{Name: "fits", ResourceQuota: &atollv1.Resources{Cpu: 600, Memory: 10, Storage: 10}}); err != nil {
		t.Fatal(err)
	}
	_, err = f.envs.CreateEnvironment(small, &atollv1.CreateEnvironmentRequest{Name: "too big", ResourceQuota: &atollv1.Resources{Cpu: 600, Memory: 10, Storage: 10}})
	st = wantCode(t, err, codes.ResourceExhausted, "cpu", "600", "400")
	var qf *errdetails.QuotaFailure
	for _, d := range st.Details() {
		if q, ok := d.(*errdetails.QuotaFailure); ok {
			qf = q
		}
	}
	if qf == nil || len(qf.Violations) != 1 || !strings.Contains(qf.Violations[0].Subject, "cpu") {
		t.Fatalf("quota failure details: %v", st.Details())
	}
}

// Making an environment the project's default un-defaults the previous one:
// a visible change with its own version, history entry and watch event.
func TestEnvAPIDefaultMoves(t *testing.T) {
	f := newAPIFixture(t)
	a := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "first", IsDefault: true})
	w, err := f.envs.WatchEnvironment(f.ctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: a.Id, FromIndex: a.CreateIndex})
	if err != nil {
		t.Fatal(err)
	}
	b := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "second", IsDefault: true})
	got, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: a.Id})
	if err != nil || got.IsDefault || got.Version != 2 || got.ModifyIndex != b.CreateIndex {
		t.Fatalf("previous default after a new default: %v %v", got, err)
	}
	h, err := f.envs.GetEnvironmentHistory(f.ctx, &atollv1.GetEnvironmentHistoryRequest{EnvironmentId: a.Id})
	if err != nil || len(h.Versions) != 2 || !contains(h.Versions[1].ChangedFields, "isDefault") || h.Versions[1].ModifiedBy != "admin" {
		t.Fatalf("history: %v %v", h, err)
	}
	if ev := recvEvent(t, w); ev.EventType != "updated" || ev.Environment.IsDefault || ev.Index != b.CreateIndex {
		t.Fatalf("watch event: %v", ev)
	}
	// Through an update too.
	if _, err := f.envs.UpdateEnvironment(f.ctx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: a.Id,
		Environment: &atollv1.Environment{IsDefault: true}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"isDefault"}}}); err != nil {
		t.Fatal(err)
	}
	got, _ = f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: b.Id})
	if got.IsDefault || got.Version != 2 {
		t.Fatalf("second after first became default again: %v", got)
	}
}

// A deleted environment whose project was deleted after it cannot be
// restored into the missing project (it would be live, counted against the
// quota, yet unreachable through any project).
func TestEnvAPIRestoreIntoDeletedProject(t *testing.T) {
	f := newAPIFixture(t)
	projects := atollv1.NewProjectServiceClient(cptest.Conn(t, f.srv))
	prj, err := projects.CreateProject(f.ctx, &atollv1.CreateProjectRequest{Name: "p3"})
	if err != nil {
		t.Fatal(err)
	}
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "in-p3", ProjectId: prj.Id})
	if _, err := f.envs.DeleteEnvironment(f.ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: e.Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := projects.DeleteProject(f.ctx, &atollv1.DeleteProjectRequest{ProjectId: prj.Id}); err != nil {
		t.Fatal(err)
	}
	_, err = f.envs.RestoreEnvironment(f.ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: e.Id})
	wantCode(t, err, codes.FailedPrecondition, "project", "deleted")
	g, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil || !g.IsDeleted {
		t.Fatalf("after the refused restore: %v %v, want still deleted", g, err)
	}
}
