package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/agent/agenttest"
	"github.com/atollhq/atoll/integration/testimage"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime/docker"
)

// TestDockerTwentyReplicas measures 20 assignments -> 20 RUNNING against 20
// parallel `docker run -d` of the same image. Opt in with ATOLL_AGENT_BENCH=1.
func TestDockerTwentyReplicas(t *testing.T) {
	if os.Getenv("ATOLL_AGENT_BENCH") == "" {
		t.Skip("set ATOLL_AGENT_BENCH=1")
	}
	const n = 20
	rt, scope := docker.NewTestRuntime(t)
	image := testimage.Ensure(t, "")
	srv := agenttest.New(t)
	cfg := testConfig(t, t.TempDir(), srv.Addr)
	cfg.ContainerLabels = map[string]string{docker.TestLabel: scope}
	cfg.Logger = nil
	start(t, cfg, rt)
	srv.Await(t, wait, "session", func() bool { return srv.Sessions() == 1 })

	var as []*atollv1.Assignment
	for i := range n {
		as = append(as, &atollv1.Assignment{
			InstanceId: fmt.Sprintf("b%d-%s", i, scope[len(scope)-8:]), AppId: "app", EnvId: "env", OrgId: "org",
			Image: image, Running: true, Ports: []*atollv1.Port{{Number: 8080}},
			Resources: &atollv1.Resources{Cpu: 50, Memory: 32},
		})
	}
	t0 := time.Now()
	srv.Upsert(as...)
	for _, a := range as {
		srv.AwaitStatus(t, 120*time.Second, a.InstanceId, "running", running)
	}
	agentTook := time.Since(t0)

	t1 := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := exec.Command("docker", "run", "-d", "--label", docker.TestLabel+"="+scope,
				"--name", fmt.Sprintf("atoll-cli-%d-%s", i, scope[len(scope)-8:]), "-p", "127.0.0.1::8080", image).CombinedOutput()
			if err != nil {
				t.Errorf("docker run: %v: %s", err, out)
			}
		})
	}
	wg.Wait()
	cliTook := time.Since(t1)
	t.Logf("agent: %d assignments -> RUNNING in %v; docker CLI: %d parallel runs in %v; ratio %.2fx",
		n, agentTook, n, cliTook, agentTook.Seconds()/cliTook.Seconds())
}
