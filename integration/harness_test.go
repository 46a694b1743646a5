package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/agent"
	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/integration/testimage"
	"github.com/atollhq/atoll/runtime/docker"
)

// host is one control-plane server and one real agent on the local Docker Engine.
type host struct {
	t       testing.TB
	cluster *cptest.Cluster
	server  *controlplane.Server
	token   string
	image   string
	docker  *client.Client
	scope   string // label value that marks this test's containers

	agentDir string
	mu       sync.Mutex
	agent    *agent.Agent
	stop     context.CancelFunc
	done     chan error
}

func newHost(t testing.TB, opts ...cptest.Option) *host {
	t.Helper()
	image := testimage.Ensure(t, "")
	c := cptest.NewCluster(t, 1, append([]cptest.Option{func(_ int, c *controlplane.Config) {
		c.HeartbeatPeriod, c.NodeTTL, c.UsagePeriod = 200*time.Millisecond, 3*time.Second, 500*time.Millisecond
	}}, opts...)...)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, cluster: c, server: c.Servers[0], token: c.AdminToken, image: image, docker: cli,
		scope: fmt.Sprintf("it-%d", time.Now().UnixNano()), agentDir: t.TempDir()}
	t.Cleanup(func() {
		h.stopAgent()
		h.removeContainers()
		cli.Close()
	})
	h.startAgent()
	return h
}

func (h *host) startAgent() {
	h.t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Servers = []string{h.server.GRPCAddr()}
	cfg.JoinToken = h.token
	cfg.DataDir = h.agentDir
	cfg.Name = "it-host"
	cfg.RouterAddr, cfg.ListenAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ContainerLabels = map[string]string{"atoll.test": h.scope}
	cfg.PollInterval = 200 * time.Millisecond
	cfg.StopTimeout = 2 * time.Second
	cfg.Registerer = prometheus.NewRegistry()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	rcfg := docker.DefaultConfig()
	rcfg.FilesDir = filepath.Join(h.agentDir, "files")
	rt, err := docker.New(rcfg)
	if err != nil {
		h.t.Fatal(err)
	}
	a, err := agent.New(cfg, rt)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	h.mu.Lock()
	h.agent, h.stop, h.done = a, cancel, done
	h.mu.Unlock()
}

func (h *host) stopAgent() {
	h.mu.Lock()
	stop, done := h.stop, h.done
	h.stop = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			h.t.Error("agent did not stop within 15s")
		}
	}
}

// containers lists this test's containers with an extra label filter.
func (h *host) containers(kv ...string) []container.Summary {
	h.t.Helper()
	f := filters.NewArgs(filters.Arg("label", "atoll.test="+h.scope))
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add("label", kv[i]+"="+kv[i+1])
	}
	list, err := h.docker.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		h.t.Fatal(err)
	}
	return list
}

// volumes lists this test's Docker volumes with an extra label filter.
func (h *host) volumes(kv ...string) []*volume.Volume {
	h.t.Helper()
	f := filters.NewArgs(filters.Arg("label", "atoll.test="+h.scope))
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add("label", kv[i]+"="+kv[i+1])
	}
	list, err := h.docker.VolumeList(context.Background(), volume.ListOptions{Filters: f})
	if err != nil {
		h.t.Fatal(err)
	}
	return list.Volumes
}

func (h *host) removeContainers() {
	ctx := context.Background()
	for _, c := range h.containers() {
		_ = h.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	vols, err := h.docker.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "atoll.test="+h.scope))})
	if err == nil {
		for _, v := range vols.Volumes {
			_ = h.docker.VolumeRemove(ctx, v.Name, true)
		}
	}
}

// rest calls the REST API and decodes the JSON answer into out (if not nil).
func (h *host) rest(method, path, token string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			buf, _ := json.Marshal(b)
			rd = bytes.NewReader(buf)
		}
	}
	req, _ := http.NewRequest(method, "http://"+h.server.HTTPAddr()+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// viaRouter GETs path on a public hostname through the agent's router.
func (h *host) viaRouter(hostname, path string) (int, string) {
	h.mu.Lock()
	a := h.agent
	h.mu.Unlock()
	req, _ := http.NewRequest("GET", "http://"+a.RouterAddr()+path, nil)
	req.Host = hostname
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	cptest.WaitFor(t, timeout, what, cond)
}

type jsonObj = map[string]any

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

// describeContainers names each container with its state and atoll labels,
// for failure messages.
func describeContainers(cs []container.Summary) string {
	var parts []string
	for _, c := range cs {
		var ls []string
		for k, v := range c.Labels {
			if strings.HasPrefix(k, "atoll.") {
				ls = append(ls, k+"="+v)
			}
		}
		sort.Strings(ls)
		parts = append(parts, fmt.Sprintf("%s %v %s [%s]", c.ID[:12], c.Names, c.State, strings.Join(ls, " ")))
	}
	return fmt.Sprintf("%d containers: %s", len(cs), strings.Join(parts, "; "))
}

// waitServing waits until the app's replicas run, each with a routed
// address, and the router answers /env?k=GREETING on hostname with
// greeting; it returns the ids of the app's containers then.
func (h *host) waitServing(envID, app, appID, hostname string, replicas int, greeting string) map[string]bool {
	h.t.Helper()
	h.waitRunning(envID, app, replicas)
	waitFor(h.t, 30*time.Second, "every instance routed", func() bool {
		a := h.appState(envID, app)
		for _, in := range get(a, "status", "instances").([]any) {
			if in.(map[string]any)["address"] == nil {
				return false
			}
		}
		code, body := h.viaRouter(hostname, "/env?k=GREETING")
		return code == 200 && body == greeting
	})
	ids := map[string]bool{}
	for _, c := range h.containers("atoll.app", appID) {
		ids[c.ID] = true
	}
	return ids
}
