package controlplane_test

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Seed 004 (MechaMental): every operation under
// /v1/orgs/{org_id}/workspaces/{workspace_id}/environments, run over HTTP as
// the seed shows it, answers with the seed's snake_case fields and errors.

// mechaEnvKeys are the fields of the seed's environment and their JSON types.
var mechaEnvKeys = map[string]string{
	"environment_id": "string", "workspace_id": "string", "org_id": "string", "name": "string", "slug": "string",
	"description": "string", "is_default": "bool", "active_deployments": "object", "status": "string",
	"created_by": "string", "created_at": "string", "updated_at": "string",
}

// mechaTimestamp is the seed's error timestamp: 2025-01-01T00:00:00.000000.
var mechaTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$`)

// wantMechaError checks the seed's error body: error, message, details,
// timestamp, status_code.
func wantMechaError(t *testing.T, code int, o obj, want int, name string) {
	t.Helper()
	wantKeys(t, name, o, map[string]string{"error": "string", "message": "string", "details": "object", "timestamp": "string", "status_code": "number"})
	if code != want || o.str("error") != name || o.num("status_code") != float64(want) || !mechaTimestamp.MatchString(o.str("timestamp")) {
		t.Fatalf("want %d %s: got %d %s", want, name, code, o.raw)
	}
}

func TestMechaMentalSeedOperations(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	org, err := f.orgs.GetOrganization(f.ctx, &atollv1.GetOrganizationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := atollv1.NewProjectServiceClient(cptest.Conn(t, f.srv)).CreateProject(f.ctx, &atollv1.CreateProjectRequest{Name: "Shop", Slug: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	base := "/v1/orgs/" + org.Id + "/workspaces/" + ws.Id + "/environments"

	// List Environments (none yet).
	l := r.must(http.StatusOK, "GET", base, nil)
	wantKeys(t, "empty list", l, map[string]string{"total": "number", "has_more": "bool", "next_cursor": "string", "environments": "array"})
	if l.num("total") != 0 || l.get("has_more") != false || len(l.list("environments")) != 0 {
		t.Fatalf("empty list: %s", l.raw)
	}

	// Create Environment, with the seed's body.
	c := r.must(http.StatusCreated, "POST", base, `{    "name": "staging",    "slug": "staging"  }`)
	if c.str("message") != "Environment created successfully" {
		t.Fatalf("create: %s", c.raw)
	}
	env := sub(c, "environment")
	wantKeys(t, "create", env, mechaEnvKeys)
	if env.str("workspace_id") != ws.Id || env.str("org_id") != org.Id || env.str("name") != "staging" || env.str("slug") != "staging" ||
		env.str("status") != "active" || env.get("is_default") != false || env.str("created_by") == "" {
		t.Fatalf("create: %s", c.raw)
	}
	id := env.str("environment_id")

	// Get Environment.
	g := r.must(http.StatusOK, "GET", base+"/"+id, nil)
	wantKeys(t, "get", g, mechaEnvKeys)
	if g.str("environment_id") != id || g.str("atoll_status") != "RUNNING" {
		t.Fatalf("get: %s", g.raw)
	}
	// The list now has it.
	l = r.must(http.StatusOK, "GET", base, nil)
	if l.num("total") != 1 || l.get("has_more") != false || len(l.list("environments")) != 1 {
		t.Fatalf("list: %s", l.raw)
	}
	item := l.list("environments")[0]
	item.raw = l.raw
	wantKeys(t, "list item", item, mechaEnvKeys)

	// Update Environment: the seed's empty body, then a change in snake_case.
	u := r.must(http.StatusOK, "PUT", base+"/"+id, `{}`)
	if u.str("message") != "Environment updated successfully" || u.str("environment.environment_id") != id {
		t.Fatalf("update {}: %s", u.raw)
	}
	wantKeys(t, "update", sub(u, "environment"), mechaEnvKeys)
	u = r.must(http.StatusOK, "PUT", base+"/"+id, `{"description":"Staging","is_default":true}`)
	if u.str("environment.description") != "Staging" || u.get("environment.is_default") != true {
		t.Fatalf("update: %s", u.raw)
	}

	// Deploy Release, twice (a new release replaces the first).
	rels := atollv1.NewReleaseServiceClient(cptest.Conn(t, f.srv))
	var relIDs []string
	for _, v := range []string{"1.0.0", "1.1.0"} {
		rel, err := rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: ws.Id, Release: &atollv1.Release{AppName: "api", Version: v, Source: image(v)}})
		if err != nil {
			t.Fatal(err)
		}
		relIDs = append(relIDs, rel.Id)
		d := r.must(http.StatusOK, "POST", base+"/"+id+"/deploy", `{    "app_id": "api",    "release_id": "`+rel.Id+`"  }`)
		wantKeys(t, "deploy", d, map[string]string{"message": "string", "deployment_id": "string", "environment_id": "string", "app_id": "string", "release_id": "string"})
		if d.str("message") != "Release deployed successfully" || d.str("environment_id") != id || d.str("release_id") != rel.Id || d.str("deployment_id") == "" {
			t.Fatalf("deploy %s: %s", v, d.raw)
		}
	}
	if g := r.must(http.StatusOK, "GET", base+"/"+id, nil); g.str("active_deployments.api") != relIDs[1] {
		t.Fatalf("active_deployments: %s", g.raw)
	}

	// List Deployments: newest first, with the previous release.
	deps := r.must(http.StatusOK, "GET", base+"/"+id+"/deployments", nil)
	wantKeys(t, "deployments", deps, map[string]string{"deployments": "array", "total": "number"})
	if deps.num("total") != 2 || len(deps.list("deployments")) != 2 {
		t.Fatalf("deployments: %s", deps.raw)
	}
	newest := deps.list("deployments")[0]
	newest.raw = deps.raw
	wantKeys(t, "deployment", newest, map[string]string{"deployment_id": "string", "environment_id": "string", "app_id": "string", "release_id": "string",
		"previous_release_id": "string", "action": "string", "deployed_by": "string", "deployed_at": "string"})
	if newest.str("release_id") != relIDs[1] || newest.str("previous_release_id") != relIDs[0] || newest.str("action") != "deploy" || newest.str("environment_id") != id {
		t.Fatalf("newest deployment: %s", deps.raw)
	}
	if one := r.must(http.StatusOK, "GET", base+"/"+id+"/deployments?limit=1", nil); len(one.list("deployments")) != 1 || one.num("total") != 2 {
		t.Fatalf("limit=1: %s", one.raw)
	}
	// limit is 1 to 200: 0, 201 and non-numbers are refused, naming limit.
	for _, bad := range []string{"0", "201", "-1", "abc"} {
		code, o := r.do("GET", base+"/"+id+"/deployments?limit="+bad, nil)
		wantViolation(t, code, o, "limit", "between 1 and 200")
		wantMechaError(t, code, o, http.StatusBadRequest, "VALIDATION_ERROR")
		if dl := o.list("detail"); len(dl) != 1 || dl[0].str("msg") == "" || dl[0].str("type") == "" {
			t.Fatalf("limit=%s: %s", bad, o.raw)
		}
		if loc, _ := o.list("detail")[0].m["loc"].([]any); len(loc) != 2 || loc[0] != "query" || loc[1] != "limit" {
			t.Fatalf("limit=%s: loc: %s", bad, o.raw)
		}
	}

	// Undeploy App.
	ud := r.must(http.StatusOK, "DELETE", base+"/"+id+"/deploy/api", nil)
	wantKeys(t, "undeploy", ud, map[string]string{"message": "string", "deployment_id": "string"})
	if ud.str("message") != "App undeployed from environment" {
		t.Fatalf("undeploy: %s", ud.raw)
	}
	deps = r.must(http.StatusOK, "GET", base+"/"+id+"/deployments", nil)
	if deps.num("total") != 3 || deps.list("deployments")[0].str("action") != "undeploy" || deps.list("deployments")[0].str("deployment_id") != ud.str("deployment_id") {
		t.Fatalf("deployments after undeploy: %s", deps.raw)
	}

	// Delete Environment.
	del := r.must(http.StatusOK, "DELETE", base+"/"+id, nil)
	if del.str("message") != "Environment deleted successfully" {
		t.Fatalf("delete: %s", del.raw)
	}
	if g := r.must(http.StatusOK, "GET", base+"/"+id, nil); g.str("status") != "deleted" {
		t.Fatalf("after delete: %s", g.raw)
	}
}

// The seed's error responses: 401, 403 (required_permission), 404
// (resource_type, resource_id) and validation errors (the detail list).
func TestMechaMentalErrors(t *testing.T) {
	f := newAPIFixture(t)
	org, err := f.orgs.GetOrganization(f.ctx, &atollv1.GetOrganizationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := atollv1.NewProjectServiceClient(cptest.Conn(t, f.srv)).CreateProject(f.ctx, &atollv1.CreateProjectRequest{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	base := "/v1/orgs/" + org.Id + "/workspaces/" + ws.Id + "/environments"
	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "prod", ProjectId: ws.Id})

	code, o := f.rest(t, "").do("GET", base, nil)
	wantMechaError(t, code, o, http.StatusUnauthorized, "AUTHENTICATION_FAILED")

	code, o = f.rest(t, f.token(t, "env:read")).do("POST", base, `{"name":"x","slug":"x"}`)
	wantMechaError(t, code, o, http.StatusForbidden, "FORBIDDEN")
	if o.str("details.required_permission") == "" {
		t.Fatalf("403 without required_permission: %s", o.raw)
	}

	r := f.rest(t, f.c.AdminToken)
	code, o = r.do("GET", base+"/env_aaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	wantMechaError(t, code, o, http.StatusNotFound, "RESOURCE_NOT_FOUND")
	if o.str("details.resource_type") != "environment" || o.str("details.resource_id") != "env_aaaaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Fatalf("404 details: %s", o.raw)
	}
	code, o = r.do("GET", "/v1/orgs/"+org.Id+"/workspaces/nope/environments", nil)
	wantMechaError(t, code, o, http.StatusNotFound, "RESOURCE_NOT_FOUND")
	if o.str("details.resource_type") != "project" || o.str("details.resource_id") != "nope" {
		t.Fatalf("unknown workspace: %s", o.raw)
	}

	// Validation: wrong types in the body, every field in the detail list.
	code, o = r.do("POST", base, `{"name":5,"slug":"x"}`)
	wantViolation(t, code, o, "name", "must be a string")
	wantMechaError(t, code, o, http.StatusBadRequest, "VALIDATION_ERROR")
	d := o.list("detail")
	if len(d) != 1 || d[0].str("msg") == "" || d[0].str("type") != "value_error" {
		t.Fatalf("detail: %s", o.raw)
	}
	if loc, _ := d[0].m["loc"].([]any); len(loc) != 2 || loc[0] != "body" || loc[1] != "name" {
		t.Fatalf("detail loc: %s", o.raw)
	}
	code, o = r.do("PUT", base+"/"+env.Id, `{"is_default":"yes"}`)
	wantMechaError(t, code, o, http.StatusBadRequest, "VALIDATION_ERROR")
	code, o = r.do("POST", base+"/"+env.Id+"/deploy", `{"app_id":"api"}`)
	wantMechaError(t, code, o, http.StatusBadRequest, "VALIDATION_ERROR")
	if len(o.list("detail")) == 0 {
		t.Fatalf("deploy without release_id: %s", o.raw)
	}
	code, o = r.do("POST", base+"/"+env.Id+"/deploy", `{"app_id":"api","release_id":"rel_aaaaaaaaaaaaaaaaaaaaaaaaaa"}`)
	wantMechaError(t, code, o, http.StatusNotFound, "RESOURCE_NOT_FOUND")
	code, o = r.do("DELETE", base+"/"+env.Id+"/deploy/api", nil)
	wantMechaError(t, code, o, http.StatusNotFound, "RESOURCE_NOT_FOUND")
	// A taken name: 409.
	code, o = r.do("POST", base, `{"name":"prod","slug":"prod"}`)
	wantMechaError(t, code, o, http.StatusConflict, "CONFLICT")
	// atoll's error fields stay next to MechaMental's.
	if o.str("code") != "ALREADY_EXISTS" || o.num("status") != 409 {
		t.Fatalf("atoll's fields: %s", o.raw)
	}
}
