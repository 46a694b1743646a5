package controlplane_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Blueberry's list: limit/offset paging and its lowercase status names.
func TestRESTListOffsetAndStatusAliases(t *testing.T) {
	f := newAPIFixture(t)
	var names []string
	for i := range 5 {
		e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: fmt.Sprintf("bb-%d", i)})
		names = append(names, e.Name)
	}
	r := f.rest(t, f.c.AdminToken)
	o := r.must(http.StatusOK, "GET", "/api/environments?limit=2&offset=2", nil)
	list, _ := o.get("environments").([]any)
	if len(list) != 2 || list[0].(map[string]any)["name"] != names[2] || list[1].(map[string]any)["name"] != names[3] {
		t.Fatalf("limit=2&offset=2: %s", o.raw)
	}
	o = r.must(http.StatusOK, "GET", "/api/environments?limit=2&offset=99", nil)
	if list, _ := o.get("environments").([]any); len(list) != 0 {
		t.Fatalf("offset past the end: %s", o.raw)
	}
	o = r.must(http.StatusOK, "GET", "/api/environments?status=ready", nil)
	if list, _ := o.get("environments").([]any); len(list) != 5 {
		t.Fatalf("status=ready: %s", o.raw)
	}
	code, bad := r.do("GET", "/api/environments?offset=-1", nil)
	wantViolation(t, code, bad, "offset", "must not be negative")
	first := r.must(http.StatusOK, "GET", "/v1/environments?pageSize=2", nil)
	code, bad = r.do("GET", "/v1/environments?offset=1&pageToken="+first.str("nextPageToken"), nil)
	wantViolation(t, code, bad, "offset", "not both")
}

// Blueberry's create (JSON and form, ttl in hours, its repository fields
// kept as labels) and update (ttl_hours) under /api/environments.
func TestRESTBlueberryShapes(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	o := r.must(http.StatusCreated, "POST", "/api/environments", map[string]any{
		"environment_name": "pr-123", "backend_repo": "sample-be-1", "backend_branch": "main", "ttl": 24,
		"provision_database": true,
	})
	if o.str("name") != "pr-123" || o.str("ttl") != "24h" || o.str("expiresAt") == "" ||
		o.str("labels.blueberry/backend_repo") != "sample-be-1" || o.str("labels.blueberry/provision_database") != "true" {
		t.Fatalf("JSON create: %s", o.raw)
	}
	id := o.str("id")
	// The form the web UI posts.
	code, form := r.doForm("POST", "/api/environments", "environment_name=pr-124&backend_repo=sample-be-1&backend_branch=main&ttl=12")
	if code != http.StatusCreated || form.str("name") != "pr-124" || form.str("ttl") != "12h" {
		t.Fatalf("form create: %d %s", code, form.raw)
	}
	// Update the TTL.
	o = r.must(http.StatusOK, "PUT", "/api/environments/"+id, map[string]any{"ttl_hours": 48})
	if o.str("ttl") != "48h" {
		t.Fatalf("PUT ttl_hours: %s", o.raw)
	}
	code, bad := r.do("PUT", "/api/environments/"+id, map[string]any{"ttl_hours": "soon"})
	wantViolation(t, code, bad, "ttl_hours", "number of hours")
	// A component's logs are its app's logs: an unknown one is NOT_FOUND naming the app.
	code, nf := r.do("GET", "/api/environments/"+id+"/logs/backend", nil)
	if code != http.StatusNotFound || nf.str("code") != "NOT_FOUND" {
		t.Fatalf("logs of a missing component: %d %s", code, nf.raw)
	}
}

// Blueberry's TTL maximum (168 h) and error fields: detail, status_code and
// its error codes next to atoll's code/message/details.
func TestRESTBlueberryErrors(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	code, o := r.do("POST", "/api/environments", map[string]any{"environment_name": "pr-1", "ttl": 169})
	wantViolation(t, code, o, "ttl", "at most 168 hours")
	if o.str("error_code") != "ENV_TTL_EXCEEDED" || o.num("status_code") != 400 || !strings.Contains(o.str("detail"), "168") {
		t.Fatalf("ttl 169: %s", o.raw)
	}
	code, o = r.doForm("POST", "/api/environments", "environment_name=pr-1&ttl=500")
	if code != 400 || o.str("error_code") != "ENV_TTL_EXCEEDED" {
		t.Fatalf("form ttl 500: %d %s", code, o.raw)
	}
	env := r.must(http.StatusCreated, "POST", "/api/environments", map[string]any{"environment_name": "pr-1", "ttl": 168})
	code, o = r.do("PUT", "/api/environments/"+env.str("id"), map[string]any{"ttl_hours": 200})
	if code != 400 || o.str("error_code") != "ENV_TTL_EXCEEDED" || !strings.Contains(o.str("detail"), "ttl_hours") {
		t.Fatalf("PUT ttl_hours 200: %d %s", code, o.raw)
	}
	code, o = r.do("POST", "/api/environments", map[string]any{"environment_name": "pr-1"})
	if code != http.StatusConflict || o.str("error_code") != "ENV_NAME_EXISTS" || o.num("status_code") != 409 || o.str("code") != "ALREADY_EXISTS" || o.str("detail") != o.str("message") {
		t.Fatalf("duplicate name: %d %s", code, o.raw)
	}
	code, o = r.do("GET", "/api/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	if code != http.StatusNotFound || o.str("error_code") != "ENV_NOT_FOUND" || o.str("detail") == "" {
		t.Fatalf("unknown environment: %d %s", code, o.raw)
	}
	// atoll's own routes keep atoll's error body.
	code, o = r.do("GET", "/v1/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	if code != http.StatusNotFound || o.get("detail") != nil || o.get("error_code") != nil {
		t.Fatalf("atoll route: %d %s", code, o.raw)
	}
}

// doForm posts an application/x-www-form-urlencoded body.
func (r *restClient) doForm(method, path, form string) (int, obj) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.base+path, strings.NewReader(form))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	o := obj{raw: string(raw)}
	_ = json.Unmarshal(raw, &o.m)
	return resp.StatusCode, o
}

// curl -d without a Content-Type sends JSON labelled as a form; a Blueberry
// create without environment_name says so.
func TestRESTBlueberryCurlDefaults(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	code, o := r.doForm("POST", "/api/environments", `{"environment_name":"pr-9","ttl":24}`)
	if code != http.StatusCreated || o.str("name") != "pr-9" || o.str("ttl") != "24h" {
		t.Fatalf("JSON sent as a form: %d %s", code, o.raw)
	}
	code, o = r.do("POST", "/api/environments", map[string]any{"backend_repo": "x"})
	wantViolation(t, code, o, "environment_name", "is required")
}

// Unknown query parameters are refused, like unknown body fields.
func TestRESTUnknownQueryParameter(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	code, o := r.do("GET", "/v1/environments?stauts=ERROR", nil)
	wantViolation(t, code, o, "stauts", "unknown query parameter")
	r.must(http.StatusOK, "GET", "/api/environments?limit=5&status=ready", nil)
}

// MechaMental's deployments list takes limit (1 to 200); elsewhere limit is
// the page size.
func TestRESTDeploymentsLimit(t *testing.T) {
	f := newAPIFixture(t)
	env := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "deps"})
	rels := atollv1.NewReleaseServiceClient(cptest.Conn(t, f.srv))
	for _, v := range []string{"1.0.0", "1.1.0"} {
		rel, err := rels.CreateRelease(f.ctx, &atollv1.CreateReleaseRequest{ProjectId: env.ProjectId, Release: &atollv1.Release{AppName: "api", Version: v, Source: image(v)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rels.DeployRelease(f.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: env.Id, ReleaseId: rel.Id}); err != nil {
			t.Fatal(err)
		}
	}
	r := f.rest(t, f.c.AdminToken)
	o := r.must(http.StatusOK, "GET", "/v1/environments/"+env.Id+"/deployments?limit=1", nil)
	if list, _ := o.get("deployments").([]any); len(list) != 1 || o.num("totalCount") != 2 {
		t.Fatalf("limit=1: %s", o.raw)
	}
	code, bad := r.do("GET", "/v1/environments/"+env.Id+"/deployments?limit=500", nil)
	wantViolation(t, code, bad, "limit", "between 1 and 200")
	code, bad = r.do("GET", "/v1/environments?limit=abc", nil)
	wantViolation(t, code, bad, "pageSize", "32-bit integer")
}
