package agent_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/agent/agenttest"
	"github.com/atollhq/atoll/integration/testimage"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime/docker"
)

// TestDockerEndToEnd runs one assignment on the real engine and reaches it
// through the agent's router.
func TestDockerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Docker")
	}
	rt, scope := docker.NewTestRuntime(t)
	image := testimage.Ensure(t, "")
	srv := agenttest.New(t)
	cfg := testConfig(t, t.TempDir(), srv.Addr)
	cfg.ContainerLabels = map[string]string{docker.TestLabel: scope}
	cfg.PollInterval = 100 * time.Millisecond
	a := start(t, cfg, rt)

	id := "e2e-" + scope[len(scope)-8:]
	as := &atollv1.Assignment{
		InstanceId: id, AppId: "app-1", AppName: "web", EnvId: "env-1", EnvSlug: "demo", OrgId: "org-1",
		AppVersion: 1, Image: image, Running: true,
		Env:        map[string]string{"GREETING": "hello from atoll"},
		Files:      []*atollv1.ContainerFile{{MountPath: "/etc/app.conf", Content: []byte("x=1\n"), Owner: "1000:1000"}},
		Volumes:    []*atollv1.ContainerVolume{{VolumeId: "vol-1", Name: "atoll-" + scope, Path: "/data", SizeMb: 50}},
		Ports:      []*atollv1.Port{{Name: "http", Number: 8080, Protocol: "TCP"}},
		PublicPort: 8080,
		Resources:  &atollv1.Resources{Cpu: 500, Memory: 64, Storage: 512},
	}
	t0 := time.Now()
	srv.Upsert(as)
	st := srv.AwaitStatus(t, 60*time.Second, id, "running", running)
	t.Logf("assignment -> RUNNING in %v (container %s at %s)", time.Since(t0), st.ContainerId[:12], st.Address)
	if !strings.HasPrefix(st.Address, "127.0.0.1:") {
		t.Fatalf("address %q", st.Address)
	}
	srv.SetRoutes(map[string][]string{"web-demo.localhost": {st.Address}})

	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+a.RouterAddr()+path, nil)
		req.Host = "web-demo.localhost:7080"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var code int
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body = get("/env?k=GREETING")
		if code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the app needs a moment to listen; no event to wait on
	}
	if code != 200 || strings.TrimSpace(body) != "hello from atoll" {
		t.Fatalf("GET /env through the router: %d %q", code, body)
	}
	t.Logf("assignment -> answering through the router in %v", time.Since(t0))
	if code, body := get("/stat?path=/etc/app.conf"); code != 200 || !strings.Contains(body, `"uid":1000`) || !strings.Contains(body, `"gid":1000`) {
		t.Errorf("file owner: %d %q", code, body)
	}
	if code, body := get("/volume/write?path=/data/x&data=kept"); code != 200 {
		t.Errorf("volume write: %d %q", code, body)
	}
	info, err := rt.Inspect(context.Background(), "atoll-"+id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Labels["atoll.alloc"] != id {
		t.Errorf("labels %v", info.Labels)
	}
	// Remove: the container goes, the named volume stays (cleanup removes it).
	srv.Remove(id)
	srv.Await(t, 30*time.Second, "container removed", func() bool {
		_, ok := a.Status(id)
		return !ok
	})
	if _, err := rt.Inspect(context.Background(), "atoll-"+id); err == nil {
		t.Error("container still there after remove")
	}
}
