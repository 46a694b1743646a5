package integration_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// setupEnv creates an environment with a variable set, a file and a volume.
func setupEnv(h *host, name string) string {
	t := h.t
	var env jsonObj
	if code := h.rest("POST", "/v1/environments", h.token, jsonObj{"name": name,
		"resourceQuota": jsonObj{"cpu": 2000, "memory": 2048, "storage": 10240}}, &env); code != 201 {
		t.Fatalf("create env: %d %v", code, env)
	}
	id := env["id"].(string)
	if code := h.rest("POST", "/v1/environments/"+id+"/variable-sets", h.token, jsonObj{"name": "app-config",
		"variables": jsonObj{"GREETING": jsonObj{"value": "hello world"}, "API_KEY": jsonObj{"value": "s3cret", "secret": true}}}, nil); code != 201 {
		t.Fatalf("create variable set: %d", code)
	}
	if code := h.rest("POST", "/v1/environments/"+id+"/files", h.token, jsonObj{"name": "app.conf", "text": "listen 8080\n"}, nil); code != 201 {
		t.Fatalf("create file: %d", code)
	}
	if code := h.rest("POST", "/v1/environments/"+id+"/volumes", h.token, jsonObj{"name": "data", "size": "1Gi"}, nil); code != 201 {
		t.Fatalf("create volume: %d", code)
	}
	return id
}

// seedApp is seed 002's example body, with the test image and the mounts.
func seedApp(image, name string) jsonObj {
	repo, tag, _ := strings.Cut(image, ":")
	return jsonObj{
		"name":              name,
		"source":            jsonObj{"image": jsonObj{"name": repo, "tag": tag}},
		"resourceRequests":  jsonObj{"cpu": "100m", "memory": "128Mi", "filesystemStorage": "1Gi"},
		"ports":             []jsonObj{{"name": "http", "number": 8080, "protocol": "TCP"}},
		"publicEndpoint":    jsonObj{"externalPort": 443, "appPort": 8080},
		"volumeMounts":      []jsonObj{{"volNameRef": "data", "path": "/data"}},
		"variableSetMounts": []jsonObj{{"varSetNameRef": "app-config"}},
		"fileMounts":        []jsonObj{{"fileNameRef": "app.conf", "mountPath": "/etc/app.conf", "fileOwner": "1000:1000"}},
		"isActive":          true,
	}
}

func (h *host) appState(envID, app string) jsonObj {
	var a jsonObj
	h.rest("GET", "/v1/environments/"+envID+"/apps/"+app, h.token, nil, &a)
	return a
}

func (h *host) waitRunning(envID, app string, replicas int) jsonObj {
	var a jsonObj
	waitFor(h.t, 60*time.Second, app+" RUNNING", func() bool {
		a = h.appState(envID, app)
		return get(a, "status", "state") == "RUNNING" && int(get(a, "status", "running").(float64)) == replicas
	})
	return a
}

func TestSingleHostAppLifecycle(t *testing.T) {
	h := newHost(t)
	envID := setupEnv(h, "demo")

	// Create the app with the seed's body: 201, hostnames on ports and endpoint.
	var app jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, seedApp(h.image, "web"), &app); code != 201 {
		t.Fatalf("create app: %d %v", code, app)
	}
	host := "web-demo.localhost"
	if get(app, "publicEndpoint", "hostname") != host || get(app, "ports").([]any)[0].(map[string]any)["hostname"] != host {
		t.Fatalf("hostnames: %v", app)
	}
	for _, f := range []string{"id", "companyIdRef", "envIdRef", "version", "createdBy", "createdAt"} {
		if app[f] == nil || app[f] == "" {
			t.Errorf("response lacks %s: %v", f, app)
		}
	}
	appID := app["id"].(string)
	a := h.waitRunning(envID, "web", 1)
	inst := get(a, "status", "instances").([]any)[0].(map[string]any)

	// docker inspect: limits and hardening.
	cs := h.containers("atoll.app", appID)
	if len(cs) != 1 {
		t.Fatalf("want 1 container, got %d", len(cs))
	}
	ci, err := h.docker.ContainerInspect(context.Background(), cs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	hc := ci.HostConfig
	if hc.NanoCPUs != 100_000_000 || hc.Memory != 128<<20 || hc.PidsLimit == nil || *hc.PidsLimit <= 0 || hc.Privileged {
		t.Errorf("limits: nanocpus %d memory %d pids %v privileged %v", hc.NanoCPUs, hc.Memory, hc.PidsLimit, hc.Privileged)
	}
	if !slices.ContainsFunc(hc.CapDrop, func(c string) bool { return strings.EqualFold(c, "ALL") || strings.EqualFold(c, "CAP_ALL") }) {
		t.Errorf("CapDrop = %v, want ALL", hc.CapDrop)
	}
	if !slices.ContainsFunc(hc.SecurityOpt, func(s string) bool { return strings.HasPrefix(s, "no-new-privileges") }) {
		t.Errorf("SecurityOpt = %v, want no-new-privileges", hc.SecurityOpt)
	}
	if ci.ID != inst["containerId"] && !strings.HasPrefix(ci.ID, fmt.Sprint(inst["containerId"])) {
		t.Errorf("instance reports container %v, docker has %s", inst["containerId"], ci.ID)
	}

	// The public hostname answers through the router; env vars, file, owner.
	var body string
	waitFor(t, 20*time.Second, "router answers", func() bool {
		code, b := h.viaRouter(host, "/env?k=GREETING")
		body = b
		return code == 200
	})
	if body != "hello world" {
		t.Errorf("GREETING = %q", body)
	}
	if code, b := h.viaRouter(host, "/env?k=API_KEY"); code != 200 || b != "s3cret" {
		t.Errorf("secret variable in container: %d %q", code, b)
	}
	if _, b := h.viaRouter(host, "/file?path=/etc/app.conf"); b != "listen 8080\n" {
		t.Errorf("file content %q", b)
	}
	if _, b := h.viaRouter(host, "/stat?path=/etc/app.conf"); !strings.Contains(b, `"uid":1000`) || !strings.Contains(b, `"gid":1000`) {
		t.Errorf("file owner: %s", b)
	}
	// Seed 003: check-all-urls probes the public endpoints.
	var health jsonObj
	if code := h.rest("GET", "/v1/environments/"+envID+"/check-all-urls", h.token, nil, &health); code != 200 ||
		health["status"] != "healthy" || get(health, "details", "web", "status") != "healthy" {
		t.Errorf("check-all-urls: %d %v", code, health)
	}
	// Extend the TTL, reconcile the status.
	var ext jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/extend", h.token, jsonObj{"by": "24h"}, &ext); code != 200 || ext["expiresAt"] == nil {
		t.Errorf("extend: %d %v", code, ext)
	}
	var rec jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/reconcile-status", h.token, jsonObj{}, &rec); code != 200 || rec["status"] != "RUNNING" {
		t.Errorf("reconcile-status: %d %v", code, rec)
	}
	// Secrets are masked in API responses.
	var vs jsonObj
	h.rest("GET", "/v1/environments/"+envID+"/variable-sets/app-config", h.token, nil, &vs)
	if get(vs, "variables", "API_KEY", "value") != "********" || get(vs, "variables", "GREETING", "value") != "hello world" {
		t.Errorf("variable set response: %v", vs)
	}

	// The secret is sealed in the replicated state (raft log, snapshots).
	st, _ := h.server.State()
	for _, v := range st.Snapshot().VariableSets(envID) {
		if got := v.Variables["API_KEY"].GetValue(); !strings.HasPrefix(got, "enc:v1:") || strings.Contains(got, "s3cret") {
			t.Errorf("secret stored as %q", got)
		}
	}

	// Volume data survives a container restart (RestartApp replaces the container).
	if code, b := h.viaRouter(host, "/volume/write?path=/data/x&data="+url.QueryEscape("kept")); code != 200 {
		t.Fatalf("volume write: %d %s", code, b)
	}
	var restarted jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps/web/restart", h.token, jsonObj{}, &restarted); code != 200 {
		t.Fatalf("restart: %d %v", code, restarted)
	}
	waitFor(t, 60*time.Second, "restarted instance serves the old volume data", func() bool {
		a := h.appState(envID, "web")
		insts, _ := get(a, "status", "instances").([]any)
		if len(insts) != 1 || insts[0].(map[string]any)["id"] == inst["id"] {
			return false
		}
		code, b := h.viaRouter(host, "/volume/read?path=/data/x")
		return code == 200 && b == "kept"
	})

	// The replaced container is stopped and removed.
	waitFor(t, 30*time.Second, "restart leaves one container", func() bool {
		return len(h.containers("atoll.app", appID)) == 1
	})

	// Logs through the API contain the requests the app served.
	var logs string
	waitFor(t, 20*time.Second, "logs via API", func() bool {
		conn := cptest.Conn(t, h.server)
		stream, err := atollv1.NewAppServiceClient(conn).GetAppLogs(cptest.Ctx(t, h.token), &atollv1.GetAppLogsRequest{EnvId: envID, AppId: "web", Lines: 100})
		if err != nil {
			return false
		}
		var sb strings.Builder
		for {
			l, err := stream.Recv()
			if err != nil {
				break
			}
			sb.WriteString(l.Message + "\n")
		}
		logs = sb.String()
		return strings.Contains(logs, "/volume/read")
	})

	// Usage shows up in resource-usage and GetEnvironment within 10 s.
	waitFor(t, 10*time.Second, "measured usage", func() bool {
		var u, e jsonObj
		h.rest("GET", "/v1/environments/"+envID+"/resource-usage", h.token, nil, &u)
		h.rest("GET", "/v1/environments/"+envID, h.token, nil, &e)
		mem, _ := get(u, "measured", "memory").(float64)
		gb, _ := get(e, "metrics", "memoryUsageGb").(float64)
		used, _ := get(u, "used", "cpu").(float64)
		return mem > 0 && gb > 0 && used == 100
	})

	// Kill the agent and start it again: the container is adopted, not duplicated.
	before := h.containers("atoll.app", appID)
	h.stopAgent()
	h.startAgent()
	waitFor(t, 30*time.Second, "agent back and app running", func() bool {
		a := h.appState(envID, "web")
		code, _ := h.viaRouter(host, "/healthz")
		return get(a, "status", "state") == "RUNNING" && code == 200
	})
	after := h.containers("atoll.app", appID)
	if len(after) != 1 || len(before) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("adoption: before %s, after %s", describeContainers(before), describeContainers(after))
	}

	// Quota exceeded: clear error, nothing started.
	big := seedApp(h.image, "big")
	big["resourceRequests"] = jsonObj{"cpu": "4000m", "memory": "128Mi"}
	delete(big, "volumeMounts")
	var qerr jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, big, &qerr); code != 422 || qerr["code"] != "RESOURCE_EXHAUSTED" || !strings.Contains(fmt.Sprint(qerr["message"]), "cpu") {
		t.Fatalf("quota exceeded: %d %v", code, qerr)
	}
	if n := len(h.containers("atoll.app", "")); n != 0 {
		// label filter with empty value matches nothing; list all of this test instead
		_ = n
	}
	if cs := h.containers(); len(cs) != 1 {
		t.Fatalf("after refused app: %d containers, want 1", len(cs))
	}

	// Delete the app: its containers are gone.
	if code := h.rest("DELETE", "/v1/environments/"+envID+"/apps/web", h.token, nil, nil); code != 200 {
		t.Fatalf("delete app: %d", code)
	}
	waitFor(t, 30*time.Second, "containers removed", func() bool { return len(h.containers("atoll.app", appID)) == 0 })

	// Delete the volume: its Docker volume (the data) goes too.
	var vol jsonObj
	h.rest("GET", "/v1/environments/"+envID+"/volumes/data", h.token, nil, &vol)
	if n := len(h.volumes("atoll.volume", vol["id"].(string))); n != 1 {
		t.Fatalf("docker volumes of %s before delete: %d, want 1", vol["id"], n)
	}
	if code := h.rest("DELETE", "/v1/environments/"+envID+"/volumes/data", h.token, nil, nil); code != 200 {
		t.Fatalf("delete volume: %d", code)
	}
	waitFor(t, 30*time.Second, "docker volume removed", func() bool { return len(h.volumes("atoll.volume", vol["id"].(string))) == 0 })
}

func TestEnvironmentStopHibernateStart(t *testing.T) {
	h := newHost(t)
	envID := setupEnv(h, "sleepy")
	var app jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, seedApp(h.image, "web"), &app); code != 201 {
		t.Fatalf("create app: %d %v", code, app)
	}
	appID := app["id"].(string)
	h.waitRunning(envID, "web", 1)
	host := "web-sleepy.localhost"
	waitFor(t, 20*time.Second, "router", func() bool { c, _ := h.viaRouter(host, "/healthz"); return c == 200 })
	if c, _ := h.viaRouter(host, "/volume/write?path=/data/before&data=zzz"); c != 200 {
		t.Fatal("volume write failed")
	}
	envStatus := func() string {
		var e jsonObj
		h.rest("GET", "/v1/environments/"+envID, h.token, nil, &e)
		return fmt.Sprint(e["status"])
	}
	running := func() int {
		n := 0
		for _, c := range h.containers("atoll.app", appID) {
			if c.State == "running" {
				n++
			}
		}
		return n
	}
	// Stop: containers stop, allocations kept.
	if code := h.rest("POST", "/v1/environments/"+envID+"/stop", h.token, jsonObj{}, nil); code != 200 {
		t.Fatalf("stop: %d", code)
	}
	waitFor(t, 30*time.Second, "STOPPED with containers stopped", func() bool {
		return envStatus() == "STOPPED" && running() == 0 && len(h.containers("atoll.app", appID)) == 1
	})
	var u jsonObj
	h.rest("GET", "/v1/environments/"+envID+"/resource-usage", h.token, nil, &u)
	if get(u, "used", "cpu") != float64(100) {
		t.Errorf("stopped env keeps its allocation: %v", u)
	}
	// Stopping again is refused, naming the state.
	var perr jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/stop", h.token, jsonObj{}, &perr); code != 409 || !strings.Contains(fmt.Sprint(perr["message"]), "STOPPED") {
		t.Errorf("second stop: %d %v", code, perr)
	}
	// Start: back to RUNNING.
	if code := h.rest("POST", "/v1/environments/"+envID+"/start", h.token, jsonObj{}, nil); code != 200 {
		t.Fatalf("start: %d", code)
	}
	waitFor(t, 60*time.Second, "RUNNING again", func() bool { return envStatus() == "RUNNING" && running() == 1 })
	// Hibernate: containers removed, allocations released, data kept.
	if code := h.rest("POST", "/v1/environments/"+envID+"/stop", h.token, jsonObj{"hibernate": true}, nil); code != 200 {
		t.Fatalf("hibernate: %d", code)
	}
	waitFor(t, 30*time.Second, "HIBERNATING, containers gone", func() bool {
		return envStatus() == "HIBERNATING" && len(h.containers("atoll.app", appID)) == 0
	})
	if code := h.rest("POST", "/v1/environments/"+envID+"/start", h.token, jsonObj{}, nil); code != 200 {
		t.Fatalf("start after hibernate: %d", code)
	}
	waitFor(t, 60*time.Second, "RUNNING with volume data intact", func() bool {
		if envStatus() != "RUNNING" {
			return false
		}
		c, b := h.viaRouter(host, "/volume/read?path=/data/before")
		return c == 200 && b == "zzz"
	})
}

func TestMissingImageIsAClearError(t *testing.T) {
	h := newHost(t)
	envID := setupEnv(h, "broken")
	body := seedApp("atoll-no-such-image:v9", "ghost")
	delete(body, "volumeMounts")
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, body, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	waitFor(t, 30*time.Second, "instance ERROR naming the image", func() bool {
		a := h.appState(envID, "ghost")
		insts, _ := get(a, "status", "instances").([]any)
		if len(insts) == 0 {
			return false
		}
		in := insts[0].(map[string]any)
		return in["state"] == "INSTANCE_ERROR" && strings.Contains(fmt.Sprint(in["lastError"]), "atoll-no-such-image:v9")
	})
	if a := h.appState(envID, "ghost"); strings.Count(fmt.Sprint(get(a, "status", "message")), "atoll-no-such-image:v9") != 1 {
		t.Errorf("the missing image is named more than once: %v", get(a, "status", "message"))
	}
	waitFor(t, 10*time.Second, "environment ERROR naming the app", func() bool {
		var e jsonObj
		h.rest("GET", "/v1/environments/"+envID, h.token, nil, &e)
		return e["status"] == "ERROR" && strings.Contains(fmt.Sprint(e["statusMessage"]), "ghost")
	})
	// Seed 003: cleanup-failed deletes environments in ERROR.
	var cl jsonObj
	if code := h.rest("POST", "/v1/environments/cleanup-failed", h.token, jsonObj{}, &cl); code != 200 || fmt.Sprint(cl["deleted"]) != "["+envID+"]" {
		t.Fatalf("cleanup-failed: %d %v", code, cl)
	}
	var gone jsonObj
	h.rest("GET", "/v1/environments/"+envID, h.token, nil, &gone)
	if gone["isDeleted"] != true {
		t.Errorf("after cleanup: %v", gone)
	}
}

func TestAppSeedErrors(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	h := &host{t: t, cluster: c, server: c.Servers[0], token: c.AdminToken}
	envID := setupEnv(h, "errs")
	body := seedApp("nginx:latest", "nginx-demo")
	delete(body, "volumeMounts")
	// 400 with details.
	var e400 jsonObj
	noName := seedApp("nginx:latest", "")
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, noName, &e400); code != 400 || !strings.Contains(fmt.Sprint(get(e400, "details", "fieldViolations")), "name") {
		t.Errorf("400: %d %v", code, e400)
	}
	// 401.
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", "", body, nil); code != 401 {
		t.Errorf("401: got %d", code)
	}
	// 403: a token without app:write.
	var tok jsonObj
	h.rest("POST", "/v1/tokens", h.token, jsonObj{"name": "reader", "scopes": []string{"app:read", "env:read"}}, &tok)
	var e403 jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", tok["secret"].(string), body, &e403); code != 403 || !strings.Contains(fmt.Sprint(e403), "app:write") {
		t.Errorf("403: %d %v", code, e403)
	}
	// 404: unknown environment (the seed's own path too).
	if code := h.rest("POST", "/v1/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa/apps", h.token, body, nil); code != 404 {
		t.Errorf("404: got %d", code)
	}
	if code := h.rest("POST", "/api/v1/env_aaaaaaaaaaaaaaaaaaaaaaaaaa/app", h.token, body, nil); code != 404 {
		t.Errorf("404 on seed path: got %d", code)
	}
	// 201 then 409 on the seed's path.
	if code := h.rest("POST", "/api/v1/"+envID+"/app", h.token, body, nil); code != 201 {
		t.Fatalf("create on seed path: %d", code)
	}
	var e409 jsonObj
	if code := h.rest("POST", "/"+envID+"/app", h.token, body, &e409); code != 409 || e409["code"] != "ALREADY_EXISTS" {
		t.Errorf("409: %d %v", code, e409)
	}
	// Bad quantities and ports list every field.
	bad := seedApp("nginx:latest", "bad")
	delete(bad, "volumeMounts")
	bad["resourceRequests"] = jsonObj{"cpu": "lots", "memory": "-5Mi"}
	bad["ports"] = []jsonObj{{"number": 70000, "protocol": "SCTP"}}
	var eb jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, bad, &eb); code != 400 {
		t.Fatalf("bad app: %d %v", code, eb)
	}
	msg := fmt.Sprint(get(eb, "details", "fieldViolations"))
	for _, f := range []string{"resourceRequests.cpu", "resourceRequests.memory", "ports[0].number", "ports[0].protocol"} {
		if !strings.Contains(msg, f) {
			t.Errorf("violations lack %s: %s", f, msg)
		}
	}
}
