package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// With real containers: an app whose health check passes is healthy and
// routed; one whose check fails runs (not restarted) but is unhealthy, out
// of the router's table, and its status says why.
func TestHealthCheckRealContainers(t *testing.T) {
	h := newHost(t)
	envID := setupEnv(h, "health")
	if code := h.rest("POST", "/v1/environments/"+envID+"/variable-sets", h.token, jsonObj{"name": "sick",
		"variables": jsonObj{"HEALTHZ_STATUS": jsonObj{"value": "503"}}}, nil); code != 201 {
		t.Fatalf("create variable set: %d", code)
	}
	check := jsonObj{"httpPath": "/healthz", "intervalSeconds": 2, "failureThreshold": 1}
	good := seedApp(h.image, "good")
	delete(good, "volumeMounts")
	good["healthCheck"] = check
	sick := seedApp(h.image, "sick")
	delete(sick, "volumeMounts")
	sick["healthCheck"] = check
	sick["variableSetMounts"] = []jsonObj{{"varSetNameRef": "app-config"}, {"varSetNameRef": "sick"}}
	for _, body := range []jsonObj{good, sick} {
		var out jsonObj
		if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, body, &out); code != 201 {
			t.Fatalf("create %s: %d %v", body["name"], code, out)
		}
		if p := get(out, "healthCheck", "port"); fmt.Sprint(p) != "8080" {
			t.Fatalf("health check port default: %v", get(out, "healthCheck"))
		}
	}

	instance := func(app string) map[string]any {
		insts, _ := get(h.appState(envID, app), "status", "instances").([]any)
		if len(insts) != 1 {
			return nil
		}
		return insts[0].(map[string]any)
	}
	waitFor(t, 60*time.Second, "good healthy and routed", func() bool {
		in := instance("good")
		if in == nil || in["healthy"] != true {
			return false
		}
		code, body := h.viaRouter(get(h.appState(envID, "good"), "publicEndpoint", "hostname").(string), "/env?k=GREETING")
		return code == 200 && body == "hello world"
	})
	if a := h.appState(envID, "good"); get(a, "status", "state") != "RUNNING" {
		t.Fatalf("good: %v", get(a, "status"))
	}

	// One read of the app for the instance and the app's status: the first
	// probes may see the port before the server listens (EOF), then 503.
	var a jsonObj
	waitFor(t, 60*time.Second, "sick RUNNING, unhealthy (503), DEGRADED saying why", func() bool {
		a = h.appState(envID, "sick")
		insts, _ := get(a, "status", "instances").([]any)
		if len(insts) != 1 {
			return false
		}
		in := insts[0].(map[string]any)
		return in["state"] == "INSTANCE_RUNNING" && in["healthy"] != true && in["healthMessage"] == "GET /healthz: 503" &&
			get(a, "status", "state") == "DEGRADED" &&
			fmt.Sprint(get(a, "status", "message")) == fmt.Sprintf("instance %s unhealthy: GET /healthz: 503", in["id"])
	})
	host := get(a, "publicEndpoint", "hostname").(string)
	if code, body := h.viaRouter(host, "/healthz"); code == 200 || code == 503 && strings.Contains(body, "ok") {
		t.Fatalf("an unhealthy instance is routed: %d %q", code, body)
	}
	// Unhealthy is not an exit: the container is not restarted.
	time.Sleep(3 * time.Second)
	if in := instance("sick"); in["state"] != "INSTANCE_RUNNING" || in["restarts"] != nil && fmt.Sprint(in["restarts"]) != "0" {
		t.Fatalf("sick instance after more failing checks: %v", in)
	}
}
