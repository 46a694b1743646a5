package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/controlplane"
)

// waitRolled waits until every instance of the app runs the app's spec
// version and no rollout is left, and returns that version.
func (h *host) waitRolled(t *testing.T, envID, app string, replicas int, version string) {
	t.Helper()
	waitFor(t, 90*time.Second, app+" rolled to spec version "+version, func() bool {
		a := h.appState(envID, app)
		if get(a, "status", "state") != "RUNNING" || get(a, "status", "rollout") != nil {
			return false
		}
		insts := get(a, "status", "instances").([]any)
		for _, in := range insts {
			if in.(map[string]any)["appVersion"] != version || in.(map[string]any)["state"] != "INSTANCE_RUNNING" {
				return false
			}
		}
		return len(insts) == replicas
	})
}

// Updating a variable in place (PATCH of the variable set) rolls the app
// that mounts it: afterwards it serves the new value through the router,
// and no request fails on the way; a secret left alone keeps its value;
// replacing the content of a mounted file rolls it the same way.
func TestUpdateVariableSetInPlace(t *testing.T) {
	h := newHost(t, func(_ int, c *controlplane.Config) { c.RolloutMinHealthy = time.Second })
	var env jsonObj
	if code := h.rest("POST", "/v1/environments", h.token, jsonObj{"name": "inplace",
		"resourceQuota": jsonObj{"cpu": 2000, "memory": 2048, "storage": 10240}}, &env); code != 201 {
		t.Fatalf("create env: %d %v", code, env)
	}
	envID := env["id"].(string)
	base := "/v1/environments/" + envID
	if code := h.rest("POST", base+"/variable-sets", h.token, jsonObj{"name": "cfg",
		"variables": jsonObj{"GREETING": jsonObj{"value": "one"}, "TOKEN": jsonObj{"value": "t0ps3cret", "secret": true}}}, nil); code != 201 {
		t.Fatalf("create variable set: %d", code)
	}
	if code := h.rest("POST", base+"/files", h.token, jsonObj{"name": "conf", "text": "f1"}, nil); code != 201 {
		t.Fatalf("create file: %d", code)
	}
	repo, tag, _ := strings.Cut(h.image, ":")
	var app jsonObj
	if code := h.rest("POST", base+"/apps", h.token, jsonObj{
		"name":              "web",
		"source":            jsonObj{"image": jsonObj{"name": repo, "tag": tag}},
		"resourceRequests":  jsonObj{"cpu": "100m", "memory": "64Mi"},
		"ports":             []jsonObj{{"name": "http", "number": 8080}},
		"publicEndpoint":    jsonObj{"externalPort": 443, "appPort": 8080},
		"variableSetMounts": []jsonObj{{"varSetNameRef": "cfg"}},
		"fileMounts":        []jsonObj{{"fileNameRef": "conf", "mountPath": "/etc/app/conf"}},
		"replicas":          2,
	}, &app); code != 201 {
		t.Fatalf("create app: %d %v", code, app)
	}
	appID := app["id"].(string)
	hostname := "web-inplace.localhost"
	oldContainers := h.waitServing(envID, "web", appID, hostname, 2, "one")

	// 1. The variable, in place.
	p := h.startProber(hostname)
	var vs jsonObj
	if code := h.rest("PATCH", base+"/variable-sets/cfg", h.token, jsonObj{"set": jsonObj{"GREETING": jsonObj{"value": "two"}}}, &vs); code != 200 {
		t.Fatalf("update the variable: %d %v", code, vs)
	}
	if fmt.Sprint(vs["version"]) != "2" || fmt.Sprint(vs["rollingApps"]) != "[web]" || get(vs, "variables", "TOKEN", "value") != "********" {
		t.Fatalf("update answer: %v", vs)
	}
	a := h.appState(envID, "web")
	h.waitRolled(t, envID, "web", 2, fmt.Sprint(a["specVersion"]))
	waitFor(t, 30*time.Second, "the old containers are gone", func() bool {
		for _, c := range h.containers("atoll.app", appID) {
			if oldContainers[c.ID] {
				return false
			}
		}
		return len(h.containers("atoll.app", appID)) == 2
	})
	bodies := p.end(t, "variable update")
	if bodies["two"] == 0 {
		t.Fatalf("the new value never answered during the rollout: %v", bodies)
	}
	for i := range 20 {
		if code, body := h.viaRouter(hostname, "/env?k=GREETING"); code != 200 || body != "two" {
			t.Fatalf("request %d after the rollout: %d %q", i, code, body)
		}
	}
	if code, body := h.viaRouter(hostname, "/env?k=TOKEN"); code != 200 || body != "t0ps3cret" {
		t.Fatalf("the untouched secret after the rollout: %d %q", code, body)
	}

	// 2. The file's content.
	p = h.startProber(hostname)
	var fl jsonObj
	if code := h.rest("PATCH", base+"/files/conf", h.token, jsonObj{"text": "f2"}, &fl); code != 200 {
		t.Fatalf("update the file: %d %v", code, fl)
	}
	a = h.appState(envID, "web")
	h.waitRolled(t, envID, "web", 2, fmt.Sprint(a["specVersion"]))
	p.end(t, "file update")
	waitFor(t, 30*time.Second, "the old containers are gone", func() bool { return len(h.containers("atoll.app", appID)) == 2 })
	for i := range 20 {
		if code, body := h.viaRouter(hostname, "/file?path=/etc/app/conf"); code != 200 || body != "f2" {
			t.Fatalf("file request %d after the rollout: %d %q", i, code, body)
		}
	}
}
