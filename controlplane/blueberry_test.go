package controlplane_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Seed 003 (Blueberry IDP): every operation of its environments API, run over
// HTTP as the seed shows it, answers in the seed's shapes.

// waitForEnvironmentReady is the seed's wait_for_environment_ready: GET the
// environment until its status is 'ready' (returned) or 'failed' (an error).
func waitForEnvironmentReady(t *testing.T, r *restClient, id string, timeout time.Duration) obj {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		code, env := r.do("GET", "/api/environments/"+id, nil)
		if code == http.StatusOK {
			switch env.get("status") {
			case "ready":
				return env
			case "failed":
				t.Fatalf("Environment creation failed: %s", env.raw)
			}
		}
		time.Sleep(50 * time.Millisecond) // the seed checks every 30 s
	}
	t.Fatalf("Environment not ready within timeout")
	return obj{}
}

// wantKeys fails unless o has each key with a value of the JSON type named
// ("string", "number", "object", "array", "bool", "null").
func wantKeys(t *testing.T, what string, o obj, keys map[string]string) {
	t.Helper()
	for k, typ := range keys {
		v, present := o.m[k]
		got := "null"
		switch v.(type) {
		case string:
			got = "string"
		case float64:
			got = "number"
		case map[string]any:
			got = "object"
		case []any:
			got = "array"
		case bool:
			got = "bool"
		}
		if !present || got != typ {
			t.Fatalf("%s: %q is %s (present %v), want a %s: %s", what, k, got, present, typ, o.raw)
		}
	}
}

func sub(o obj, path string) obj {
	m, _ := o.get(path).(map[string]any)
	raw, _ := json.Marshal(m)
	return obj{m: m, raw: string(raw)}
}

// The seed's own walk: create (JSON, form, the CI/CD script), wait for
// ready, get, list, update, reconcile, health, delete.
func TestBlueberrySeedOperations(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)

	// Create Environment, JSON for the API.
	o := r.must(http.StatusOK, "POST", "/api/environments", map[string]any{
		"environment_name": "pr-123", "backend_repo": "sample-be-1", "backend_branch": "main", "backend_commit": "abc123",
		"frontend_repo": "sample-fe-1", "frontend_branch": "main", "frontend_commit": "def456", "ttl": 24,
		"provision_database": true, "auto_generate_secrets": true, "use_shared_api_keys": false, "config_set": "default",
	})
	if o.str("status") != "success" {
		t.Fatalf("create: %s", o.raw)
	}
	created := sub(o, "environment")
	wantKeys(t, "create", created, map[string]string{"id": "string", "name": "string", "status": "string", "urls": "object",
		"created_at": "string", "expires_at": "string", "ttl_hours": "number"})
	if created.str("name") != "pr-123" || created.num("ttl_hours") != 24 || (created.str("status") != "creating" && created.str("status") != "ready") {
		t.Fatalf("create: %s", o.raw)
	}
	id := created.str("id")
	c, _ := time.Parse(time.RFC3339Nano, created.str("created_at"))
	e, _ := time.Parse(time.RFC3339Nano, created.str("expires_at"))
	if d := e.Sub(c); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("ttl 24: expires %v after creation: %s", d, o.raw)
	}

	// Form data, for the web UI.
	code, form := r.doForm("POST", "/api/environments", "environment_name=pr-124&backend_repo=sample-be-1&backend_branch=main&backend_commit=abc123&"+
		"frontend_repo=sample-fe-1&frontend_branch=main&frontend_commit=def456&ttl=24&provision_database=true&auto_generate_secrets=true&"+
		"use_shared_api_keys=false&config_set=default")
	if code != http.StatusOK || form.str("status") != "success" || form.str("environment.name") != "pr-124" || form.num("environment.ttl_hours") != 24 {
		t.Fatalf("form create: %d %s", code, form.raw)
	}
	// The CI/CD script: ttl 48.
	ci := r.must(http.StatusOK, "POST", "/api/environments", `{
    "environment_name": "pr-77",
    "backend_repo": "sample-be-1",
    "backend_branch": "feature/x",
    "backend_commit": "0123abcd",
    "ttl": 48
  }`)
	if ci.num("environment.ttl_hours") != 48 {
		t.Fatalf("CI create: %s", ci.raw)
	}
	// Without ttl: Blueberry's default, 24 hours.
	if def := r.must(http.StatusOK, "POST", "/api/environments", map[string]any{"environment_name": "pr-def", "backend_repo": "b", "backend_branch": "main"}); def.num("environment.ttl_hours") != 24 || def.str("environment.expires_at") == "" {
		t.Fatalf("default ttl: %s", def.raw)
	}

	// Monitor Environment Status: an environment without apps is ready at once.
	env := waitForEnvironmentReady(t, r, id, 10*time.Second)

	// Get Environment.
	wantKeys(t, "get", env, map[string]string{"id": "string", "name": "string", "status": "string", "urls": "object", "created_at": "string",
		"updated_at": "string", "expires_at": "string", "ttl_hours": "number", "creator": "object", "repositories": "object", "configuration": "object"})
	wantKeys(t, "get creator", sub(env, "creator"), map[string]string{"email": "string", "name": "string"})
	if env.str("atoll_status") != "RUNNING" || env.str("repositories.backend.repo") != "sample-be-1" || env.str("repositories.backend.branch") != "main" ||
		env.str("repositories.backend.commit") != "abc123" || env.str("repositories.frontend.repo") != "sample-fe-1" ||
		env.str("repositories.frontend.commit") != "def456" || env.str("configuration.config_set") != "default" ||
		env.get("configuration.database_provisioned") != true || env.get("configuration.auto_generated_secrets") != true {
		t.Fatalf("get: %s", env.raw)
	}

	// List Environments, as the seed's curl does.
	l := r.must(http.StatusOK, "GET", "/api/environments?status=ready&limit=10", nil)
	wantKeys(t, "list", l, map[string]string{"environments": "array", "total": "number", "limit": "number", "offset": "number"})
	if l.num("total") != 4 || l.num("limit") != 10 || l.num("offset") != 0 || len(l.list("environments")) != 4 {
		t.Fatalf("list: %s", l.raw)
	}
	item := l.list("environments")[0]
	item.raw = l.raw
	wantKeys(t, "list item", item, map[string]string{"id": "string", "name": "string", "status": "string", "urls": "object",
		"created_at": "string", "expires_at": "string", "creator": "object"})
	if item.str("status") != "ready" || item.str("name") != "pr-123" {
		t.Fatalf("list item: %s", l.raw)
	}
	// The other filters: search, created_after / created_before, paging.
	if s := r.must(http.StatusOK, "GET", "/api/environments?search=PR-12", nil); s.num("total") != 2 {
		t.Fatalf("search: %s", s.raw)
	}
	past, future := isoTime(time.Now().Add(-time.Hour)), isoTime(time.Now().Add(time.Hour))
	if s := r.must(http.StatusOK, "GET", "/api/environments?created_after="+past+"&created_before="+future, nil); s.num("total") != 4 {
		t.Fatalf("created_after/before: %s", s.raw)
	}
	if s := r.must(http.StatusOK, "GET", "/api/environments?created_after="+future, nil); s.num("total") != 0 || len(s.list("environments")) != 0 {
		t.Fatalf("created_after in the future: %s", s.raw)
	}
	if s := r.must(http.StatusOK, "GET", "/api/environments?limit=2&offset=1", nil); s.num("total") != 4 || len(s.list("environments")) != 2 ||
		s.list("environments")[0].str("name") != "pr-124" || s.num("offset") != 1 {
		t.Fatalf("limit/offset: %s", s.raw)
	}
	for _, st := range []string{"creating", "failed", "terminating"} {
		if s := r.must(http.StatusOK, "GET", "/api/environments?status="+st, nil); s.num("total") != 0 {
			t.Fatalf("status=%s: %s", st, s.raw)
		}
	}

	// Update Environment.
	before := env.str("expires_at")
	u := r.must(http.StatusOK, "PUT", "/api/environments/"+id, map[string]any{"ttl_hours": 48, "description": "Extended for additional testing"})
	wantKeys(t, "update", sub(u, "environment"), map[string]string{"id": "string", "expires_at": "string", "ttl_hours": "number"})
	if u.str("status") != "success" || u.str("environment.id") != id || u.num("environment.ttl_hours") != 48 || u.str("environment.expires_at") <= before {
		t.Fatalf("update: %s (expires_at was %s)", u.raw, before)
	}
	if g := r.must(http.StatusOK, "GET", "/api/environments/"+id, nil); g.str("description") != "Extended for additional testing" || g.num("ttl_hours") != 48 {
		t.Fatalf("after update: %s", g.raw)
	}

	// Reconcile Environment Status.
	if rc := r.must(http.StatusOK, "POST", "/api/environments/"+id+"/reconcile-status", nil); rc.str("status") != "success" || rc.str("message") != "Status reconciliation initiated" {
		t.Fatalf("reconcile: %s", rc.raw)
	}
	// Check Environment Health (no public endpoints yet).
	h := r.must(http.StatusOK, "GET", "/api/environments/"+id+"/check-all-urls", nil)
	wantKeys(t, "health", h, map[string]string{"environment_id": "string", "status": "string", "details": "object", "checked_at": "string"})
	if h.str("environment_id") != id {
		t.Fatalf("health: %s", h.raw)
	}
	// Clean Up Failed Environments (none failed).
	if cf := r.must(http.StatusOK, "POST", "/api/environments/cleanup-failed", nil); cf.str("status") != "success" || cf.num("count") != 0 {
		t.Fatalf("cleanup-failed: %s", cf.raw)
	}

	// Delete Environment; then it shows as deleted and leaves the list.
	d := r.must(http.StatusOK, "DELETE", "/api/environments/"+id, nil)
	if d.str("status") != "success" || d.str("message") != "Environment deletion initiated" {
		t.Fatalf("delete: %s", d.raw)
	}
	if g := r.must(http.StatusOK, "GET", "/api/environments/"+id, nil); g.str("status") != "deleted" || g.str("atoll_status") != "STOPPED" {
		t.Fatalf("after delete: %s", g.raw)
	}
	if s := r.must(http.StatusOK, "GET", "/api/environments", nil); s.num("total") != 3 {
		t.Fatalf("list after delete: %s", s.raw)
	}
	if s := r.must(http.StatusOK, "GET", "/api/environments?status=deleted", nil); s.num("total") != 1 || s.list("environments")[0].str("id") != id {
		t.Fatalf("status=deleted: %s", s.raw)
	}
	// Not Found (404), in the seed's shape.
	code, nf := r.do("DELETE", "/api/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	if code != http.StatusNotFound || nf.num("status_code") != 404 || nf.str("detail") == "" || nf.str("error_code") != "ENV_NOT_FOUND" {
		t.Fatalf("delete unknown: %d %s", code, nf.raw)
	}
}

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// An environment with an app is "creating" until its instances run, then
// "ready": the seed's wait loop finishes. Logs of a component are its app's.
func TestBlueberryWaitForReadyWithApp(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	id := r.must(http.StatusOK, "POST", "/api/environments", map[string]any{"environment_name": "pr-5", "backend_repo": "be", "backend_branch": "main"}).str("environment.id")
	r.must(http.StatusCreated, "POST", "/v1/environments/"+id+"/apps", map[string]any{"name": "backend", "source": map[string]any{"image": map[string]any{"name": "example/api", "tag": "1"}}, "resourceRequests": map[string]any{"cpu": "100m", "memory": "64Mi"}})
	g := r.must(http.StatusOK, "GET", "/api/environments/"+id, nil)
	if g.str("status") != "creating" {
		t.Fatalf("with an app and no host: %s", g.raw)
	}
	if l := r.must(http.StatusOK, "GET", "/api/environments?status=creating", nil); l.num("total") != 1 {
		t.Fatalf("status=creating: %s", l.raw)
	}
	if l := r.must(http.StatusOK, "GET", "/api/environments?status=ready", nil); l.num("total") != 0 {
		t.Fatalf("status=ready before the app runs: %s", l.raw)
	}
	f.c.NewFakeAgent(cptest.FakeAgentConfig{Name: "host-1"})
	env := waitForEnvironmentReady(t, r, id, 30*time.Second)
	if env.str("atoll_status") != "RUNNING" {
		t.Fatalf("ready: %s", env.raw)
	}
	// Logs: the seed's shape (the fake host has no log service, so the
	// backlog is empty or the host is unreachable).
	code, lg := r.do("GET", "/api/environments/"+id+"/logs/backend?lines=50&since=1h", nil)
	switch code {
	case http.StatusOK:
		wantKeys(t, "logs", lg, map[string]string{"component": "string", "logs": "array", "total_lines": "number"})
		if lg.str("component") != "backend" || lg.num("total_lines") != float64(len(lg.list("logs"))) {
			t.Fatalf("logs: %s", lg.raw)
		}
	case http.StatusServiceUnavailable:
		if lg.num("status_code") != 503 {
			t.Fatalf("logs: %d %s", code, lg.raw)
		}
	default:
		t.Fatalf("logs: %d %s", code, lg.raw)
	}
}

// Logs of a component without instances: an empty list in the seed's shape.
func TestBlueberryLogsShape(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	id := r.must(http.StatusOK, "POST", "/api/environments", map[string]any{"environment_name": "pr-6"}).str("environment.id")
	r.must(http.StatusCreated, "POST", "/v1/environments/"+id+"/apps", map[string]any{"name": "frontend", "source": map[string]any{"image": map[string]any{"name": "example/web", "tag": "1"}}, "resourceRequests": map[string]any{"cpu": "100m", "memory": "64Mi"}})
	lg := r.must(http.StatusOK, "GET", "/api/environments/"+id+"/logs/frontend", nil)
	if lg.str("component") != "frontend" || lg.num("total_lines") != 0 || lg.get("logs") == nil || len(lg.list("logs")) != 0 {
		t.Fatalf("logs: %s", lg.raw)
	}
	code, o := r.do("GET", "/api/environments/"+id+"/logs/frontend?lines=abc", nil)
	wantViolation(t, code, o, "lines", "between 1 and 1000")
	code, o = r.do("GET", "/api/environments/"+id+"/logs/frontend?lines=5000", nil)
	wantViolation(t, code, o, "lines", "between 1 and 1000")
	code, o = r.do("GET", "/api/environments/"+id+"/logs/frontend?since=yesterday", nil)
	wantViolation(t, code, o, "since", "duration")
	code, o = r.do("GET", "/api/environments/"+id+"/logs/frontend?tail=5", nil)
	wantViolation(t, code, o, "tail", "unknown query parameter")
	// An unknown component: 404 naming it.
	code, o = r.do("GET", "/api/environments/"+id+"/logs/argocd", nil)
	if code != http.StatusNotFound || !strings.Contains(o.str("detail"), "argocd") || o.num("status_code") != 404 {
		t.Fatalf("logs of a missing component: %d %s", code, o.raw)
	}
}

// Bad input names the field as the caller sent it, with Blueberry's error
// fields (detail, status_code, error_code) next to atoll's.
func TestBlueberryBadInput(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	id := r.must(http.StatusOK, "POST", "/api/environments", map[string]any{"environment_name": "pr-1", "ttl": 168}).str("environment.id")

	// List filters.
	for _, c := range []struct{ query, field, desc string }{
		{"status=bogus", "status", "must be one of creating, ready, failed, terminating"},
		{"status=ready&status=failed", "status", "given once"},
		{"limit=abc", "limit", "between 1 and 100"},
		{"limit=0", "limit", "between 1 and 100"},
		{"limit=101", "limit", "between 1 and 100"},
		{"offset=-1", "offset", "at least 0"},
		{"offset=x", "offset", "integer"},
		{"created_after=yesterday", "created_after", "ISO 8601"},
		{"created_before=2024-13-01", "created_before", "ISO 8601"},
		{"created_after=2024-02-01&created_before=2024-01-01", "created_after", "before created_before"},
		{"stauts=ready", "stauts", "unknown query parameter"},
	} {
		code, o := r.do("GET", "/api/environments?"+c.query, nil)
		wantViolation(t, code, o, c.field, c.desc)
		if o.num("status_code") != 400 || o.str("error_code") != "ENV_CONFIG_INVALID" || o.str("detail") != o.str("message") {
			t.Fatalf("%s: %s", c.query, o.raw)
		}
	}
	// atoll's own status names are accepted too.
	if l := r.must(http.StatusOK, "GET", "/api/environments?status=RUNNING", nil); l.num("total") != 1 {
		t.Fatalf("status=RUNNING: %s", l.raw)
	}

	// Create: wrong types and values name Blueberry's fields.
	for _, c := range []struct {
		body        any
		field, desc string
	}{
		{map[string]any{"environment_name": 123}, "environment_name", "must be a string"},
		{map[string]any{"environment_name": ""}, "environment_name", "is required"},
		{map[string]any{"backend_repo": "x"}, "environment_name", "is required"},
		{map[string]any{"environment_name": "x", "ttl": "soon"}, "ttl", "number of hours"},
		{map[string]any{"environment_name": "x", "ttl": 0}, "ttl", "positive"},
		{map[string]any{"environment_name": "x", "ttl": -3}, "ttl", "positive"},
		{map[string]any{"environment_name": "x", "ttl": true}, "ttl", "number of hours"},
		{map[string]any{"environment_name": "x", "backend_repo": 5}, "backend_repo", "must be a string"},
		{map[string]any{"environment_name": "x", "provision_database": "maybe"}, "provision_database", "true or false"},
		{map[string]any{"environment_name": "x", "provision_database": 1}, "provision_database", "true or false"},
		{map[string]any{"environment_name": "x", "colour": "red"}, "colour", "unknown field"},
		{map[string]any{"environment_name": strings.Repeat("n", 300)}, "environment_name", ""},
	} {
		code, o := r.do("POST", "/api/environments", c.body)
		wantViolation(t, code, o, c.field, c.desc)
		if o.num("status_code") != 400 || !strings.Contains(o.str("detail"), c.field) {
			t.Fatalf("create %v: %s", c.body, o.raw)
		}
	}
	code, o := r.do("POST", "/api/environments", map[string]any{"environment_name": "pr-2", "ttl": 169})
	wantViolation(t, code, o, "ttl", "at most 168 hours")
	if o.str("error_code") != "ENV_TTL_EXCEEDED" || o.num("status_code") != 400 || !strings.Contains(o.str("detail"), "168") {
		t.Fatalf("ttl 169: %s", o.raw)
	}
	code, o = r.doForm("POST", "/api/environments", "environment_name=pr-2&ttl=500")
	if code != 400 || o.str("error_code") != "ENV_TTL_EXCEEDED" {
		t.Fatalf("form ttl 500: %d %s", code, o.raw)
	}
	// A taken name: 409 with ENV_NAME_EXISTS.
	code, o = r.do("POST", "/api/environments", map[string]any{"environment_name": "pr-1"})
	if code != http.StatusConflict || o.str("error_code") != "ENV_NAME_EXISTS" || o.num("status_code") != 409 || o.str("code") != "ALREADY_EXISTS" || o.str("detail") != o.str("message") {
		t.Fatalf("duplicate name: %d %s", code, o.raw)
	}

	// Update: every ttl_hours error names ttl_hours.
	for _, c := range []struct {
		v    any
		desc string
	}{{"soon", "number of hours"}, {0, "positive"}, {-1, "positive"}, {true, "number of hours"}, {200, "at most 168"}} {
		code, o := r.do("PUT", "/api/environments/"+id, map[string]any{"ttl_hours": c.v})
		wantViolation(t, code, o, "ttl_hours", c.desc)
		if !strings.Contains(o.str("detail"), "ttl_hours") || strings.Contains(o.raw, `"field":"ttl"`) {
			t.Fatalf("PUT ttl_hours %v: %s", c.v, o.raw)
		}
	}
	if _, o := r.do("PUT", "/api/environments/"+id, map[string]any{"ttl_hours": 200}); o.str("error_code") != "ENV_TTL_EXCEEDED" {
		t.Fatalf("PUT ttl_hours 200: %s", o.raw)
	}
	code, o = r.do("PUT", "/api/environments/"+id, map[string]any{"ttl_hours": 48, "description": 7})
	wantViolation(t, code, o, "description", "must be a string")

	// Unknown environments: 404 ENV_NOT_FOUND; a malformed id: 400 naming it.
	for _, c := range []struct{ method, path string }{
		{"GET", ""}, {"PUT", ""}, {"DELETE", ""}, {"POST", "/reconcile-status"}, {"GET", "/check-all-urls"}, {"GET", "/logs/backend"},
	} {
		var body any
		if c.method == "PUT" {
			body = map[string]any{"ttl_hours": 24}
		}
		code, o := r.do(c.method, "/api/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa"+c.path, body)
		if code != http.StatusNotFound || o.str("error_code") != "ENV_NOT_FOUND" || o.num("status_code") != 404 || o.str("detail") == "" {
			t.Fatalf("%s unknown%s: %d %s", c.method, c.path, code, o.raw)
		}
	}
	code, o = r.do("GET", "/api/environments/not-an-id", nil)
	if code != http.StatusBadRequest || o.num("status_code") != 400 {
		t.Fatalf("malformed id: %d %s", code, o.raw)
	}
	// atoll's own routes keep atoll's error body.
	code, o = r.do("GET", "/v1/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	if code != http.StatusNotFound || o.get("detail") != nil || o.get("error_code") != nil {
		t.Fatalf("atoll route: %d %s", code, o.raw)
	}
}

// Blueberry's list pages with limit/offset (atoll's pageToken works too).
func TestRESTListOffsetAndStatusAliases(t *testing.T) {
	f := newAPIFixture(t)
	var names []string
	for i := range 5 {
		e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: fmt.Sprintf("bb-%d", i)})
		names = append(names, e.Name)
	}
	r := f.rest(t, f.c.AdminToken)
	o := r.must(http.StatusOK, "GET", "/api/environments?limit=2&offset=2", nil)
	list := o.list("environments")
	if len(list) != 2 || list[0].str("name") != names[2] || list[1].str("name") != names[3] || o.num("total") != 5 {
		t.Fatalf("limit=2&offset=2: %s", o.raw)
	}
	o = r.must(http.StatusOK, "GET", "/api/environments?limit=2&offset=99", nil)
	if len(o.list("environments")) != 0 || o.num("total") != 5 {
		t.Fatalf("offset past the end: %s", o.raw)
	}
	o = r.must(http.StatusOK, "GET", "/api/environments?status=ready", nil)
	if len(o.list("environments")) != 5 {
		t.Fatalf("status=ready: %s", o.raw)
	}
	p1 := r.must(http.StatusOK, "GET", "/api/environments?limit=3", nil)
	p2 := r.must(http.StatusOK, "GET", "/api/environments?limit=3&pageToken="+p1.str("nextPageToken"), nil)
	if l := p2.list("environments"); len(l) != 2 || l[0].str("name") != names[3] || p2.str("nextPageToken") != "" {
		t.Fatalf("pageToken: %s", p2.raw)
	}
	code, bad := r.do("GET", "/api/environments?offset=1&page_token="+p1.str("nextPageToken"), nil)
	wantViolation(t, code, bad, "offset", "not both")
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

// curl -d without a Content-Type sends JSON labelled as a form; it is read
// as JSON.
func TestRESTBlueberryCurlDefaults(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	code, o := r.doForm("POST", "/api/environments", `{"environment_name":"pr-9","ttl":24}`)
	if code != http.StatusOK || o.str("environment.name") != "pr-9" || o.num("environment.ttl_hours") != 24 {
		t.Fatalf("JSON sent as a form: %d %s", code, o.raw)
	}
	code, o = r.doForm("PUT", "/api/environments/"+o.str("environment.id"), `{"ttl_hours":12}`)
	if code != http.StatusOK || o.num("environment.ttl_hours") != 12 {
		t.Fatalf("PUT JSON sent as a form: %d %s", code, o.raw)
	}
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
