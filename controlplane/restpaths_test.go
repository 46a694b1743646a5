package controlplane_test

import (
	"strings"
	"testing"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// TestRESTViolationPathsRelativeToBody: a REST route whose body is one field
// of the request names bad fields as the caller wrote them; the Connect route
// (the whole request is the body) keeps the request's path. A deleted
// environment's 409 carries a precondition detail.
func TestRESTViolationPathsRelativeToBody(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	fields := func(b obj) []string {
		var out []string
		for _, v := range b.list("details.fieldViolations") {
			out = append(out, v.str("field"))
		}
		return out
	}
	code, body := r.do("PATCH", "/v1/organization", `{"quota":{"cpu":-1}}`)
	if got := fields(body); code != 400 || len(got) != 1 || got[0] != "quota.cpu" || !strings.Contains(body.str("message"), "quota.cpu: ") {
		t.Fatalf("PATCH /v1/organization: %d %v %s", code, got, body.raw)
	}
	code, body = r.do("POST", "/atoll.v1.OrganizationService/UpdateOrganization", `{"organization":{"quota":{"cpu":-1}},"updateMask":"quota.cpu"}`)
	if got := fields(body); code != 400 || len(got) != 1 || got[0] != "organization.quota.cpu" {
		t.Fatalf("Connect UpdateOrganization: %d %v %s", code, got, body.raw)
	}

	env, err := f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "paths"})
	if err != nil {
		t.Fatal(err)
	}
	code, body = r.do("POST", "/v1/environments/"+env.Id+"/volumes", `{"name":"Bad Name","sizeMb":-4}`)
	got := fields(body)
	if code != 400 || len(got) != 2 || got[0] != "name" || got[1] != "sizeMb" {
		t.Fatalf("POST volumes: %d %v %s", code, got, body.raw)
	}
	// Path parameters keep their names.
	code, body = r.do("POST", "/v1/environments/env_bad/volumes", `{"name":"v","sizeMb":1}`)
	if got := fields(body); code != 400 || len(got) != 1 || got[0] != "envId" {
		t.Fatalf("bad env id: %d %v %s", code, got, body.raw)
	}

	if _, err := f.envs.DeleteEnvironment(f.ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: env.Id}); err != nil {
		t.Fatal(err)
	}
	code, body = r.do("POST", "/v1/environments/"+env.Id+"/start", `{}`)
	pf := body.list("details.preconditionFailures")
	if code != 409 || body.str("code") != "FAILED_PRECONDITION" || len(pf) != 1 || pf[0].str("type") != "DELETED" || !strings.Contains(body.str("message"), "/restore") {
		t.Fatalf("start a deleted environment: %d %s", code, body.raw)
	}
}

// TestRESTStrayQueryParameters: a query parameter on a route that takes none
// (every field is in the path, or the body is the whole request) is a 400
// naming it, like an unknown parameter on a list route; routes with query
// fields still take theirs.
func TestRESTStrayQueryParameters(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	env, err := f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "stray"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, body, param string }{
		{"GET", "/v1/environments/" + env.Id + "/history?verbose=1", "", "verbose"},
		{"GET", "/v1/environments/" + env.Id + "/resource-usage?unit=gb&a=1", "", "a"},
		{"GET", "/v1/organization?org=other", "", "org"},
		{"GET", "/v1/nodes?status=READY", "", "status"},
		{"GET", "/environments/" + env.Id + "/health?deep=true", "", "deep"}, // seed alias
		{"POST", "/v1/environments?dryRun=true", `{"name":"stray-2"}`, "dryRun"},
	} {
		code, body := r.do(c.method, c.path, c.body)
		v := body.list("details.fieldViolations")
		if code != 400 || len(v) != 1 || v[0].str("field") != c.param || !strings.Contains(v[0].str("description"), "unknown query parameter") {
			t.Errorf("%s %s: %d %s, want 400 naming %q", c.method, c.path, code, body.raw, c.param)
		}
	}
	// Nothing was created by the refused POST.
	if code, body := r.do("GET", "/v1/environments?search=stray-2", ""); code != 200 || len(body.list("environments")) != 0 {
		t.Fatalf("refused create left an environment: %d %s", code, body.raw)
	}
	// Query fields still work.
	if code, body := r.do("GET", "/v1/environments?pageSize=1&search=stray", ""); code != 200 || len(body.list("environments")) != 1 {
		t.Fatalf("list with query: %d %s", code, body.raw)
	}
	if code, body := r.do("GET", "/v1/environments/"+env.Id+"/history", ""); code != 200 {
		t.Fatalf("history without query: %d %s", code, body.raw)
	}
}
