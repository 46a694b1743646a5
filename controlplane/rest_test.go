package controlplane_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/atollhq/atoll/controlplane/api"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// restClient calls a server's HTTP endpoint with a bearer token.
type restClient struct {
	t     *testing.T
	base  string
	token string
}

func (f *apiFixture) rest(t *testing.T, token string) *restClient {
	return &restClient{t: t, base: "http://" + f.srv.HTTPAddr(), token: token}
}

// do sends body (nil, a string sent as is, an io.Reader, or a value encoded as
// JSON) and returns the status and the decoded JSON object of the response.
func (r *restClient) do(method, path string, body any) (int, obj) {
	r.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	default:
		js, err := json.Marshal(b)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := obj{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out.m); err != nil {
			r.t.Fatalf("%s %s: %d, body is not a JSON object: %v: %q", method, path, resp.StatusCode, err, raw)
		}
	}
	out.raw = string(raw)
	return resp.StatusCode, out
}

// must is do that fails unless the status is want.
func (r *restClient) must(want int, method, path string, body any) obj {
	r.t.Helper()
	code, o := r.do(method, path, body)
	if code != want {
		r.t.Fatalf("%s %s: got %d, want %d: %s", method, path, code, want, o.raw)
	}
	return o
}

// obj is a decoded JSON object with dotted-path getters.
type obj struct {
	m   map[string]any
	raw string
}

func (o obj) get(path string) any {
	var cur any = o.m
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (o obj) str(path string) string {
	s, _ := o.get(path).(string)
	return s
}

func (o obj) num(path string) float64 {
	switch v := o.get(path).(type) {
	case float64:
		return v
	case string: // protojson renders 64-bit integers as strings
		var f float64
		fmt.Sscan(v, &f)
		return f
	}
	return -1
}

func (o obj) list(path string) []obj {
	xs, _ := o.get(path).([]any)
	out := make([]obj, 0, len(xs))
	for _, x := range xs {
		m, _ := x.(map[string]any)
		out = append(out, obj{m: m})
	}
	return out
}

// wantError checks the REST error body {"code","message","details","status"}.
func wantError(t *testing.T, code int, o obj, wantHTTP int, grpcCode string, subs ...string) {
	t.Helper()
	if code != wantHTTP || o.str("code") != grpcCode || o.num("status") != float64(wantHTTP) || o.get("details") == nil {
		t.Fatalf("want %d %s, got %d: %s", wantHTTP, grpcCode, code, o.raw)
	}
	for _, s := range subs {
		if !strings.Contains(o.raw, s) {
			t.Fatalf("error %s does not mention %q", o.raw, s)
		}
	}
}

func TestRESTEnvironments(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)

	// Create: 201, snake_case input, slug from name, ttl, default project.
	a := r.must(http.StatusCreated, "POST", "/v1/environments", `{"name":"Web App","resource_quota":{"cpu":700},"ttl":"2h","is_default":true}`)
	id := a.str("id")
	if a.str("slug") != "web-app" || a.num("resourceQuota.cpu") != 700 || a.num("resourceQuota.memory") <= 0 || a.str("expiresAt") == "" ||
		a.str("ttl") != "2h" || a.get("isDefault") != true || a.str("status") != "RUNNING" || a.num("version") != 1 || a.str("createdBy") != "admin" {
		t.Fatalf("create: %s", a.raw)
	}
	if a.str("companyIdRef") == "" || a.str("companyIdRef") != a.str("orgId") || a.get("isDeleted") != false || a.get("resourceUsage") == nil {
		t.Fatalf("seed fields missing: %s", a.raw)
	}
	projects := r.must(http.StatusOK, "GET", "/v1/projects", nil)
	var def string
	for _, p := range projects.list("projects") {
		if p.get("isDefault") == true {
			def = p.str("id")
		}
	}
	if def == "" || a.str("projectId") != def {
		t.Fatalf("projectId %q, default project %q", a.str("projectId"), def)
	}
	b := r.must(http.StatusCreated, "POST", "/v1/environments", map[string]any{"name": "web_app", "projectId": def, "resourceQuota": map[string]int{"cpu": 100, "memory": 100, "storage": 100}})
	if b.str("slug") != "web-app-2" {
		t.Fatalf("derived slug %q, want web-app-2", b.str("slug"))
	}

	// Get.
	g := r.must(http.StatusOK, "GET", "/v1/environments/"+id, nil)
	if g.str("name") != "Web App" || g.str("id") != id {
		t.Fatalf("get: %s", g.raw)
	}

	// List: filters, pages, total.
	l := r.must(http.StatusOK, "GET", "/v1/environments?search=WEB&pageSize=1", nil)
	if len(l.list("environments")) != 1 || l.num("totalCount") != 2 || l.str("nextPageToken") == "" {
		t.Fatalf("list page 1: %s", l.raw)
	}
	l2 := r.must(http.StatusOK, "GET", "/v1/environments?search=WEB&pageSize=1&pageToken="+url.QueryEscape(l.str("nextPageToken")), nil)
	if len(l2.list("environments")) != 1 || l2.str("nextPageToken") != "" || l2.list("environments")[0].str("id") == l.list("environments")[0].str("id") {
		t.Fatalf("list page 2: %s", l2.raw)
	}
	l = r.must(http.StatusOK, "GET", "/v1/environments?projectId="+def+"&status=RUNNING&createdAfter="+url.QueryEscape(a.str("createdAt")), nil)
	if envs := l.list("environments"); len(envs) != 1 || envs[0].str("id") != b.str("id") {
		t.Fatalf("list createdAfter: %s", l.raw)
	}
	l = r.must(http.StatusOK, "GET", "/v1/environments?created_before="+url.QueryEscape(b.str("createdAt")), nil)
	if envs := l.list("environments"); len(envs) != 1 || envs[0].str("id") != id {
		t.Fatalf("list created_before: %s", l.raw)
	}
	code, o := r.do("GET", "/v1/environments?pageSize=-3", nil)
	wantError(t, code, o, 400, "INVALID_ARGUMENT", "pageSize")

	// Update: PATCH infers the mask from the body.
	u := r.must(http.StatusOK, "PATCH", "/v1/environments/"+id, `{"resourceQuota":{"cpu":900},"description":"patched"}`)
	if u.num("resourceQuota.cpu") != 900 || u.num("resourceQuota.memory") != a.num("resourceQuota.memory") || u.str("description") != "patched" ||
		u.num("version") != 2 || u.str("name") != "Web App" {
		t.Fatalf("patch: %s", u.raw)
	}
	code, o = r.do("PATCH", "/v1/environments/"+id, `{"resource_quota":{"cpu":-5,"storage":-1}}`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT", "resourceQuota.cpu", "resourceQuota.storage")
	code, o = r.do("PATCH", "/v1/environments/"+id, `{"createdBy":"me"}`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT", "updateMask")

	// Start/stop.
	s := r.must(http.StatusOK, "POST", "/v1/environments/"+id+"/stop", `{}`)
	if s.str("status") != "STOPPED" {
		t.Fatalf("stop: %s", s.raw)
	}
	code, o = r.do("POST", "/v1/environments/"+id+"/stop", `{}`)
	wantError(t, code, o, 409, "FAILED_PRECONDITION", "STOPPED")
	if s = r.must(http.StatusOK, "POST", "/v1/environments/"+id+"/stop", `{"hibernate":true}`); s.str("status") != "HIBERNATING" {
		t.Fatalf("hibernate: %s", s.raw)
	}
	if s = r.must(http.StatusOK, "POST", "/v1/environments/"+id+"/start", `{}`); s.str("status") != "RUNNING" {
		t.Fatalf("start: %s", s.raw)
	}
	code, o = r.do("POST", "/v1/environments/"+id+"/start", `{}`)
	wantError(t, code, o, 409, "FAILED_PRECONDITION", "RUNNING")

	// Resource usage in the Thevenin shape.
	ru := r.must(http.StatusOK, "GET", "/v1/environments/"+id+"/resource-usage", nil)
	for _, k := range []string{"quota", "used", "available", "utilizationPercent"} {
		for _, d := range []string{"cpu", "memory", "storage"} {
			if ru.num(k+"."+d) < 0 {
				t.Fatalf("resource-usage lacks %s.%s: %s", k, d, ru.raw)
			}
		}
	}
	if ru.str("environmentId") != id || ru.num("quota.cpu") != 900 || ru.num("used.cpu") != 0 || ru.num("available.cpu") != 900 || ru.num("utilizationPercent.cpu") != 0 {
		t.Fatalf("resource-usage: %s", ru.raw)
	}

	// Delete (soft), list hides it, get shows it deleted, restore.
	r.must(http.StatusOK, "DELETE", "/v1/environments/"+id, nil)
	if l = r.must(http.StatusOK, "GET", "/v1/environments", nil); l.num("totalCount") != 1 {
		t.Fatalf("deleted env still listed: %s", l.raw)
	}
	if l = r.must(http.StatusOK, "GET", "/v1/environments?includeDeleted=true", nil); l.num("totalCount") != 2 {
		t.Fatalf("includeDeleted: %s", l.raw)
	}
	if g = r.must(http.StatusOK, "GET", "/v1/environments/"+id, nil); g.get("isDeleted") != true {
		t.Fatalf("get deleted: %s", g.raw)
	}
	rs := r.must(http.StatusOK, "POST", "/v1/environments/"+id+"/restore", `{}`)
	if rs.get("isDeleted") != false || rs.num("resourceQuota.cpu") != 900 {
		t.Fatalf("undelete: %s", rs.raw)
	}
	rs = r.must(http.StatusOK, "POST", "/v1/environments/"+id+"/restore", `{"version":1}`)
	if rs.num("resourceQuota.cpu") != 700 || rs.str("description") != "" {
		t.Fatalf("restore version 1: %s", rs.raw)
	}

	// History.
	h := r.must(http.StatusOK, "GET", "/v1/environments/"+id+"/history", nil)
	vs := h.list("versions")
	if h.str("environmentId") != id || len(vs) != int(rs.num("version")) {
		t.Fatalf("history: %s", h.raw)
	}
	for i, v := range vs {
		if v.num("version") != float64(i+1) || v.str("modifiedBy") != "admin" || v.str("modifiedAt") == "" || v.str("action") == "" {
			t.Fatalf("history version %d: %v", i+1, v.m)
		}
		if i > 0 && len(v.get("changedFields").([]any)) == 0 {
			t.Fatalf("history version %d has no changedFields: %v", i+1, v.m)
		}
	}

	// Seed aliases.
	if g = r.must(http.StatusOK, "GET", "/environments/"+id, nil); g.str("id") != id {
		t.Fatalf("/environments/{id}: %s", g.raw)
	}
	if l = r.must(http.StatusOK, "GET", "/environments", nil); l.num("totalCount") != 2 {
		t.Fatalf("/environments: %s", l.raw)
	}
	r.must(http.StatusOK, "GET", "/environments/"+id+"/resource-usage", nil)
	r.must(http.StatusOK, "GET", "/environments/"+id+"/history", nil)
	if g = r.must(http.StatusOK, "GET", "/api/v1/environments/"+id, nil); g.str("id") != id {
		t.Fatalf("/api/v1/environments/{id}: %s", g.raw)
	}
	c := r.must(http.StatusCreated, "POST", "/api/v1/environments", `{"name":"via alias"}`)
	r.must(http.StatusOK, "DELETE", "/environments/"+c.str("id"), nil)
	r.must(http.StatusOK, "POST", "/environments/"+c.str("id")+"/restore", `{}`)

	// Connect-style routes (the Teabar curl examples).
	g = r.must(http.StatusOK, "POST", "/atoll.v1.EnvironmentService/GetEnvironment", `{"environmentId":"`+id+`"}`)
	if g.str("id") != id {
		t.Fatalf("connect GetEnvironment: %s", g.raw)
	}
	l = r.must(http.StatusOK, "POST", "/teabar.v1.EnvironmentService/ListEnvironments", `{"projectId":"`+def+`","status":"RUNNING","pageSize":20}`)
	if l.num("totalCount") != 3 || len(l.list("environments")) != 3 {
		t.Fatalf("connect ListEnvironments: %s", l.raw)
	}
	w := r.must(http.StatusOK, "POST", "/teabar.v1.EnvironmentService/CreateEnvironment", `{"name":"my-workshop","projectId":"`+def+`","variables":{"participant_count":"10","region":"eu-central"},"ttl":"48h"}`)
	if w.str("name") != "my-workshop" || w.str("expiresAt") == "" || w.str("variables.region") != "eu-central" {
		t.Fatalf("connect CreateEnvironment: %s", w.raw)
	}
	if s = r.must(http.StatusOK, "POST", "/teabar.v1.EnvironmentService/StopEnvironment", `{"environmentId":"`+w.str("id")+`","hibernate":false}`); s.str("status") != "STOPPED" {
		t.Fatalf("connect StopEnvironment: %s", s.raw)
	}
	r.must(http.StatusOK, "POST", "/teabar.v1.EnvironmentService/StartEnvironment", `{"environmentId":"`+w.str("id")+`"}`)
	r.must(http.StatusOK, "POST", "/teabar.v1.EnvironmentService/DeleteEnvironment", `{"environmentId":"`+w.str("id")+`","force":true}`)
	code, o = r.do("POST", "/atoll.v1.EnvironmentService/GetEnvironment", `{"environmentId":"env_aaaaaaaaaaaaaaaaaaaaaaaaaa"}`)
	wantError(t, code, o, 404, "NOT_FOUND")
	code, o = r.do("POST", "/atoll.v1.EnvironmentService/GetEnvironment", `{"environment_id":`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT")
	code, o = r.do("POST", "/atoll.v1.EnvironmentService/GetEnvironment", `{"environmentId":"x","bogus":1}`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT", "bogus")
	code, o = r.do("POST", "/atoll.v1.EnvironmentService/NoSuchMethod", `{}`)
	if code != 404 {
		t.Fatalf("unknown connect method: %d %s", code, o.raw)
	}
}

func TestRESTErrors(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	e := r.must(http.StatusCreated, "POST", "/v1/environments", `{"name":"taken"}`)
	id := e.str("id")

	code, o := r.do("POST", "/v1/environments", `{"name":"Taken"}`)
	wantError(t, code, o, 409, "ALREADY_EXISTS", "Taken")

	code, o = r.do("POST", "/v1/environments", `{"name":"bad","resourceQuota":{"cpu":-1,"memory":-2}}`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT")
	var fields []string
	for _, v := range o.list("details.fieldViolations") {
		fields = append(fields, v.str("field"))
		if v.str("description") == "" {
			t.Fatalf("field violation without description: %s", o.raw)
		}
	}
	if !contains(fields, "resourceQuota.cpu") || !contains(fields, "resourceQuota.memory") {
		t.Fatalf("fieldViolations %v: %s", fields, o.raw)
	}

	code, o = r.do("GET", "/v1/environments/not-an-id", nil)
	wantError(t, code, o, 400, "INVALID_ARGUMENT", "environmentId")
	code, o = r.do("GET", "/v1/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	wantError(t, code, o, 404, "NOT_FOUND", "env_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	code, o = r.do("DELETE", "/v1/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	wantError(t, code, o, 404, "NOT_FOUND")

	other := f.rest(t, f.newOrg(t, "other org", nil))
	for _, p := range []string{"/v1/environments/" + id, "/v1/environments/" + id + "/history", "/v1/environments/" + id + "/resource-usage"} {
		code, o = other.do("GET", p, nil)
		wantError(t, code, o, 404, "NOT_FOUND")
	}
	code, o = other.do("DELETE", "/v1/environments/"+id, nil)
	wantError(t, code, o, 404, "NOT_FOUND")
	code, o = other.do("PATCH", "/v1/environments/"+id, `{"description":"mine"}`)
	wantError(t, code, o, 404, "NOT_FOUND")

	code, o = f.rest(t, "").do("GET", "/v1/environments", nil)
	wantError(t, code, o, 401, "UNAUTHENTICATED")
	code, o = f.rest(t, "atl_bogus").do("GET", "/v1/environments", nil)
	wantError(t, code, o, 401, "UNAUTHENTICATED")
	code, o = f.rest(t, f.c.AdminToken+"x").do("GET", "/environments", nil)
	wantError(t, code, o, 401, "UNAUTHENTICATED")

	ro := f.rest(t, f.token(t, "env:read"))
	ro.must(http.StatusOK, "GET", "/v1/environments/"+id, nil)
	code, o = ro.do("POST", "/v1/environments", `{"name":"denied"}`)
	wantError(t, code, o, 403, "PERMISSION_DENIED", "env:write")
	if o.str("details.requiredPermission") != "env:write" {
		t.Fatalf("403 details do not name the permission: %s", o.raw)
	}
	code, o = ro.do("POST", "/atoll.v1.EnvironmentService/DeleteEnvironment", `{"environmentId":"`+id+`"}`)
	wantError(t, code, o, 403, "PERMISSION_DENIED", "env:write")

	small := f.rest(t, f.newOrg(t, "small org", &atollv1.Resources{Cpu: 100000, Memory: 1000, Storage: 100000}))
	small.must(http.StatusCreated, "POST", "/v1/environments", `{"name":"a","resourceQuota":{"cpu":1,"memory":800,"storage":1}}`)
	code, o = small.do("POST", "/v1/environments", `{"name":"b","resourceQuota":{"cpu":1,"memory":800,"storage":1}}`)
	wantError(t, code, o, 422, "RESOURCE_EXHAUSTED", "memory")
	if o.str("details.dimension") != "memory" || o.str("details.available") != "200" || o.str("details.requested") != "800" {
		t.Fatalf("quota details: %s", o.raw)
	}

	// Bodies.
	big := `{"name":"big","description":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`
	code, o = r.do("POST", "/v1/environments", big)
	wantError(t, code, o, 413, "RESOURCE_EXHAUSTED")
	// Without a Content-Length (chunked), the limit still holds.
	code, o = r.do("POST", "/v1/environments", io.MultiReader(strings.NewReader(big)))
	wantError(t, code, o, 413, "RESOURCE_EXHAUSTED")
	code, o = r.do("POST", "/atoll.v1.EnvironmentService/CreateEnvironment", io.MultiReader(strings.NewReader(big)))
	wantError(t, code, o, 413, "RESOURCE_EXHAUSTED")
	code, o = r.do("POST", "/v1/environments", `{"name":"x","colour":"blue"}`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT", "colour")
	code, o = r.do("POST", "/v1/environments", `{"name":"x",`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT")
	code, o = r.do("POST", "/v1/environments", `{"name":12}`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT")
	code, o = r.do("POST", "/v1/environments", `{"name":"x","resourceQuota":{"cpu":"lots"}}`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT")

	// Not UTF-8 once unescaped: 400, not a 500 from marshaling the gRPC request.
	for _, p := range []string{"/v1/environments/%ff", "/v1/environments?search=%ff", "/v1/environments/%ff/watch", "/environments/%c3"} {
		code, o = r.do("GET", p, nil)
		wantError(t, code, o, 400, "INVALID_ARGUMENT", "UTF-8")
	}
	// A long non-ASCII key keeps its field violation.
	code, o = r.do("POST", "/v1/environments", `{"name":"x","labels":{"`+strings.Repeat("a", 39)+`é":"v"}}`)
	wantError(t, code, o, 400, "INVALID_ARGUMENT")
	if fv := o.list("details.fieldViolations"); len(fv) != 1 || !strings.HasPrefix(fv[0].str("field"), "labels.aaa") {
		t.Fatalf("label key violation: %s", o.raw)
	}

	// Nothing above created anything.
	if l := r.must(http.StatusOK, "GET", "/v1/environments?includeDeleted=true", nil); l.num("totalCount") != 1 {
		t.Fatalf("rejected requests created environments: %s", l.raw)
	}
}
