package integration_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/controlplane"
)

// prober sends requests through the router, one after the other, until
// stopped, and keeps what failed.
type prober struct {
	h    *host
	host string

	mu       sync.Mutex
	n        int
	failures []string
	bodies   map[string]int
	stop     chan struct{}
	done     chan struct{}
}

func (h *host) startProber(hostname string) *prober {
	p := &prober{h: h, host: hostname, bodies: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			code, body := h.viaRouter(hostname, "/env?k=GREETING")
			p.mu.Lock()
			p.n++
			if code != 200 {
				p.failures = append(p.failures, fmt.Sprintf("%d %s", code, strings.TrimSpace(body)))
			} else {
				p.bodies[body]++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// end stops the prober and fails the test if any request failed.
func (p *prober) end(t *testing.T, phase string) map[string]int {
	t.Helper()
	close(p.stop)
	<-p.done
	if len(p.failures) > 0 {
		t.Fatalf("%s: %d of %d requests through the router failed, first: %s", phase, len(p.failures), p.n, p.failures[0])
	}
	if p.n == 0 {
		t.Fatalf("%s: no request was sent", phase)
	}
	return p.bodies
}

// An app update rolls: an update to an image that does not exist leaves the
// app serving (every request through the router succeeds) and says that
// the rollout failed and why; an update to a good spec (another variable
// set) replaces every instance, one at a time, without a failed request.
func TestRollingUpdate(t *testing.T) {
	h := newHost(t, func(_ int, c *controlplane.Config) { c.RolloutMinHealthy = time.Second })
	var env jsonObj
	if code := h.rest("POST", "/v1/environments", h.token, jsonObj{"name": "roll",
		"resourceQuota": jsonObj{"cpu": 2000, "memory": 2048, "storage": 10240}}, &env); code != 201 {
		t.Fatalf("create env: %d %v", code, env)
	}
	envID := env["id"].(string)
	for name, greeting := range map[string]string{"v1": "one", "v2": "two"} {
		if code := h.rest("POST", "/v1/environments/"+envID+"/variable-sets", h.token, jsonObj{"name": name,
			"variables": jsonObj{"GREETING": jsonObj{"value": greeting}}}, nil); code != 201 {
			t.Fatalf("create variable set %s: %d", name, code)
		}
	}
	repo, tag, _ := strings.Cut(h.image, ":")
	var app jsonObj
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, jsonObj{
		"name":              "web",
		"source":            jsonObj{"image": jsonObj{"name": repo, "tag": tag}},
		"resourceRequests":  jsonObj{"cpu": "100m", "memory": "64Mi"},
		"ports":             []jsonObj{{"name": "http", "number": 8080}},
		"publicEndpoint":    jsonObj{"externalPort": 443, "appPort": 8080},
		"variableSetMounts": []jsonObj{{"varSetNameRef": "v1"}},
		"replicas":          2,
	}, &app); code != 201 {
		t.Fatalf("create app: %d %v", code, app)
	}
	appID := app["id"].(string)
	hostname := "web-roll.localhost"
	oldContainers := h.waitServing(envID, "web", appID, hostname, 2, "one")
	if len(oldContainers) != 2 {
		t.Fatalf("want 2 containers, got %s", describeContainers(h.containers("atoll.app", appID)))
	}

	// 1. An image tag that does not exist: the rollout fails, the app serves.
	p := h.startProber(hostname)
	var upd jsonObj
	if code := h.rest("PATCH", "/v1/environments/"+envID+"/apps/web", h.token,
		jsonObj{"source": jsonObj{"image": jsonObj{"name": repo, "tag": "does-not-exist"}}}, &upd); code != 200 {
		t.Fatalf("update to a missing image: %d %v", code, upd)
	}
	badVersion := fmt.Sprint(upd["version"])
	var a jsonObj
	waitFor(t, 60*time.Second, "the rollout to the missing image failed", func() bool {
		a = h.appState(envID, "web")
		return get(a, "status", "rollout", "state") == "FAILED"
	})
	msg := fmt.Sprint(get(a, "status", "message"))
	if fmt.Sprint(get(a, "status", "rollout", "version")) != badVersion || !strings.Contains(msg, "rollout to version "+badVersion+" failed") ||
		!strings.Contains(msg, "does-not-exist") || get(a, "status", "state") != "RUNNING" || get(a, "status", "running") != float64(2) {
		t.Fatalf("status of the failed rollout: %v", get(a, "status"))
	}
	// The old containers are the ones that run, untouched.
	for _, c := range h.containers("atoll.app", appID) {
		if c.State == "running" && !oldContainers[c.ID] {
			t.Fatalf("a new container runs during the failed rollout: %s", describeContainers(h.containers("atoll.app", appID)))
		}
	}
	running := 0
	for _, c := range h.containers("atoll.app", appID) {
		if oldContainers[c.ID] && c.State == "running" {
			running++
		}
	}
	if running != 2 {
		t.Fatalf("%d of the 2 old containers run: %s", running, describeContainers(h.containers("atoll.app", appID)))
	}
	// A bounded loop of requests: every one answered by the old version.
	for i := range 50 {
		if code, body := h.viaRouter(hostname, "/env?k=GREETING"); code != 200 || body != "one" {
			t.Fatalf("request %d during the halted rollout: %d %q", i, code, body)
		}
	}
	if bodies := p.end(t, "update to a missing image"); bodies["one"] == 0 || len(bodies) != 1 {
		t.Fatalf("answers during the failed rollout: %v", bodies)
	}

	// 2. A good spec (the original image, another variable set) supersedes
	// it: every instance is replaced, no request fails.
	p = h.startProber(hostname)
	if code := h.rest("PATCH", "/v1/environments/"+envID+"/apps/web", h.token, jsonObj{
		"source":            jsonObj{"image": jsonObj{"name": repo, "tag": tag}},
		"variableSetMounts": []jsonObj{{"varSetNameRef": "v2"}},
	}, &upd); code != 200 {
		t.Fatalf("update to a good spec: %d %v", code, upd)
	}
	goodVersion := fmt.Sprint(upd["version"])
	waitFor(t, 90*time.Second, "the rollout to the good spec completed", func() bool {
		a = h.appState(envID, "web")
		if get(a, "status", "state") != "RUNNING" || get(a, "status", "rollout") != nil {
			return false
		}
		insts := get(a, "status", "instances").([]any)
		for _, in := range insts {
			if in.(map[string]any)["appVersion"] != goodVersion || in.(map[string]any)["state"] != "INSTANCE_RUNNING" {
				return false
			}
		}
		return len(insts) == 2
	})
	waitFor(t, 30*time.Second, "the old containers are gone", func() bool {
		for _, c := range h.containers("atoll.app", appID) {
			if oldContainers[c.ID] {
				return false
			}
		}
		return len(h.containers("atoll.app", appID)) == 2
	})
	bodies := p.end(t, "update to a good spec")
	if bodies["two"] == 0 {
		t.Fatalf("the new version never answered during the rollout: %v", bodies)
	}
	for i := range 20 {
		if code, body := h.viaRouter(hostname, "/env?k=GREETING"); code != 200 || body != "two" {
			t.Fatalf("request %d after the rollout: %d %q", i, code, body)
		}
	}
}
