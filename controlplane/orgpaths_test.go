package controlplane_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Seed 004's org/workspace-scoped paths map onto projects and environments;
// they work through a follower too (the org header is forwarded).
func TestOrgWorkspacePaths(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	f := c.Followers()[0]
	ctx := cptest.Ctx(t, c.AdminToken)
	org, err := atollv1.NewOrganizationServiceClient(cptest.Conn(t, f)).GetOrganization(ctx, &atollv1.GetOrganizationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := atollv1.NewProjectServiceClient(cptest.Conn(t, f)).CreateProject(ctx, &atollv1.CreateProjectRequest{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, "http://"+f.HTTPAddr()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	base := "/v1/orgs/" + org.Id + "/workspaces/" + ws.Id + "/environments"
	code, env := call("POST", base, `{"name":"staging","slug":"staging","description":"d","is_default":true}`)
	if code != 201 || env["projectId"] != ws.Id || env["isDefault"] != true {
		t.Fatalf("create: %d %v", code, env)
	}
	// MechaMental's shapes ride along atoll's.
	inner, _ := env["environment"].(map[string]any)
	if env["message"] != "Environment created successfully" || inner["environment_id"] != env["id"] || inner["workspace_id"] != ws.Id ||
		inner["org_id"] != org.Id || inner["is_default"] != true || inner["created_at"] == nil {
		t.Fatalf("create, MechaMental shape: %v", env)
	}
	// By slug of the org, too.
	code, list := call("GET", "/v1/orgs/"+org.Slug+"/workspaces/"+ws.Id+"/environments", "")
	if code != 200 || list["totalCount"] != float64(1) {
		t.Fatalf("list: %d %v", code, list)
	}
	if items, _ := list["environments"].([]any); list["total"] != float64(1) || list["has_more"] != false || list["next_cursor"] != "" ||
		len(items) != 1 || items[0].(map[string]any)["environment_id"] != env["id"] {
		t.Fatalf("list, MechaMental shape: %v", list)
	}
	code, got := call("GET", base+"/"+env["id"].(string), "")
	if code != 200 || got["name"] != "staging" || got["environment_id"] != env["id"] || got["workspace_id"] != ws.Id {
		t.Fatalf("get: %d %v", code, got)
	}
	// Cursor paging with limit and cursor.
	if code, _ := call("POST", base, `{"name":"second"}`); code != 201 {
		t.Fatalf("create second: %d", code)
	}
	code, p1 := call("GET", base+"?limit=1", "")
	cursor, _ := p1["next_cursor"].(string)
	if code != 200 || p1["has_more"] != true || cursor == "" || p1["total"] != float64(2) {
		t.Fatalf("page 1: %d %v", code, p1)
	}
	code, p2 := call("GET", base+"?limit=1&cursor="+cursor, "")
	if items, _ := p2["environments"].([]any); code != 200 || p2["has_more"] != false || len(items) != 1 || items[0].(map[string]any)["name"] != "second" {
		t.Fatalf("page 2: %d %v", code, p2)
	}
	code, wsGot := call("GET", "/v1/orgs/"+org.Id+"/workspaces/"+ws.Id, "")
	if code != 200 || wsGot["name"] != "shop" {
		t.Fatalf("workspace: %d %v", code, wsGot)
	}
	// Another organization in the path: not found, nothing listed.
	code, e := call("GET", "/v1/orgs/org_aaaaaaaaaaaaaaaaaaaaaaaaaa/workspaces/"+ws.Id+"/environments", "")
	if code != 404 || e["code"] != "NOT_FOUND" {
		t.Fatalf("other org: %d %v", code, e)
	}
	if code, del := call("DELETE", base+"/"+env["id"].(string), ""); code != 200 || del["message"] != "Environment deleted successfully" {
		t.Fatalf("delete: %d %v", code, del)
	}
	// An error keeps atoll's error shape.
	if code, e := call("GET", base+"/env_aaaaaaaaaaaaaaaaaaaaaaaaaa", ""); code != 404 || e["code"] != "NOT_FOUND" {
		t.Fatalf("missing env: %d %v", code, e)
	}
}

// Seed 003's /api/environments path and its limit parameter.
func TestBlueberryListAlias(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	s := c.Servers[0]
	envs := cptest.Envs(t, s)
	ctx := cptest.Ctx(t, c.AdminToken)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := envs.CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+s.HTTPAddr()+"/api/environments?status=running&limit=2", nil)
	req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != 200 || len(m["environments"].([]any)) != 2 || m["totalCount"] != float64(3) || m["nextPageToken"] == "" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}
