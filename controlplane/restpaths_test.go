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
