package controlplane_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// shopBlueprint: 2 variables (region required, version with a default), a
// volume, a variable set and a file using ${region}, and 2 apps, one
// mounting the others by name with image tag ${version}.
func shopBlueprint(name string) map[string]any {
	return map[string]any{
		"name": name, "description": "a web shop",
		"variables": []any{
			map[string]any{"name": "region", "description": "where it runs", "required": true},
			map[string]any{"name": "version", "default": "1.25"},
		},
		"volumes":      []any{map[string]any{"name": "data", "size": "512Mi"}},
		"variableSets": []any{map[string]any{"name": "cfg", "variables": map[string]any{"REGION": map[string]any{"value": "${region}"}, "MODE": map[string]any{"value": "prod"}}}},
		"files":        []any{map[string]any{"name": "conf", "text": "region=${region}\n"}},
		"apps": []any{
			map[string]any{
				"name": "web", "source": map[string]any{"image": map[string]any{"name": "nginx", "tag": "${version}"}},
				"resourceRequests":  map[string]any{"cpu": "200m", "memory": "256Mi"},
				"ports":             []any{map[string]any{"number": 80}},
				"publicEndpoint":    map[string]any{"appPort": 80},
				"volumeMounts":      []any{map[string]any{"volNameRef": "data", "path": "/data"}},
				"variableSetMounts": []any{map[string]any{"varSetNameRef": "cfg"}},
				"fileMounts":        []any{map[string]any{"fileIdRef": "conf", "mountPath": "/etc/shop.conf"}},
			},
			map[string]any{
				"name": "worker", "source": map[string]any{"image": map[string]any{"name": "busybox", "tag": "latest"}},
				"resourceRequests": map[string]any{"cpu": "100m", "memory": "64Mi"}, "replicas": 2,
				"command": "sh -c 'echo ${region}; sleep 1000'",
			},
		},
		"resourceQuota": map[string]any{"cpu": 2000, "memory": 2048, "storage": 4096},
		"defaultTtl":    "24h",
	}
}

// counts is what exists in the state: environments of the org, apps,
// volumes, events.
func counts(t *testing.T, f *apiFixture, orgID string) (envs, apps, vols, events int) {
	t.Helper()
	st, _ := f.srv.State()
	tx := st.Snapshot()
	evs, _, _ := tx.EventsAfter(0)
	return len(tx.Environments(orgID)), len(tx.AllApps()), len(tx.VolumeIDs()), len(evs)
}

func TestBlueprintCreateEnvironment(t *testing.T) {
	f := newAPIFixture(t)
	agent := f.c.NewFakeAgent(cptest.FakeAgentConfig{Name: "host-1"})
	r := f.rest(t, f.c.AdminToken)

	bp := r.must(http.StatusCreated, "POST", "/v1/blueprints", shopBlueprint("shop"))
	bpID := bp.str("id")
	if !strings.HasPrefix(bpID, "bp_") || bp.str("orgId") == "" || bp.str("createdAt") == "" {
		t.Fatalf("blueprint: %s", bp.raw)
	}
	// Get by id and by name, list.
	if g := r.must(http.StatusOK, "GET", "/v1/blueprints/"+bpID, nil); g.str("name") != "shop" {
		t.Fatalf("get by id: %s", g.raw)
	}
	if g := r.must(http.StatusOK, "GET", "/v1/blueprints/shop", nil); g.str("id") != bpID {
		t.Fatalf("get by name: %s", g.raw)
	}
	if l := r.must(http.StatusOK, "GET", "/v1/blueprints", nil); len(l.list("blueprints")) != 1 || l.num("totalCount") != 1 {
		t.Fatalf("list: %s", l.raw)
	}
	// Duplicate name: 409.
	code, o := r.do("POST", "/v1/blueprints", shopBlueprint("shop"))
	wantError(t, code, o, http.StatusConflict, "ALREADY_EXISTS", "shop")

	// A required variable missing: 400 naming it; an unknown one: 400.
	code, o = r.do("POST", "/v1/environments", map[string]any{"name": "e1", "blueprintId": bpID})
	wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", "variables.region", "required")
	code, o = r.do("POST", "/v1/environments", map[string]any{"name": "e1", "blueprintId": bpID, "variables": map[string]string{"region": "eu", "colour": "red"}})
	wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", "variables.colour")
	// An unknown blueprint: 404.
	code, o = r.do("POST", "/v1/environments", map[string]any{"name": "e1", "blueprintId": "nope"})
	wantError(t, code, o, http.StatusNotFound, "NOT_FOUND", "nope")

	// Created from the blueprint (by id): env + objects in one apply.
	env := r.must(http.StatusCreated, "POST", "/v1/environments", map[string]any{"name": "shop eu", "blueprintId": bpID, "variables": map[string]string{"region": "eu-central"}})
	envID := env.str("id")
	if env.str("blueprintId") != bpID || env.str("variables.region") != "eu-central" || env.str("variables.version") != "1.25" ||
		env.str("ttl") != "24h" || env.str("expiresAt") == "" || env.num("resourceQuota.cpu") != 2000 {
		t.Fatalf("env: %s", env.raw)
	}
	if s := env.str("status"); s != "PROVISIONING" && s != "RUNNING" {
		t.Fatalf("status %s: %s", s, env.raw)
	}
	st, _ := f.srv.State()
	tx := st.Snapshot()
	apps := tx.Apps(envID)
	if len(apps) != 2 || len(tx.Volumes(envID)) != 1 || len(tx.VariableSets(envID)) != 1 || len(tx.Files(envID)) != 1 {
		t.Fatalf("objects: %d apps, %d volumes, %d varsets, %d files", len(apps), len(tx.Volumes(envID)), len(tx.VariableSets(envID)), len(tx.Files(envID)))
	}
	for _, a := range apps {
		if a.CreateIndex != tx.Environment(envID).CreateIndex {
			t.Fatalf("app %s created at %d, env at %d: not one apply", a.Name, a.CreateIndex, tx.Environment(envID).CreateIndex)
		}
	}
	web := r.must(http.StatusOK, "GET", "/v1/environments/"+envID+"/apps/web", nil)
	if web.str("source.image.tag") != "1.25" || web.str("publicEndpoint.hostname") != "web-shop-eu.localhost" {
		t.Fatalf("web: %s", web.raw)
	}
	if m := web.list("volumeMounts"); len(m) != 1 || !strings.HasPrefix(m[0].str("volIdRef"), "vol_") || m[0].str("volNameRef") != "data" {
		t.Fatalf("volume mount: %s", web.raw)
	}
	if m := web.list("fileMounts"); len(m) != 1 || !strings.HasPrefix(m[0].str("fileIdRef"), "file_") {
		t.Fatalf("file mount: %s", web.raw)
	}
	worker := r.must(http.StatusOK, "GET", "/v1/environments/"+envID+"/apps/worker", nil)
	if !strings.Contains(worker.raw, "echo eu-central; sleep 1000") {
		t.Fatalf("worker command not substituted: %s", worker.raw)
	}
	vs := r.must(http.StatusOK, "GET", "/v1/environments/"+envID+"/variable-sets/cfg", nil)
	if vs.str("variables.REGION.value") != "eu-central" || vs.str("variables.MODE.value") != "prod" {
		t.Fatalf("varset: %s", vs.raw)
	}
	file := r.must(http.StatusOK, "GET", "/v1/environments/"+envID+"/files/conf", nil)
	if file.num("sizeBytes") != float64(len("region=eu-central\n")) {
		t.Fatalf("file: %s", file.raw)
	}
	ru := r.must(http.StatusOK, "GET", "/v1/environments/"+envID+"/resource-usage", nil)
	// web 200m + worker 2x100m; storage: the 512 MB volume.
	if ru.num("used.cpu") != 400 || ru.num("used.memory") != 384 || ru.num("used.storage") != 512 {
		t.Fatalf("usage: %s", ru.raw)
	}
	// The fake agent runs the 3 instances; the environment becomes RUNNING.
	agent.WaitInstances(20*time.Second, 3)
	f.c.WaitState(20*time.Second, "environment running", func(tx *state.Txn) bool {
		e := tx.Environment(envID)
		return e != nil && e.Status == atollv1.EnvironmentStatus_RUNNING
	})
	if web = r.must(http.StatusOK, "GET", "/v1/environments/"+envID+"/apps/web", nil); web.str("status.state") != "RUNNING" {
		t.Fatalf("web: %s", web.raw)
	}

	// Deleting the blueprint leaves the environment and its apps.
	r.must(http.StatusOK, "DELETE", "/v1/blueprints/shop", nil)
	code, o = r.do("GET", "/v1/blueprints/"+bpID, nil)
	wantError(t, code, o, http.StatusNotFound, "NOT_FOUND")
	if g := r.must(http.StatusOK, "GET", "/v1/environments/"+envID, nil); g.str("status") != "RUNNING" || g.str("blueprintId") != bpID {
		t.Fatalf("env after blueprint delete: %s", g.raw)
	}
	if l := r.must(http.StatusOK, "GET", "/v1/environments/"+envID+"/apps", nil); len(l.list("apps")) != 2 {
		t.Fatalf("apps after blueprint delete: %s", l.raw)
	}
}

func TestBlueprintQuotaAllOrNothing(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	r.must(http.StatusCreated, "POST", "/v1/blueprints", shopBlueprint("shop"))
	org := r.must(http.StatusOK, "GET", "/v1/projects", nil).list("projects")[0].str("orgId")
	envs0, apps0, vols0, ev0 := counts(t, f, org)

	// 400m of CPU asked, 300m given: nothing is created.
	code, o := r.do("POST", "/v1/environments", map[string]any{"name": "small", "blueprintId": "shop",
		"variables": map[string]string{"region": "eu"}, "resourceQuota": map[string]int{"cpu": 300}})
	wantError(t, code, o, http.StatusUnprocessableEntity, "RESOURCE_EXHAUSTED", "cpu")
	envs1, apps1, vols1, ev1 := counts(t, f, org)
	if envs1 != envs0 || apps1 != apps0 || vols1 != vols0 || ev1 != ev0 {
		t.Fatalf("a refused environment left traces: envs %d->%d apps %d->%d volumes %d->%d events %d->%d", envs0, envs1, apps0, apps1, vols0, vols1, ev0, ev1)
	}
	if l := r.must(http.StatusOK, "GET", "/v1/environments?search=small", nil); len(l.list("environments")) != 0 {
		t.Fatalf("listed: %s", l.raw)
	}
	// Storage too: the volume is 512 MB.
	code, o = r.do("POST", "/v1/environments", map[string]any{"name": "small", "blueprintId": "shop",
		"variables": map[string]string{"region": "eu"}, "resourceQuota": map[string]int{"storage": 100}})
	wantError(t, code, o, http.StatusUnprocessableEntity, "RESOURCE_EXHAUSTED", "storage")
	if e2, a2, v2, _ := counts(t, f, org); e2 != envs0 || a2 != apps0 || v2 != vols0 {
		t.Fatal("a refused environment left traces")
	}
	// Two environments whose derived slugs collide: the second gets -2 and
	// its apps' hostnames follow.
	r.must(http.StatusCreated, "POST", "/v1/environments", map[string]any{"name": "shop eu", "blueprintId": "shop", "variables": map[string]string{"region": "eu"}})
	e2 := r.must(http.StatusCreated, "POST", "/v1/environments", map[string]any{"name": "shop_eu", "blueprintId": "shop", "variables": map[string]string{"region": "eu"}})
	if e2.str("slug") != "shop-eu-2" {
		t.Fatalf("slug: %s", e2.raw)
	}
	web := r.must(http.StatusOK, "GET", "/v1/environments/"+e2.str("id")+"/apps/web", nil)
	if web.str("publicEndpoint.hostname") != "web-shop-eu-2.localhost" || !strings.Contains(web.str("publicEndpoint.url"), "//web-shop-eu-2.localhost") ||
		web.list("ports")[0].str("hostname") != "web-shop-eu-2.localhost" {
		t.Fatalf("hostnames: %s", web.raw)
	}
	// A variable that makes an app invalid: 400 naming the field, nothing created.
	code, o = r.do("POST", "/v1/environments", map[string]any{"name": "bad", "blueprintId": "shop",
		"variables": map[string]string{"region": "eu", "version": "bad tag!"}})
	wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", "blueprint.apps[0].source.image.tag")
}

func TestBlueprintValidation(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.c.AdminToken)
	bad := shopBlueprint("bad")
	bad["files"] = []any{map[string]any{"name": "conf", "text": "zone=${zone}"}}
	code, o := r.do("POST", "/v1/blueprints", bad)
	wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", `"field":"files[0].text`, "${zone}")

	bad = shopBlueprint("bad")
	bad["variables"] = []any{map[string]any{"name": "1x"}, map[string]any{"name": "region"}, map[string]any{"name": "region"}, map[string]any{"name": "version"}}
	code, o = r.do("POST", "/v1/blueprints", bad)
	wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", `"field":"variables[0].name`, `"field":"variables[2].name`)

	// Templates are validated: an invalid image name, a mount of nothing.
	bad = shopBlueprint("bad")
	apps := bad["apps"].([]any)
	apps[1].(map[string]any)["source"] = map[string]any{"image": map[string]any{"name": "Bad Image", "tag": "x"}}
	apps[0].(map[string]any)["volumeMounts"] = []any{map[string]any{"volNameRef": "nope", "path": "/data"}}
	code, o = r.do("POST", "/v1/blueprints", bad)
	wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", `"field":"apps[1].source.image.name`, `"field":"apps[0].volumeMounts[0]`)

	// A field filled from a variable without a default is checked once known.
	ok := shopBlueprint("lazy")
	ok["variables"] = []any{map[string]any{"name": "region", "required": true}, map[string]any{"name": "version"}, map[string]any{"name": "mem"}}
	apps = ok["apps"].([]any)
	apps[1].(map[string]any)["resourceRequests"] = map[string]any{"cpu": "100m", "memory": "${mem}"}
	r.must(http.StatusCreated, "POST", "/v1/blueprints", ok)
	code, o = r.do("POST", "/v1/environments", map[string]any{"name": "lazy", "blueprintId": "lazy", "variables": map[string]string{"region": "eu", "version": "2", "mem": "lots"}})
	wantError(t, code, o, http.StatusBadRequest, "INVALID_ARGUMENT", "blueprint.apps[1].resourceRequests.memory")

	// Another organization's blueprint is NOT_FOUND, by id and by name.
	bp := r.must(http.StatusOK, "GET", "/v1/blueprints/lazy", nil)
	other := f.rest(t, f.newOrg(t, "other", nil))
	code, o = other.do("GET", "/v1/blueprints/"+bp.str("id"), nil)
	wantError(t, code, o, http.StatusNotFound, "NOT_FOUND")
	code, o = other.do("POST", "/v1/environments", map[string]any{"name": "x", "blueprintId": "lazy", "variables": map[string]string{"region": "eu"}})
	wantError(t, code, o, http.StatusNotFound, "NOT_FOUND")
	if l := other.must(http.StatusOK, "GET", "/v1/blueprints", nil); len(l.list("blueprints")) != 0 {
		t.Fatalf("other org lists: %s", l.raw)
	}
	code, o = other.do("DELETE", "/v1/blueprints/"+bp.str("id"), nil)
	wantError(t, code, o, http.StatusNotFound, "NOT_FOUND")
}

// TestBlueprintTeabarCreateEnvironment is seed 001's call, Connect-style,
// with the blueprint given by name.
func TestBlueprintTeabarCreateEnvironment(t *testing.T) {
	f := newAPIFixture(t)
	f.c.NewFakeAgent(cptest.FakeAgentConfig{Name: "host-1"})
	r := f.rest(t, f.c.AdminToken)
	r.must(http.StatusCreated, "POST", "/v1/blueprints", map[string]any{
		"name": "gitlab-cicd",
		"variables": []any{
			map[string]any{"name": "participant_count", "required": true},
			map[string]any{"name": "region", "default": "eu-west"},
		},
		"apps": []any{map[string]any{
			"name": "gitlab", "source": map[string]any{"image": map[string]any{"name": "gitlab/gitlab-ce", "tag": "latest"}},
			"resourceRequests": map[string]any{"cpu": "100m", "memory": "128Mi"},
			"labels":           map[string]any{"participants": "${participant_count}", "region": "${region}"},
		}},
	})
	projectID := r.must(http.StatusOK, "GET", "/v1/projects", nil).list("projects")[0].str("id")
	for _, ref := range []string{"gitlab-cicd", "bp_gitlab-cicd"} {
		name := "my-workshop-" + strings.TrimPrefix(ref, "bp_")[:3] + map[bool]string{true: "b", false: "n"}[strings.HasPrefix(ref, "bp_")]
		env := r.must(http.StatusOK, "POST", "/atoll.v1.EnvironmentService/CreateEnvironment", map[string]any{
			"name": name, "blueprintId": ref, "projectId": projectID,
			"variables": map[string]string{"participant_count": "10", "region": "eu-central"}, "ttl": "48h",
		})
		if s := env.str("status"); (s != "PROVISIONING" && s != "RUNNING") || !strings.HasPrefix(env.str("blueprintId"), "bp_") ||
			env.str("expiresAt") == "" || env.str("ttl") != "48h" || env.str("projectId") != projectID {
			t.Fatalf("%s: %s", ref, env.raw)
		}
		app := r.must(http.StatusOK, "GET", "/v1/environments/"+env.str("id")+"/apps/gitlab", nil)
		if app.str("labels.participants") != "10" || app.str("labels.region") != "eu-central" {
			t.Fatalf("app: %s", app.raw)
		}
		envID := env.str("id")
		f.c.WaitState(20*time.Second, "environment running", func(tx *state.Txn) bool {
			e := tx.Environment(envID)
			return e != nil && e.Status == atollv1.EnvironmentStatus_RUNNING
		})
	}
	// gRPC too, and the blueprint through its service.
	conn := cptest.Conn(t, f.srv)
	bps, err := atollv1.NewBlueprintServiceClient(conn).GetBlueprint(f.ctx, &atollv1.GetBlueprintRequest{BlueprintId: "gitlab-cicd"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "grpc", BlueprintId: bps.Id})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "participant_count") {
		t.Fatalf("missing variable: %v", err)
	}
	e, err := f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "grpc", BlueprintId: bps.Id, Variables: map[string]string{"participant_count": "3"}})
	if err != nil || e.BlueprintId != bps.Id || e.Variables["region"] != "eu-west" {
		t.Fatalf("grpc: %v %v", e, err)
	}
}
