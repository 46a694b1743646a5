package controlplane_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// wantViolation checks that a 400 lists field with a description containing desc.
func wantViolation(t *testing.T, code int, o obj, field, desc string) {
	t.Helper()
	wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", field)
	for _, v := range o.list("details.fieldViolations") {
		if v.str("field") == field && strings.Contains(v.str("description"), desc) {
			return
		}
	}
	t.Fatalf("no violation of %s (%q): %s", field, desc, o.raw)
}

// The workspace segment of /v1/orgs/{org}/workspaces/{ws}/environments names
// a project of the organization (id, slug or name), and every route under it
// acts only on that project's environments.
func TestWorkspaceScopesEnvironments(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	org, err := f.orgs.GetOrganization(f.ctx, &atollv1.GetOrganizationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	prjs := atollv1.NewProjectServiceClient(cptest.Conn(t, f.srv))
	p, err := prjs.CreateProject(f.ctx, &atollv1.CreateProjectRequest{Name: "Shop", Slug: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := prjs.CreateProject(f.ctx, &atollv1.CreateProjectRequest{Name: "Blog", Slug: "blog"})
	if err != nil {
		t.Fatal(err)
	}
	mine := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "mine", ProjectId: p.Id})
	other := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "other", ProjectId: p2.Id})
	ws := func(w string) string { return "/v1/orgs/" + org.Id + "/workspaces/" + w + "/environments" }

	// An unknown workspace: NOT_FOUND naming the project.
	for _, w := range []string{"garbage", "prj_aaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		code, o := r.do("GET", ws(w)+"/"+mine.Id, nil)
		wantError(t, code, o, http.StatusNotFound, "NOT_FOUND", "project", w)
		code, o = r.do("GET", ws(w), nil)
		wantError(t, code, o, http.StatusNotFound, "NOT_FOUND", "project", w)
		code, o = r.do("POST", ws(w), `{"name":"x"}`)
		wantError(t, code, o, http.StatusNotFound, "NOT_FOUND", "project", w)
	}
	// The workspace by id, slug and name.
	for _, w := range []string{p.Id, "shop", "Shop"} {
		got := r.must(http.StatusOK, "GET", ws(w)+"/"+mine.Id, nil)
		if got.str("id") != mine.Id {
			t.Fatalf("get through %s: %s", w, got.raw)
		}
		l := r.must(http.StatusOK, "GET", ws(w), nil)
		if envs := l.list("environments"); len(envs) != 1 || envs[0].str("id") != mine.Id || l.num("totalCount") != 1 {
			t.Fatalf("list through %s: %s", w, l.raw)
		}
	}
	if got := r.must(http.StatusOK, "GET", "/v1/orgs/"+org.Id+"/workspaces/shop", nil); got.str("id") != p.Id {
		t.Fatalf("workspace by slug: %s", got.raw)
	}
	// Another project's environment does not exist through this workspace.
	for _, c := range []struct{ method, suffix, body string }{
		{"GET", "", ""}, {"PUT", "", `{"description":"x"}`}, {"PATCH", "", `{"description":"x"}`},
		{"DELETE", "", ""}, {"POST", "/stop", `{}`}, {"GET", "/history", ""},
	} {
		code, o := r.do(c.method, ws(p.Id)+"/"+other.Id+c.suffix, c.body)
		wantError(t, code, o, http.StatusNotFound, "NOT_FOUND", other.Id)
	}
	if e, err := f.envs.GetEnvironment(f.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: other.Id}); err != nil || e.IsDeleted || e.Version != other.Version {
		t.Fatalf("the other project's environment changed: %v %v", e, err)
	}
	// A list asking for another project through the workspace.
	code, o := r.do("GET", ws(p.Id)+"?projectId="+p2.Id, nil)
	wantViolation(t, code, o, "projectId", p2.Id)
	// Create: in the path's project; another projectId in the body is refused.
	code, o = r.do("POST", ws(p.Id), `{"name":"x1","projectId":"`+p2.Id+`"}`)
	wantViolation(t, code, o, "projectId", p2.Id)
	code, o = r.do("POST", ws("shop"), `{"name":"x2","project_id":"`+p2.Id+`"}`)
	wantViolation(t, code, o, "projectId", p2.Id)
	if e := r.must(http.StatusCreated, "POST", ws(p.Id), `{"name":"x3","projectId":"`+p.Id+`"}`); e.str("projectId") != p.Id {
		t.Fatalf("create with the same projectId: %s", e.raw)
	}
	if e := r.must(http.StatusCreated, "POST", ws("shop"), `{"name":"x4"}`); e.str("projectId") != p.Id {
		t.Fatalf("create by slug: %s", e.raw)
	}
	// Item routes on the workspace's own environment work.
	r.must(http.StatusOK, "PATCH", ws("shop")+"/"+mine.Id, `{"description":"changed"}`)
	r.must(http.StatusOK, "DELETE", ws(p.Id)+"/"+mine.Id, nil)
}

// A REST request body is one JSON value: data after it is refused.
func TestRESTBodyTrailingData(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "base"})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/environments", `{"name":"tg1"} garbage`},
		{"POST", "/v1/environments", `{"name":"tg2"}{"name":"tg3"}`},
		{"PATCH", "/v1/environments/" + e.Id, `{"description":"a"} x`},
		{"PUT", "/v1/environments/" + e.Id, `{"description":"a"}{}`},
		{"POST", "/v1/environments/" + e.Id + "/apps", `{"name":"web","source":{"image":"nginx"}} {}`},
		{"POST", "/v1/projects", `{"name":"p"}]`},
	} {
		code, o := r.do(c.method, c.path, c.body)
		wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", "unexpected data after the JSON")
	}
	l := r.must(http.StatusOK, "GET", "/v1/environments", nil)
	if n := l.num("totalCount"); n != 1 {
		t.Fatalf("%v environments after refused creates: %s", n, l.raw)
	}
	// White space after the value is fine.
	r.must(http.StatusCreated, "POST", "/v1/environments", "{\"name\":\"ok\"}  \n\t")
}

// The app logs route answers errors in the same JSON as every other route.
func TestRESTLogsErrors(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "logs"})
	path := "/v1/environments/" + e.Id + "/apps/web/logs"
	code, o := f.rest(t, f.c.AdminToken).do("GET", path+"?lines=-1", nil)
	wantViolation(t, code, o, "lines", "between")
	code, o = f.rest(t, "").do("GET", path, nil)
	wantError(t, code, o, http.StatusUnauthorized, "UNAUTHENTICATED")
	code, o = f.rest(t, f.token(t, "env:read")).do("GET", path, nil)
	wantError(t, code, o, http.StatusForbidden, "PERMISSION_DENIED")
	code, o = f.rest(t, f.c.AdminToken).do("GET", path, nil)
	wantError(t, code, o, http.StatusNotFound, "NOT_FOUND", "web")
}

// Body and query decoding errors name the field (lowerCamelCase) and the rule.
func TestRESTDecodeViolations(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "base"})
	code, o := r.do("POST", "/v1/environments", `{"name":123}`)
	wantViolation(t, code, o, "name", "must be a string")
	code, o = r.do("POST", "/v1/environments", `{"name":"x","nmae":"y"}`)
	wantViolation(t, code, o, "nmae", "unknown field")
	code, o = r.do("POST", "/v1/environments", `{"name":"x","resource_quota":{"cpu":"lots"}}`)
	wantViolation(t, code, o, "resourceQuota.cpu", "32-bit integer")
	code, o = r.do("POST", "/v1/environments", `{"name":"x","labels":{"a":1}}`)
	wantViolation(t, code, o, "labels.a", "must be a string")
	code, o = r.do("POST", "/v1/environments", `{"name":"x","labels":[]}`)
	wantViolation(t, code, o, "labels", "must be an object")
	code, o = r.do("PATCH", "/v1/environments/"+e.Id, `{"isDefault":"yes"}`)
	wantViolation(t, code, o, "isDefault", "true or false")
	code, o = r.do("GET", "/v1/environments?pageSize=abc", nil)
	wantViolation(t, code, o, "pageSize", "integer")
	code, o = r.do("GET", "/v1/environments?page_size=abc", nil)
	wantViolation(t, code, o, "pageSize", "integer")
	if strings.Contains(o.raw, "page_size") {
		t.Fatalf("snake_case name in %s", o.raw)
	}
	// Connect-style routes too.
	code, o = r.do("POST", "/atoll.v1.EnvironmentService/CreateEnvironment", `{"name":true}`)
	wantViolation(t, code, o, "name", "must be a string")
}

// A body over 1 MiB: 413 RESOURCE_EXHAUSTED.
func TestRESTBodyTooLarge(t *testing.T) {
	f := newAPIFixture(t)
	big := `{"name":"x","description":"` + strings.Repeat("a", 1<<20) + `"}`
	code, o := f.rest(t, f.c.AdminToken).do("POST", "/v1/environments", big)
	wantError(t, code, o, http.StatusRequestEntityTooLarge, "RESOURCE_EXHAUSTED", "larger than")
}
